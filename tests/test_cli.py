import argparse
import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dropoutlab.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))
# "seed 000", "Seed001", "seed_001"...: the notebooks' old archive numbers, which a user reads
# as a random seed
ARCHIVE_NUMBER = re.compile(r"seed[\s_-]?00[01]", re.IGNORECASE)


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_run_report_export_end_to_end_on_digits(capsys, tiny_study, tmp_path):
    store = tmp_path / "runs.db"
    code, out, err = run_cli(capsys, "run", tiny_study, "--store", store, "--device", "cpu", "--no-progress")
    assert code == 0, err
    assert "tiny: 4 runs planned, 0 already stored, 4 completed" in out
    assert "hidden1=0.5" in out and "test accuracy (95% CI)" in out

    code, out, _ = run_cli(capsys, "run", tiny_study, "--store", store, "--no-progress")
    assert code == 0 and "4 already stored, nothing new" in out

    code, out, err = run_cli(capsys, "report", "--store", store, "--out", tmp_path / "rep")
    assert code == 0, err
    for name in ("report.html", "report.md"):
        assert (tmp_path / "rep" / name).stat().st_size > 1000
    assert len(list((tmp_path / "rep").glob("*.png"))) >= 3

    code, out, _ = run_cli(capsys, "report", "--store", store, "--format", "json")
    numbers = json.loads(out)
    assert {c["params"]["dropout.hidden1"] for c in numbers["configs"]} == {0.0, 0.5}
    assert all(set(c["test_acc"]) == {"mean", "std", "ci_low", "ci_high"} for c in numbers["configs"])
    assert numbers["comparisons"][0]["baseline"] == {"dropout.hidden1": 0.0}
    assert numbers["findings"]

    code, out, _ = run_cli(capsys, "export", "--store", store, "--format", "json")
    runs = json.loads(out)["runs"]
    assert len(runs) == 4
    run = runs[0]
    for key in ("id", "study", "params", "seed", "status", "history", "test", "best_epoch", "stopped_epoch",
                "wall_s", "spec", "env"):  # fmt: skip
        assert key in run
    assert run["status"] == "completed" and run["study"] == "tiny"
    assert set(run["history"][0]) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc",
                                      "train_eval_loss", "train_eval_acc"}  # fmt: skip
    assert run["history"][0]["train_eval_acc"] is None  # eval_train = false in the tiny study
    assert 0 <= run["test"]["acc"] <= 1
    assert run["spec"]["optimizer"]["name"] == "adam" and run["spec"]["seed"] == run["seed"]
    assert {"dropoutlab", "torch", "python", "device"} <= set(run["env"])

    code, out, _ = run_cli(capsys, "export", "--store", store, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 4 * 2
    assert {"id", "seed", "dropout.hidden1", "epoch", "train_acc", "val_acc", "test_acc"} <= set(rows[0])
    assert {r["epoch"] for r in rows} == {"1", "2"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "missing.toml"], "missing.toml: no such study file"),
        (["report", "--store", "nothing.db"], "nothing.db: no store here"),
        (["export", "--store", "nothing.db"], "nothing.db: no store here"),
        (["models", "vgg"], "unknown model 'vgg'; allowed: mlp, cnn, lenet5, resnet, gru, lstm, transformer"),
        (
            ["models", "gru", "--dropout", "head=0.5"],
            "--dropout and --batchnorm apply to presets; gru is a model",
        ),
        (["models", "mlp", "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["models", "mlp", "--dropout", "conv=0.5"], "unknown slot 'conv' for mlp"),
        (["models", "mlp", "--dropout", "hidden1=2"], r"hidden1"),
    ],
)
def test_bad_input_gets_one_line_and_exit_status_2(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    assert err.startswith("dropoutlab: error: ") and err.count("\n") == 1
    assert re.search(message, err)
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["run", "x.toml", "--stack", "0"],
            "argument --stack: '0' is not allowed; allowed: auto, off or a whole",
        ),
        (
            ["run", "x.toml", "--workers", "two"],
            "argument --workers: 'two' is not allowed; allowed: auto or a whole",
        ),
        (["run"], "the following arguments are required: STUDY.toml"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_flags_get_one_line_and_exit_status_2(capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    _, err = capsys.readouterr()
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and message in err and "--help" in err and "usage:" not in err


def test_workers_on_cuda_fail_before_the_store_is_created(capsys, tiny_study, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the refusal needs no real GPU
    store = tmp_path / "x.db"
    code, _, err = run_cli(capsys, "run", tiny_study, "--store", store, "--device", "cuda", "--workers", "2")
    assert code == 2 and "--workers 2: worker processes train on the CPU" in err
    assert not store.exists()


def test_bad_device_fails_before_the_store_is_created(capsys, tiny_study, tmp_path):
    store = tmp_path / "x.db"
    code, _, err = run_cli(capsys, "run", tiny_study, "--store", store, "--device", "tpu")
    assert code == 2 and "--device: 'tpu' is not allowed; allowed: auto, cpu, cuda" in err
    assert not store.exists()


def test_bad_study_trains_nothing_and_keeps_the_store(capsys, write_study, tiny_study, tmp_path):
    store = tmp_path / "keep.db"
    assert run_cli(capsys, "run", tiny_study, "--store", store, "--no-progress")[0] == 0
    before = store.read_bytes()
    bad = write_study('name = "bad"\ndataset = "digits"\nepochs = 0\n', "bad.toml")
    code, _, err = run_cli(capsys, "run", bad, "--store", store)
    assert code == 2 and "epochs: 0 is out of range" in err
    assert store.read_bytes() == before


def test_report_on_a_store_with_several_studies_asks_which(capsys, tiny_study, write_study, tmp_path):
    store = tmp_path / "two.db"
    other = write_study(tiny_study.read_text().replace('name = "tiny"', 'name = "other"'), "other.toml")
    for study in (tiny_study, other):
        assert run_cli(capsys, "run", study, "--store", store, "--no-progress")[0] == 0
    code, _, err = run_cli(capsys, "report", "--store", store, "--format", "json")
    assert code == 2 and "choose one with --study: tiny, other" in err
    code, out, _ = run_cli(capsys, "report", "--store", store, "--study", "other", "--format", "json")
    assert code == 0 and json.loads(out)["study"] == "other"


def test_bad_baseline_is_refused(capsys, tiny_study, tmp_path):
    store = tmp_path / "b.db"
    run_cli(capsys, "run", tiny_study, "--store", store, "--no-progress")
    code, _, err = run_cli(capsys, "report", "--store", store, "--baseline", "dropout.hidden1=0.3",
                           "--out", tmp_path / "r")  # fmt: skip
    assert code == 2 and "dropout.hidden1" in err
    assert not (tmp_path / "r").exists()


def test_dry_run_lists_runs_and_trains_nothing(capsys, tiny_study, tmp_path):
    code, out, _ = run_cli(capsys, "run", tiny_study, "--dry-run", "--store", tmp_path / "d.db")
    assert code == 0 and "tiny: 4 runs (2 configurations x 2 seeds)" in out
    assert not (tmp_path / "d.db").exists()


def test_datasets_and_models_listings(capsys):
    code, out, _ = run_cli(capsys, "datasets")
    assert code == 0
    for name in ("digits", "mnist", "fashion-mnist", "kmnist", "cifar10", "cifar100", "npz:PATH"):
        assert name in out
    code, out, _ = run_cli(capsys, "models")
    assert "mlp" in out and "dropout slots: input, hidden1, hidden2" in out and "conv, dense1, dense2" in out
    assert "dropout slots: attention, residual, mlp" in out  # the transformer family
    from dropoutlab.models import dropout_kinds

    for kind in dropout_kinds():
        assert f"\n  {kind} " in out
    assert "spatial" in out and "[image]" in out.split("\n  spatial")[1].split("\n")[0]


def test_models_summarises_a_family_and_a_preset_with_batch_norm(capsys):
    from dropoutlab.models import count_parameters

    code, out, _ = run_cli(capsys, "models", "resnet", "--dataset", "cifar10")
    assert code == 0 and "blocks.0.drop_path (DropPath)" in out
    assert f"Total params: {count_parameters('resnet', (3, 32, 32), 10):,}" in out
    code, out, _ = run_cli(capsys, "models", "lenet5", "--batchnorm")
    assert code == 0 and out.count("(BatchNorm") == 4


def test_models_summary_matches_keras_for_the_cifar10_sweep_cnn(capsys):
    code, out, _ = run_cli(capsys, "models", "cnn", "--dataset", "cifar10", "--dropout", "conv=0.05")
    assert code == 0
    assert "conv2d_1 (Conv2d)" in out and "(None, 32, 30, 30)" in out and "896" in out
    assert "dropout_conv (Dropout)" in out
    assert "(None, 25088)" in out
    # Keras' summary of the CIFAR-10 notebook's network: 896 + 9,248 + 7,526,700 + 90,300 + 3,010
    assert "Total params: 7,630,154" in out


@pytest.mark.slow
def test_demo_runs_offline_and_writes_the_report(tmp_path):
    exe = shutil.which("dropoutlab")
    cmd = [exe] if exe else [sys.executable, "-m", "dropoutlab.cli"]
    done = subprocess.run([*cmd, "demo", "--out", str(tmp_path / "demo"), "--device", "cpu"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    # until decided: 21 runs at the first look (7 configurations x 3 seeds), then up to 11 seeds each
    trained = re.search(r"([23]) looks stored, \1 taken now; runs trained: (\d+) completed", done.stdout)
    assert trained and 21 < int(trained.group(2)) <= 77, done.stdout
    assert "choose: " in done.stdout and "seeds spent: " in done.stdout
    assert (tmp_path / "demo" / "report" / "report.html").exists()
    assert done.stdout.strip().endswith("report.html")


def test_report_of_a_study_whose_runs_all_diverged_says_so(capsys, write_study, tmp_path):
    study = write_study(
        'name = "div"\ndataset = "digits"\nepochs = 2\nseeds = 2\n'
        '[optimizer]\nname = "sgd"\nlr = 1e12\n[grid]\n"dropout.hidden1" = [0.0, 0.5]\n'
    )
    store = tmp_path / "div.db"
    code, out, _ = run_cli(capsys, "run", study, "--store", store, "--no-progress")
    assert code == 0 and "4 diverged" in out
    code, _, err = run_cli(capsys, "report", "--store", store, "--out", tmp_path / "rep")
    assert code == 0, err
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "No completed runs" in page and "2 diverged of 2 runs" in page


def _help_texts(parser: argparse.ArgumentParser, prog: str = "dropoutlab"):
    """``(command, its --help text)`` for the command and each subcommand."""
    yield prog, parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _help_texts(sub, f"{prog} {name}")


def test_what_a_user_reads_names_the_reference_studies_not_archive_seeds(capsys):
    texts = dict(_help_texts(build_parser()))
    assert {"dropoutlab", "dropoutlab demo", "dropoutlab run", "dropoutlab report"} <= set(texts)
    assert "dropoutlab run examples/digits_dropout_comparison_mlp.toml" in texts["dropoutlab"]
    assert (ROOT / "examples" / "digits_dropout_comparison_mlp.toml").is_file()
    run_cli(capsys, "models")
    texts["dropoutlab models (listing)"] = capsys.readouterr().out
    files = [*EXAMPLES, *(ROOT / "examples" / "notebooks").glob("*.ipynb"), ROOT / "README.md",
             *(ROOT / "docs").glob("*.md"), ROOT / "benchmarks" / "RESULTS.md",
             ROOT / "src" / "dropoutlab" / "examples" / "demo.toml"]  # fmt: skip
    for path in files:
        texts[str(path.relative_to(ROOT))] = f"{path.name}\n{path.read_text()}"
    found = [(where, m.group()) for where, text in texts.items() for m in ARCHIVE_NUMBER.finditer(text)]
    assert found == []


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_study_is_valid_and_named_after_its_file(capsys, tmp_path, path):
    code, out, err = run_cli(capsys, "run", path, "--dry-run", "--store", tmp_path / "x.db")
    assert code == 0, err
    name = path.stem.replace("_", "-")
    assert re.match(rf"{name}: \d+ runs? \(\d+ configurations? x \d+ seeds?\)", out), out
    assert not (tmp_path / "x.db").exists()


def test_reproductions_page_covers_both_reference_studies():
    page = (ROOT / "docs" / "reproductions.md").read_text()
    for example in ("cifar10_dropout_sweep.toml", "fashion_mnist_dropout_comparison.toml",
                    "digits_dropout_sweep_cnn.toml", "digits_dropout_comparison_mlp.toml"):  # fmt: skip
        assert f"examples/{example}" in page
        assert (ROOT / "examples" / example).is_file()


def test_the_study_files_min_effect_reaches_the_report_and_the_flag_overrides_it(
    capsys, write_study, tmp_path
):
    from conftest import TINY_STUDY

    path = write_study(TINY_STUDY.replace('name = "tiny"', 'name = "tiny"\nmin_effect = 0.05'))
    store = tmp_path / "runs.db"
    assert run_cli(capsys, "run", path, "--store", store, "--no-progress", "--workers", "1")[0] == 0
    code, out, err = run_cli(capsys, "report", "--store", store, "--format", "json")
    assert code == 0, err
    assert json.loads(out)["min_effect"] == 0.05
    code, out, err = run_cli(capsys, "report", "--store", store, "--format", "json", "--min-effect", "0.02")
    assert json.loads(out)["min_effect"] == 0.02
    bad = write_study(TINY_STUDY.replace('name = "tiny"', 'name = "tiny"\nmin_effect = 0'), "bad.toml")
    code, _, err = run_cli(capsys, "run", bad, "--dry-run")
    assert code == 2 and "min_effect: 0 is out of range; allowed: a fraction in (0, 1)" in err


def test_a_report_that_cannot_be_written_is_one_line_and_the_store_is_untouched(capsys, tiny_study, tmp_path):
    store = tmp_path / "runs.db"
    assert run_cli(capsys, "run", tiny_study, "--store", store, "--no-progress", "--workers", "1")[0] == 0
    before = store.read_bytes()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, out, err = run_cli(capsys, "report", "--store", store, "--out", blocker / "report")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"dropoutlab: error: {blocker / 'report'}: cannot write the report (")
    assert store.read_bytes() == before


def test_help_answers_without_importing_torch():
    code = (
        "import sys\nfrom dropoutlab.cli import main\n"
        "try:\n    main(['run', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'pandas', 'sqlalchemy', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "usage: dropoutlab run" in out and out.strip().endswith("[]")


def test_the_table_after_a_run_imports_neither_the_analysis_nor_scipy_stats(capsys, tiny_study, tmp_path):
    store = tmp_path / "runs.db"
    assert run_cli(capsys, "run", tiny_study, "--store", store, "--no-progress", "--workers", "1")[0] == 0
    code = (  # the study is stored: `run` only prints the table (digits' scikit-learn imports scipy.stats)
        "import sys\nfrom dropoutlab.cli import main\n"
        f"status = main(['run', {str(tiny_study)!r}, '--store', {str(store)!r}, '--no-progress'])\n"
        "print(status, sorted(m for m in ('dropoutlab.report.analysis', 'scipy.stats', 'matplotlib', 'pooch')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "4 already stored" in out and "test accuracy" in out
    assert out.strip().endswith("0 []")


def test_the_table_after_a_run_names_each_configuration_as_the_report_does(capsys, write_study, tmp_path):
    from conftest import TINY_STUDY

    from dropoutlab.report.analysis import analyze
    from dropoutlab.store import Store

    study = write_study(TINY_STUDY.replace('"dropout.hidden1" = [0.0, 0.5]', 'dropout = [{input = 0.0, '
                                           'hidden1 = 0.0}, {input = 0.2, hidden1 = 0.5}, {hidden1 = 0.3}]'))  # fmt: skip
    store = tmp_path / "runs.db"
    code, out, err = run_cli(capsys, "run", study, "--store", store, "--no-progress", "--workers", "1")
    assert code == 0, err
    with Store(store) as opened:
        labels = analyze(opened, "tiny").labels
    assert sorted(labels.values()) == [
        "dropout.hidden1=0.3",
        "dropout.input=0.2, dropout.hidden1=0.5",
        "no dropout",
    ]
    rows = out.split("test accuracy", 1)[1].splitlines()[1:4]
    assert sorted(row.split("  ")[0].strip() for row in rows) == sorted(labels.values())
    assert "input=0.0 hidden1=0.0" not in out


# ---------------------------------------------------------------- hardening: output, secrets, verbosity


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory) -> Path:
    """A store holding the tiny study's 4 runs, written once for the tests below that only read it."""
    from conftest import TINY_STUDY

    from dropoutlab.store import Store
    from dropoutlab.study import load_study, run_study

    folder = tmp_path_factory.mktemp("tiny")
    (folder / "tiny.toml").write_text(TINY_STUDY)
    with Store(folder / "runs.db") as store:
        run_study(load_study(folder / "tiny.toml"), store, device="cpu", progress=False, workers=1)
    return folder / "runs.db"


def cli_process(*args: str) -> subprocess.CompletedProcess:
    """The ``dropoutlab`` command in a process of its own (its logging goes to a real stderr)."""
    code = "import sys\nfrom dropoutlab.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=300
    )


def test_report_out_replaces_planted_symlinks_instead_of_writing_through_them(capsys, tiny_store, tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    victims = {}
    for name in ("report.html", "report.md", "curves-all.png"):
        victim = tmp_path / f"victim-{name}"
        victim.write_text("precious")
        (out / name).symlink_to(victim)
        victims[name] = victim
    code, _, err = run_cli(capsys, "report", "--store", tiny_store, "--out", out)
    assert code == 0, err
    for name, victim in victims.items():
        assert victim.read_text() == "precious"
        assert not (out / name).is_symlink() and (out / name).stat().st_size > 100
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no staging folder left


def test_verbose_before_or_after_the_command_logs_the_steps_on_stderr(tiny_store):
    quiet = cli_process("report", "--store", tiny_store, "--format", "json")
    assert quiet.returncode == 0 and quiet.stderr == ""
    for args in (("-v", "report"), ("report", "-v"), ("report", "--verbose")):
        done = cli_process(*args, "--store", tiny_store, "--format", "json")
        assert done.returncode == 0 and json.loads(done.stdout)["study"] == "tiny"
        lines = done.stderr.splitlines()
        assert f"INFO dropoutlab.store: {tiny_store}: store opened read-only (schema 8)" in lines
        assert f"INFO dropoutlab.store: {tiny_store}: read 4 runs of study 'tiny'" in lines
        assert all(line.startswith("INFO dropoutlab") for line in lines), lines  # no other library's chatter


def test_verbose_run_logs_each_stored_run(tmp_path, tiny_study):
    done = cli_process(
        "run", tiny_study, "--store", tmp_path / "s.db", "--no-progress", "--workers", "1", "-v"
    )
    assert done.returncode == 0, done.stderr
    assert "study 'tiny' checked: 2 grid points x 2 seeds" in done.stderr
    assert done.stderr.count(": stored run ") == 4


def test_the_baseline_error_separates_configurations_with_bars(capsys, tiny_store):
    code, _, err = run_cli(
        capsys, "report", "--store", tiny_store, "--format", "json", "--baseline", "dropout.hidden1=0.3"
    )
    assert code == 2 and err.count("\n") == 1
    assert "available configurations: dropout.hidden1=0.0 | dropout.hidden1=0.5" in err


def test_configuration_labels_holding_commas_stay_readable_in_the_baseline_error():
    import pandas as pd

    from dropoutlab.errors import DropoutlabError
    from dropoutlab.report.stats import resolve_baseline

    runs = pd.DataFrame({"a": [0, 0, 1, 1], "b": [0, 1, 0, 1]})
    runs["config"] = [f"a={a}, b={b}" for a, b in zip(runs["a"], runs["b"], strict=True)]
    runs.attrs["params"] = ["a", "b"]
    with pytest.raises(DropoutlabError) as info:
        resolve_baseline(runs, "a=0")
    assert "matches several configurations (a=0, b=0 | a=0, b=1)" in str(info.value)
    assert "Available configurations: a=0, b=0 | a=0, b=1 | a=1, b=0 | a=1, b=1" in str(info.value)


SECRETS = ("pw-in-userinfo", "pw-in-query", "ssl-key-pass")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://me:pw-in-userinfo@127.0.0.1:1/db?password=pw-in-query&sslpassword=ssl-key-pass",
        "postgresql://me@127.0.0.1:1/db?password=pw-in-query",
        "postgresql://me@127.0.0.1:1/db?sslpassword=ssl-key-pass&connect_timeout=1",
        "postgresql://me:pw-in-userinfo@host:notaport/db?password=pw-in-query",
        "mysql://me:pw-in-userinfo@host/db?password=pw-in-query",
    ],
)
def test_no_credential_of_a_store_url_is_ever_printed(capsys, tiny_study, url):
    pytest.importorskip("psycopg")
    for args in (
        ("report", "--store", url),
        ("export", "--store", url),
        ("run", tiny_study, "--store", url, "--dry-run"),
    ):
        code, out, err = run_cli(capsys, *args)
        assert code == 2 and err.count("\n") == 1, err
        assert not any(secret in out + err for secret in SECRETS), err
        assert "***" in err


def test_masking_covers_every_credential_form_sqlalchemy_knows():
    import sqlalchemy as sa

    from dropoutlab.store.connection import masked_text, shown_url

    url = sa.make_url("postgresql://me:p%40ss@h:5/db?password=q1&sslpassword=q2&sslmode=require")
    assert shown_url(url) == "postgresql://me:***@h:5/db?password=***&sslmode=require&sslpassword=***"
    text = "postgresql://me:secret@h/db?sslpassword=k&password=p and password=x sslpassword=y"
    assert (
        masked_text(text)
        == "postgresql://me:***@h/db?sslpassword=***&password=*** and password=*** sslpassword=***"
    )


def test_a_dangling_symlink_store_is_named_as_such(capsys, tiny_study, tmp_path):
    for target in (tmp_path / "gone" / "runs.db", tmp_path / "missing.db"):
        link = tmp_path / f"link-{target.parent.name}.db"
        link.symlink_to(target)
        for args in (("report", "--store", link), ("export", "--store", link),
                     ("run", tiny_study, "--store", link, "--no-progress")):  # fmt: skip
            code, _, err = run_cli(capsys, *args)
            assert code == 2 and err.count("\n") == 1
            assert f"{link}: a dangling symbolic link (to {target}, which does not exist)" in err
        assert not target.exists()


@pytest.mark.parametrize("offset", [100, 4096], ids=["header-page", "table-pages"])
def test_a_store_with_damaged_pages_is_called_corrupt(capsys, tiny_store, tiny_study, tmp_path, offset):
    path = tmp_path / "damaged.db"
    shutil.copyfile(tiny_store, path)
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(b"\xff" * 8192)
    before = path.read_bytes()
    for args in (("report", "--store", path), ("export", "--store", path),
                 ("run", tiny_study, "--store", path, "--no-progress")):  # fmt: skip
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and err.count("\n") == 1
        assert f"{path}: the store is corrupt (" in err and "schema version" not in err, err
    assert path.read_bytes() == before


def test_the_store_line_masks_the_urls_credentials(capsys, tiny_study, postgres_url):
    url = postgres_url + ("&" if "?" in postgres_url else "?") + "sslpassword=topsecret-ssl"
    code, out, err = run_cli(capsys, "run", tiny_study, "--store", url, "--no-progress", "--workers", "1")
    assert code == 0, err
    store_line = next(line for line in out.splitlines() if line.startswith("store: "))
    assert "sslpassword=***" in store_line and "topsecret" not in out + err
    password = __import__("sqlalchemy").make_url(postgres_url).password
    assert not password or password not in out + err
