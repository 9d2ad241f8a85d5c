"""Hostile and careless study files: tiny files that declare huge plans or models, TOML that
makes parsers slow or deep, settings that are not numbers, names that drive the terminal.

Memory reproductions run under an address-space cap in a subprocess (``run_limited`` of
test_data_hostile), so checking a file that merely declares something huge must fail there
with the one-line DropoutlabError, not a MemoryError.
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_data_hostile import linux_only, run_limited

from dropoutlab.cli import main
from dropoutlab.errors import DropoutlabError
from dropoutlab.study import expand_runs, load_study

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))
BASE = 'name = "s"\ndataset = "digits"\nmodel = "mlp"\nepochs = 1\nseeds = [0, 1]\n'
LOAD = "from dropoutlab.study import load_study\nload_study({path!r})"
BUDGET = 256 << 20  # the checks below need a few MB; the reproductions took 1.5 to 18 GB


def one_line(path: Path, *args: str) -> str:
    """The one DropoutlabError line that loading ``path`` gives."""
    with pytest.raises(DropoutlabError) as info:
        load_study(path)
    text = str(info.value)
    assert text.startswith(str(path)) and "\n" not in text
    return text


# ---------------------------------------------------------------- plans too large


@linux_only
def test_a_billion_seeds_are_refused_at_once_in_small_memory(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('name = "s"\ndataset = "digits"\nseeds = 1000000000\n')  # the 84-byte reproduction
    start = time.perf_counter()
    line = run_limited(LOAD.format(path=str(path)), BUDGET)
    assert time.perf_counter() - start < 60  # the subprocess's imports included
    assert "the plan (1 grid point x 1,000,000,000 seeds) has 1,000,000,000 runs" in line
    assert "more than the limit of 100,000" in line and "DROPOUTLAB_MAX_RUNS" in line


def test_a_grid_of_ten_to_the_ten_points_is_refused_before_expanding(tmp_path):
    keys = ["optimizer.lr", "optimizer.weight_decay", "epochs", "batch_size", "validation", "split_seed",
            "dropout.input", "dropout.hidden1", "dropout.hidden2", "eval_train"]  # fmt: skip
    grid = "\n".join(f'"{key}" = [{", ".join(str(i + 1) for i in range(10))}]' for key in keys)
    path = tmp_path / "g.toml"
    path.write_text(BASE + "[grid]\n" + grid + "\n")
    start = time.perf_counter()
    line = one_line(path)
    assert time.perf_counter() - start < 1.0
    assert "(10,000,000,000 grid points x 2 seeds) has 20,000,000,000 runs" in line


def test_the_run_limit_is_raised_by_its_environment_variable(tmp_path, monkeypatch):
    path = tmp_path / "s.toml"
    path.write_text(BASE + '[grid]\n"dropout.hidden1" = [0.0, 0.1, 0.2]\n')  # 3 points x 2 seeds
    monkeypatch.setenv("DROPOUTLAB_MAX_RUNS", "5")
    assert "has 6 runs, more than the limit of 5; to allow it, set the environment variable " in one_line(
        path
    )
    monkeypatch.setenv("DROPOUTLAB_MAX_RUNS", "6")
    assert len(expand_runs(load_study(path))) == 6
    monkeypatch.setenv("DROPOUTLAB_MAX_RUNS", "many")
    assert "DROPOUTLAB_MAX_RUNS: 'many' is not allowed; allowed: a whole number >= 1" in one_line(path)


# ---------------------------------------------------------------- models too large


def custom_model(units: str, extra: str = "") -> str:
    return (
        BASE.replace('model = "mlp"\n', "")
        + extra
        + f'[[model.layers]]\ntype = "flatten"\n[[model.layers]]\ntype = "dense"\nunits = {units}\n'
        + '[[model.layers]]\ntype = "dense"\nunits = "classes"\n'
    )


@linux_only
@pytest.mark.parametrize(
    ("units", "message"),
    [
        ("4_000_000", "has 300,000,010 parameters, more than the limit of 100,000,000"),
        ("40_000_000", "has 3,000,000,010 parameters"),
        ("4611686018427387904", "has 345,876,451,382,054,092,810 parameters"),  # 2**62
    ],
)
def test_a_huge_dense_layer_is_refused_from_its_size_without_building_it(tmp_path, units, message):
    path = tmp_path / "m.toml"
    path.write_text(custom_model(units))
    line = run_limited(LOAD.format(path=str(path)), BUDGET)
    assert f"model: custom on digits {message}" in line and "DROPOUTLAB_MAX_PARAMS" in line


def test_model_bounds_are_raised_by_their_environment_variables(tmp_path, monkeypatch):
    path = tmp_path / "m.toml"
    path.write_text(custom_model("1000"))  # 64*1000 + 1000 + 1000*10 + 10 = 75,010 parameters
    monkeypatch.setenv("DROPOUTLAB_MAX_PARAMS", "75009")
    assert "has 75,010 parameters, more than the limit of 75,009" in one_line(path)
    monkeypatch.setenv("DROPOUTLAB_MAX_PARAMS", "75010")
    load_study(path)
    # per sample: 64 inputs + 64 flattened + 1000 + 10 outputs; batch_size 64 (the default)
    monkeypatch.setenv("DROPOUTLAB_MAX_ACTIVATIONS", str(1138 * 64 - 1))
    line = one_line(path)
    assert "with batches of 64 has 72,832 activation values per batch" in line
    assert "DROPOUTLAB_MAX_ACTIVATIONS" in line


def test_a_convolution_with_a_million_filters_is_refused_by_its_activations(tmp_path):
    path = tmp_path / "c.toml"
    layers = (
        '[[model.layers]]\ntype = "conv2d"\nfilters = 1_000_000\nkernel = 3\npadding = "same"\n'
        '[[model.layers]]\ntype = "flatten"\n[[model.layers]]\ntype = "dense"\nunits = "classes"\n'
    )
    path.write_text(BASE.replace('model = "mlp"\n', "") + layers)
    line = one_line(path)
    assert "DROPOUTLAB_MAX_PARAMS" in line or "DROPOUTLAB_MAX_ACTIVATIONS" in line


def test_shape_only_summary_matches_the_built_network():
    from dropoutlab.models import PRESETS, build_model, summarize_model

    for name, layers in PRESETS.items():
        for shape in ((1, 8, 8), (3, 32, 32)):
            rates = {slot: 0.3 for slot in ("input", "hidden1", "conv", "dense1")}
            model = build_model(layers, rates, shape, 10)
            rows = summarize_model(layers, rates, shape, 10)
            built = [
                (n, type(m).__name__, sum(p.numel() for p in m.parameters()))
                for n, m in model.named_children()
            ]
            assert [(r.name, r.kind, r.params) for r in rows] == built, name
            assert sum(r.params for r in rows) == sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- TOML that is slow or deep to parse


@linux_only
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a" + ".a" * 19_999 + " = 1\n", "a dotted key of more than 64 parts (line 3)"),
        ("x = " + "[" * 5000 + "]" * 5000 + "\n", "brackets nested more than 32 deep (line 3)"),
        ("x = " + "{a = " * 5000 + "1" + "}" * 5000 + "\n", "brackets nested more than 32 deep"),
        ("[" + ".".join(["t"] * 20_000) + "]\n", "a dotted key of more than 64 parts"),
        ('[grid]\n"dropout' + ".a" * 20_000 + '" = [1]\n', "a key of more than 64 parts"),
    ],
    ids=["dotted-key", "nested-arrays", "nested-tables", "dotted-header", "dotted-grid-key"],
)
def test_toml_that_is_deep_or_has_long_keys_gives_one_line_in_bounded_memory(tmp_path, text, message):
    path = tmp_path / "t.toml"
    path.write_text('name = "t"\ndataset = "digits"\n' + text)
    line = run_limited(LOAD.format(path=str(path)), BUDGET)
    assert message in line


def test_brackets_and_dots_inside_strings_and_comments_are_text(tmp_path):
    deep = "[" * 100 + "." * 100
    path = tmp_path / "ok.toml"
    path.write_text(
        f'name = "ok"\ndescription = "{deep}"\n# {deep}\ndataset = \'digits\'  # {deep}\n'
        f'seeds = [0]\n[optimizer]\nlr = 0.001\n[grid]\n"dropout.hidden1" = [0.0, 0.5]\n'
        f'x_note = """{deep}\\""" still text {deep}"""\n'.replace("x_note", "#")
    )
    assert load_study(path).description == deep


def test_a_study_file_over_a_mebibyte_is_refused_unread(tmp_path):
    path = tmp_path / "big.toml"
    path.write_text(BASE + "# " + "x" * (1 << 20) + "\n")
    assert "a study file is at most 1 MiB of text" in one_line(path)


@pytest.mark.parametrize("text", ["x = " + "1" * 5000, "x = 1\x00", "x = [1, 'a'"])
def test_toml_the_parser_refuses_is_one_line(tmp_path, text):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert "not valid TOML" in one_line(path)


# ---------------------------------------------------------------- settings that are not numbers


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("[optimizer]\nlr = nan", "optimizer.lr: nan is not a finite number; allowed: > 0"),
        ("[optimizer]\nlr = inf", "optimizer.lr: inf is not a finite number; allowed: > 0"),
        ("[optimizer]\nlr = 1e400", "optimizer.lr: inf is not a finite number"),
        ("[optimizer]\nlr = -0.1", "optimizer.lr: -0.1 is out of range; allowed: > 0"),
        ("[optimizer]\nlr = 0", "optimizer.lr: 0 is out of range; allowed: > 0"),
        ("[optimizer]\nlr = 1" + "0" * 400, "optimizer.lr: a whole number of 1329 bits is out of range"),
        (
            "[optimizer]\nweight_decay = nan",
            "optimizer.weight_decay: nan is not a finite number; allowed: >= 0",
        ),
        ('[optimizer]\nname = "sgd"\nmomentum = nan', r"optimizer.momentum: nan is not a finite number"),
        ("[early_stopping]\nmin_delta = nan", "early_stopping.min_delta: nan is not a finite number"),
        ("validation = nan", r"validation: nan is not a finite number; allowed: \[0.0, 1.0\)"),
        (
            '[grid]\n"validation" = [0.1, nan]',
            r"validation: nan is not a finite number.*grid point validation=nan",
        ),
        ("min_effect = nan", r"min_effect: nan is not a finite number; allowed: a fraction in \(0, 1\)"),
        (
            "[dropout]\nhidden1 = nan",
            r"dropout.hidden1: a dropout rate must be a number in \[0, 1\), got nan",
        ),
        ("seeds = [9223372036854775808]", r"seeds\[0\]: 9223372036854775808 is out of range; allowed: 0 to "),
        ("split_seed = 99999999999999999999999", "split_seed: 99999999999999999999999 is out of range"),
        ("epochs = 9223372036854775808", "the largest whole number the store holds"),
    ],
)
def test_every_number_is_finite_and_in_its_documented_range(tmp_path, change, message):
    top = {line.split("=")[0].strip() for line in change.split("[")[0].splitlines() if "=" in line}
    base = "".join(line + "\n" for line in BASE.splitlines() if line.split("=")[0].strip() not in top)
    path = tmp_path / "n.toml"
    path.write_text(base + change + "\n")
    assert re.search(message, one_line(path))


def test_the_largest_sqlite_integer_is_a_valid_seed(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(BASE.replace("seeds = [0, 1]", "seeds = [9223372036854775807]"))
    assert load_study(path).seeds == (2**63 - 1,)


def test_the_docs_state_the_ranges_the_checks_use():
    docs = (ROOT / "docs" / "study-files.md").read_text()
    assert "| `[optimizer]` `lr` | number | `0.001` | > 0 |" in docs


# ---------------------------------------------------------------- text printed back


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('name = "\\u001b]0;pwned\\u0007\\u001b[2J"', r"name: contains the control character '\\x1b'"),
        ('name = "a\\u0000b"', r"name: contains the control character '\\x00'"),
        ('name = "two\\nlines"', r"name: contains the control character '\\n'"),
        (
            'description = "\\u001b[2J"',
            r"description: contains the control character '\\x1b'.*line breaks are fine",
        ),
    ],
)
def test_control_characters_in_names_and_descriptions_are_refused(tmp_path, line, message):
    key = line.split(" ")[0]
    base = "".join(s + "\n" for s in BASE.splitlines() if not s.startswith(key + " "))
    path = tmp_path / "c.toml"
    path.write_text(base + line + "\n")
    assert re.search(message, one_line(path))


def test_a_description_may_span_lines(tmp_path):
    path = tmp_path / "d.toml"
    path.write_text(BASE + 'description = """first line\n\tsecond line"""\n')
    assert load_study(path).description == "first line\n\tsecond line"


def test_dry_run_checks_what_run_would(capsys, tmp_path):
    study = tmp_path / "v.toml"
    study.write_text(BASE + "validation = nan\n")
    assert main(["run", str(study), "--dry-run"]) == 2
    assert "validation: nan is not a finite number" in capsys.readouterr().err
    study.write_text(BASE)
    assert main(["run", str(study), "--dry-run", "--device", "tpu"]) == 2
    assert "--device: 'tpu' is not allowed" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["run", str(study), "--dry-run", "--store", str(tmp_path / "file" / "s.db")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


#: A 1x1 convolution of 4096 filters on batches of 1: a tiny training step, 6 GiB to evaluate.
WIDE = (
    BASE.replace('model = "mlp"\n', "batch_size = 1\n")
    + """
[[model.layers]]
type = "conv2d"
filters = 4096
kernel = 1
activation = "relu"
[[model.layers]]
type = "flatten"
[[model.layers]]
type = "dense"
units = "classes"
"""
)


@pytest.mark.parametrize("stack", ["auto", "off"])
def test_a_run_refuses_before_anything_trains_what_the_dry_run_refuses_for_memory(
    capsys, tmp_path, monkeypatch, stack
):
    import dropoutlab.study.runner as runner
    import dropoutlab.train.plan as plan
    from dropoutlab.store import Store

    monkeypatch.setattr(plan, "available_memory", lambda device: 20 << 20)  # a machine with 20 MiB free

    def load_dataset(*args, **kwargs):
        raise AssertionError("the data was loaded for a plan that does not fit")

    monkeypatch.setattr(runner, "load_dataset", load_dataset)
    study, store = tmp_path / "w.toml", tmp_path / "s.db"
    study.write_text(WIDE)
    errors = []
    for dry in (["--dry-run"], []):
        argv = [
            "run",
            str(study),
            "--store",
            str(store),
            "--device",
            "cpu",
            "--workers",
            "1",
            "--stack",
            stack,
        ]
        assert main([*argv, "--no-progress", *dry]) == 2
        errors.append(capsys.readouterr().err)
    assert errors[0] == errors[1] and errors[1].count("\n") == 1
    assert "more than the 20.0 MiB available on cpu: the evaluation batch (2048 rows) dominates" in errors[1]
    with Store(store, readonly=True) as kept:
        assert kept.count_runs("s") == 0 and kept.study_definition("s") is None


# ---------------------------------------------------------------- fuzz

KEYS = ["name", "description", "seeds", "grid", "min_effect", "dataset", "model", "dropout", "epochs",
        "batch_size", "normalize", "validation", "split_seed", "init", "eval_train", "optimizer",
        "early_stopping", "layers", "type", "units", "lr", "hidden1", "dropout.hidden1", "optimizer.lr",
        "monitor", "patience", "x"]  # fmt: skip
SCALARS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from(["digits", "mlp", "cnn", "adam", "sgd", "unit", "val_loss", "relu", "classes", "dense"]),
    st.text(max_size=8),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4),
    max_leaves=12,
)


def toml_value(value) -> str:
    """``value`` as an inline TOML value (NaN and infinities spelled as TOML spells them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if value != value
            else ("inf" if value > 0 else "-inf")
            if abs(value) == float("inf")
            else repr(value)
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return (
            '"'
            + "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in value)
            + '"'
        )
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f'"{k}" = {toml_value(v)}' for k, v in value.items()) + "}"


def check_gives_study_or_one_line(text: str) -> None:
    """Loading ``text`` as a study file gives a study or a one-line DropoutlabError, nothing else."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.toml"
        path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
        try:
            study = load_study(path)
        except DropoutlabError as exc:
            assert "\n" not in str(exc)
        else:
            assert study.name and study.seeds


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=8), st.booleans())
def test_random_toml_documents_give_a_study_or_a_dropoutlab_error(doc, valid_start):
    if valid_start:  # most documents then get past name and dataset, into the settings
        doc = {"name": "fuzz", "dataset": "digits", "epochs": 1, **doc}
    check_gives_study_or_one_line("".join(f'"{k}" = {toml_value(v)}\n' for k, v in doc.items()))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    example=st.sampled_from(EXAMPLES),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["delete", "insert", "replace", "duplicate-line", "drop-line"]),
            st.integers(0, 10**6),
            st.text(alphabet="[]{}.=,\"'#\n 0123456789-+naninfe_abcxyz", max_size=6),
        ),
        min_size=1,
        max_size=5,
    ),  # fmt: skip
)
def test_mutated_example_study_files_give_a_study_or_a_dropoutlab_error(example, edits):
    text = example.read_text()
    for kind, at, chars in edits:
        lines = text.splitlines(keepends=True)
        at_char, at_line = at % (len(text) + 1), at % max(len(lines), 1)
        if kind == "delete":
            text = text[:at_char] + text[at_char + len(chars) + 1 :]
        elif kind == "insert":
            text = text[:at_char] + chars + text[at_char:]
        elif kind == "replace":
            text = text[:at_char] + chars + text[at_char + len(chars) :]
        elif kind == "duplicate-line" and lines:
            text = "".join(lines[: at_line + 1] + lines[at_line:])
        elif lines:
            text = "".join(lines[:at_line] + lines[at_line + 1 :])
    check_gives_study_or_one_line(text)


def test_a_dataset_path_the_system_refuses_is_one_line(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(f'name = "p"\ndataset = "npz:{"a" * 5000}.npz"\n')
    assert "dataset: cannot read 'npz:aaaa" in one_line(path) and "File name too long" in one_line(path)


# ---------------------------------------------------------------- names, keys and files a new user writes


def test_a_megabyte_name_is_refused_by_its_length_in_one_short_line(tmp_path):
    path = tmp_path / "n.toml"
    path.write_text(BASE.replace('name = "s"', f'name = "{"n" * 1_000_000}"'))
    line = one_line(path)
    assert "name: has 1,000,000 characters, more than the limit of 200" in line
    assert "DROPOUTLAB_MAX_NAME_CHARS" in line and len(line) < len(str(path)) + 300


@linux_only
def test_a_megabyte_name_is_refused_under_a_memory_cap(tmp_path):
    path = tmp_path / "n.toml"  # before: accepted, 1 MB printed per line and 8.1 MB of store for 2 runs
    path.write_text(BASE.replace('name = "s"', f'name = "{"n" * 1_000_000}"'))
    line = run_limited(LOAD.format(path=str(path)), BUDGET)
    assert "name: has 1,000,000 characters, more than the limit of 200" in line and len(line) < 600


def test_names_and_descriptions_at_their_bounds_pass_and_one_more_character_is_refused(tmp_path):
    path = tmp_path / "b.toml"
    text = BASE.replace('name = "s"', f'name = "{"n" * 200}"') + f'description = "{"d" * 10_000}"\n'
    path.write_text(text)
    study = load_study(path)
    assert len(study.name) == 200 and len(study.description) == 10_000
    path.write_text(text.replace('"d', '"dd'))
    assert "description: has 10,001 characters, more than the limit of 10,000" in one_line(path)
    path.write_text(text.replace('"n', '"nn'))
    assert "name: has 201 characters" in one_line(path)


def test_the_name_bound_is_raised_by_its_environment_variable(tmp_path, monkeypatch):
    path = tmp_path / "e.toml"
    path.write_text(BASE.replace('name = "s"', f'name = "{"n" * 300}"'))
    monkeypatch.setenv("DROPOUTLAB_MAX_NAME_CHARS", "300")
    assert len(load_study(path).name) == 300


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('name = "abc\\u202egpj.exe"', r"name: contains the bidirectional control '\\u202e' \(U\+202E\)"),
        ('name = "a\\u2066b"', r"name: contains the bidirectional control '\\u2066'"),
        ('name = "one\\u2028two"', r"name: contains the line separator '\\u2028'"),
        ('description = "p\\u2029q"', r"description: contains the line separator '\\u2029'"),
        ('description = "x\\u202dy"', r"description: contains the bidirectional control"),
    ],
)
def test_bidirectional_overrides_and_line_separators_are_refused_as_control_characters(
    tmp_path, line, message
):
    key = line.split(" ")[0]
    base = "".join(s + "\n" for s in BASE.splitlines() if not s.startswith(key + " "))
    path = tmp_path / "u.toml"
    path.write_text(base + line + "\n")
    assert re.search(message, one_line(path))


def test_a_study_file_that_starts_with_a_utf8_bom_is_read(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + BASE.encode())
    assert load_study(path).name == "s"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("epoch = 3", r"epoch: unknown key \(did you mean 'epochs'\?\)"),
        ("learning_rate = 0.1", r"learning_rate: unknown key \(did you mean 'lr' in \[optimizer\]\?\)"),
        (
            '[optimizer]\nname = "sgd"\nlearning_rate = 0.1',
            r"optimizer.learning_rate: unknown key \(did you mean 'lr'\?\)",
        ),
        (
            "[dropout]\nhiden1 = 0.1",
            r"dropout.hiden1: unknown slot for model 'mlp' \(did you mean 'hidden1'\?\)",
        ),
        (
            '[grid]\n"dropout.hiden1" = [0.1]',
            r"\(did you mean 'hidden1'\?\).*\(in the grid point dropout.hiden1=0.1\)",
        ),
        ('[grid]\n"epoch" = [1, 2]', r"unknown setting 'epoch' \(did you mean 'epochs'\?\)"),
        (
            "[early_stopping]\npatiance = 2",
            r"early_stopping.patiance: unknown key \(did you mean 'patience'\?\)",
        ),
    ],
)
def test_a_mistyped_or_foreign_key_gets_a_did_you_mean(tmp_path, change, message):
    path = tmp_path / "k.toml"
    path.write_text(BASE + change + "\n")
    assert re.search(message, one_line(path))


def test_a_key_nothing_is_close_to_gets_no_suggestion(tmp_path):
    path = tmp_path / "k.toml"
    path.write_text(BASE + "zzzz = 3\n")
    assert "zzzz: unknown key; allowed: " in one_line(path)


def test_a_dataset_error_does_not_name_a_grid_point_it_is_not_about(tmp_path):
    path = tmp_path / "d.toml"
    path.write_text(
        f'name = "d"\ndataset = "npz:{tmp_path / "missing.npz"}"\n[grid]\n"dropout.hidden1" = [0.0, 0.5]\n'
    )
    line = one_line(path)
    assert "missing.npz" in line and "grid point" not in line
    path.write_text(
        f'name = "d"\ndataset = "digits"\n[grid]\ndataset = ["digits", "npz:{tmp_path / "no.npz"}"]\n'
    )
    assert re.search(r"no\.npz.*\(in the grid point dataset=npz:", one_line(path))
