"""`dropoutlab run --until-decided`: looks stored once, seeds added only where the decision asks,
a killed study continuing the same design, and bad settings refused before anything trains."""

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys

import pytest

from dropoutlab import cli
from dropoutlab.cli import main
from dropoutlab.report.decide import DEFAULT_MAX_SEEDS, DEFAULT_STEP, Design, decide
from dropoutlab.store import Store
from dropoutlab.study import expand_runs, load_study
from dropoutlab.study.sequential import progress_label, run_label, run_until_decided

# Three configurations, 3 epochs, first look at 2 seeds: at 2 seeds the first look's level is
# so small that every comparison is undecided, so the second step always trains. The one that
# hardly learns (lr 1e-6: about 6 % against 90 %) is soon decided worse and gets no more seeds.
BASELINE = "dropout.hidden1=0.0, optimizer.lr=0.01"
BASE = 'baseline = "optimizer.lr=0.01,dropout.hidden1=0.0"\n'
SEQUENTIAL = f"[sequential]\nstep = 1\nmax_seeds = 6\n{BASE}"
GRID = '[[grid]]\n"dropout.hidden1" = [0.0, 0.5]\n\n[[grid]]\n"optimizer.lr" = [1e-6]\n'


def study_text(sequential=SEQUENTIAL, grid=GRID, min_effect="min_effect = 0.005\n"):
    return f"""
name = "seq"
dataset = "digits"
model = "mlp"
epochs = 3
batch_size = 128
eval_train = false
seeds = [0, 1]
{min_effect}
[optimizer]
lr = 0.01

{sequential}
{grid}"""


FLAGS = ["--device", "cpu", "--workers", "1", "--no-progress"]


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def stored(path):
    """``(runs table, looks)`` of study "seq" in the store at ``path``."""
    with Store(path, readonly=True) as store:
        return store.runs("seq"), store.looks("seq")


def pairs(runs):
    return sorted(zip(runs["config"], runs["seed"], strict=True))


def without_time(looks):
    return [{k: v for k, v in look.items() if k != "written_at"} for look in looks]


@pytest.fixture
def study(write_study):
    return write_study(study_text())


@pytest.mark.slow
def test_until_decided_stores_each_look_and_adds_seeds_only_where_the_decision_asked(capsys, study, tmp_path):
    store = tmp_path / "seq.db"
    code, out, err = run_cli(capsys, "run", study, "--until-decided", "--store", store, *FLAGS)
    assert code == 0, err
    runs, looks = stored(store)
    spec = load_study(study)
    first = {(run_label(r), r.seed) for r in expand_runs(spec)}
    design = Design(BASELINE, 0.005, start=2, step=1, max_seeds=6)
    assert looks[0]["design"] == dataclasses.asdict(design)

    assert [look["look"] for look in looks] == list(range(1, len(looks) + 1)) and len(looks) >= 2
    assert [look["seeds"] for look in looks] == list(design.grid()[: len(looks)])
    assert looks[0]["comparisons"] and all(c["verdict"] == "undecided" for c in looks[0]["comparisons"])
    # the store holds the first look's runs and exactly the seeds each look asked for, each once
    asked = {
        (config, seed) for look in looks for config, seeds in look["next_seeds"].items() for seed in seeds
    }
    assert pairs(runs) == sorted(first | asked) and len(set(runs["id"])) == len(runs)
    # each look is the decision on the runs trained before it, and asked only for what it names
    trained = set(first)
    for look in looks:
        table = runs[[pair in trained for pair in zip(runs["config"], runs["seed"], strict=True)]]
        again = decide(table, design).to_dict()
        assert again["next_seeds"] == look["next_seeds"] and again["comparisons"] == look["comparisons"]
        assert look["spent"] == len(table)
        trained |= {(config, seed) for config, seeds in look["next_seeds"].items() for seed in seeds}
    # it stopped: the last look is done, decided or at the most seeds
    assert looks[-1]["done"] and not looks[-1]["next_seeds"]
    assert looks[-1]["reason"] in ("decided", "max_seeds reached")
    seeds = runs.groupby("config")["seed"].nunique()
    assert seeds["dropout.hidden1=0.0, optimizer.lr=1e-06"] < seeds[BASELINE]  # decided worse: no more seeds
    assert "worse" in {c["verdict"] for look in looks[:3] for c in look["comparisons"]}
    assert f"{len(looks)} looks stored, {len(looks)} taken now" in out and "choose: " in out
    assert f"seeds spent: {len(runs)} runs of at most 18" in out

    # the same command again: no look taken, nothing trained
    code, out, err = run_cli(capsys, "run", study, "--until-decided", "--store", store, *FLAGS)
    assert code == 0, err
    assert f"{len(looks)} looks stored, 0 taken now; runs trained: nothing new" in out
    runs_again, looks_again = stored(store)
    assert pairs(runs_again) == pairs(runs) and looks_again == looks

    # a plain run of the same file afterwards is the same design (the store kept the file's own)
    code, out, err = run_cli(capsys, "run", study, "--store", store, *FLAGS)
    assert code == 0, err
    assert "6 runs planned, 6 already stored, nothing new" in out


@pytest.mark.slow
def test_a_kill_during_a_step_then_the_same_command_continues_without_retaking_a_look(study, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "dropoutlab.cli",
        "run",
        str(study),
        "--until-decided",
        "--stack",
        "off",
        *FLAGS,
    ]
    whole = subprocess.run([*cmd, "--store", str(tmp_path / "whole.db")], capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    # the baseline's seed 2 trains in the second step (every comparison is undecided at the first look)
    spec = load_study(study)
    runs = expand_runs(dataclasses.replace(spec, seeds=(0, 1, 2)))
    victim = next(r for r in runs if r.seed == 2 and run_label(r) == BASELINE)
    killed_store = tmp_path / "killed.db"
    env = {**os.environ, "DROPOUTLAB_FAULT": f"kill:{victim.id}:1:{tmp_path / 'fired'}"}
    killed = subprocess.run([*cmd, "--store", str(killed_store)], env=env, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL and (tmp_path / "fired").exists()
    runs_killed, looks_killed = stored(killed_store)
    assert [look["look"] for look in looks_killed] == [1] and victim.id not in set(runs_killed["id"])
    written = "SELECT look, written_at FROM looks ORDER BY look"
    first_written = sqlite3.connect(killed_store).execute(written).fetchall()

    again = subprocess.run([*cmd, "--store", str(killed_store)], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    runs_after, looks_after = stored(killed_store)
    runs_whole, looks_whole = stored(tmp_path / "whole.db")
    assert looks_after[0] == looks_killed[0]
    assert sqlite3.connect(killed_store).execute(written).fetchall()[0] == first_written[0]  # read back
    assert without_time(looks_after) == without_time(looks_whole)  # the same design, look by look
    assert pairs(runs_after) == pairs(runs_whole) and len(set(runs_after["id"])) == len(runs_after)
    # the runs stored before the kill were not trained again
    before = runs_killed.set_index("id")["wall_s"]
    assert runs_after.set_index("id")["wall_s"].reindex(before.index).equals(before)


BAD = {  # study file, flags, the line
    "max_seeds below the first look": (
        study_text(f"[sequential]\nmax_seeds = 1\n{BASE}"),
        [],
        "max_seeds: 1 is below start (2)",
    ),
    "a step of 0": (
        study_text(f"[sequential]\nstep = 0\n{BASE}"),
        [],
        "step: 0; at least 1 seed added per look",
    ),
    "a step of 0 from the flag": (study_text(), ["--step", "0"], "step: 0; at least 1 seed added per look"),
    "no min_effect": (study_text(min_effect=""), [], "min_effect: missing"),
    "a min_effect of 0 from the flag": (
        study_text(),
        ["--min-effect", "0"],
        "min_effect: 0.0; expected a fraction",
    ),
    "one configuration": (study_text(grid=""), [], "nothing to compare: the grid has 1 configuration(s)"),
    "too many runs at the most": (
        study_text(),
        ["--max-seeds", "10000000000"],
        "more than the limit of 100,000",
    ),
    "no baseline": (study_text(""), [], "--until-decided: no baseline: no configuration (or several)"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_each_bad_setting_is_one_line_before_anything_trains(capsys, write_study, tmp_path, case):
    text, flags, message = BAD[case]
    store = tmp_path / "bad.db"
    code, out, err = run_cli(
        capsys, "run", write_study(text), "--until-decided", *flags, "--store", store, *FLAGS
    )
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err, err
    assert not store.exists()  # nothing trained, the store not even created


def test_step_and_max_seeds_flags_need_until_decided(capsys, study, tmp_path):
    code, _, err = run_cli(capsys, "run", study, "--max-seeds", "6", "--store", tmp_path / "x.db", *FLAGS)
    assert code == 2 and "--step, --max-seeds and --min-effect are for --until-decided" in err
    assert not (tmp_path / "x.db").exists()


def test_dry_run_until_decided_shows_the_design_and_trains_nothing(capsys, study, tmp_path):
    store = tmp_path / "dry.db"
    code, out, err = run_cli(
        capsys, "run", study, "--until-decided", "--max-seeds", "8", "--dry-run", "--store", store
    )
    assert code == 0, err
    assert f"until decided: baseline {BASELINE}; min_effect 0.005, alpha 0.05" in out
    assert (
        "7 looks planned at 2, 3, 4, 5, 6, 7, 8 seeds per configuration (step 1, max_seeds 8): at most 24 runs"
        in out
    )
    assert "seq: 6 runs (3 configurations x 2 seeds)" in out
    assert not store.exists()


@pytest.mark.slow
def test_a_study_resumed_with_another_design_is_refused_before_training(capsys, study, tmp_path):
    store = tmp_path / "seq.db"
    code, _, err = run_cli(
        capsys, "run", study, "--until-decided", "--max-seeds", "2", "--store", store, *FLAGS
    )
    assert code == 0, err  # max_seeds 2: one look, at the first seeds
    before, looks = stored(store)
    assert len(looks) == 1 and looks[0]["done"]
    code, out, err = run_cli(capsys, "run", study, "--until-decided", "--store", store, *FLAGS)
    assert code == 2 and err.count("\n") == 1
    assert "took 1 look(s) with another sequential design (changed: max_seeds 2 -> 6)" in err
    assert pairs(stored(store)[0]) == pairs(before)
    code, _, err = run_cli(capsys, "run", study, "--until-decided", "--dry-run", "--store", store)
    assert code == 2 and "another sequential design" in err
    # --replace archives the runs and the look, and starts the new design afresh
    code, out, err = run_cli(capsys, "run", study, "--until-decided", "--replace", "--store", store, *FLAGS)
    assert code == 0, err
    assert "kept the 6 stored runs as 'seq@archived-1'" in out
    with Store(store, readonly=True) as opened:
        assert len(opened.looks("seq@archived-1")) == 1
        assert opened.looks("seq")[0]["design"]["max_seeds"] == 6 and len(opened.looks("seq")) >= 2


def test_the_cli_names_the_designs_defaults(capsys):
    assert (cli.DEFAULT_STEP, cli.DEFAULT_MAX_SEEDS) == (DEFAULT_STEP, DEFAULT_MAX_SEEDS)
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "--until-decided" in text and f"else {DEFAULT_STEP})" in text and f"else {DEFAULT_MAX_SEEDS})" in text
    )


def test_the_progress_line_shows_the_look_the_verdicts_and_the_seeds_spent():
    assert progress_label("seq", [], 5, 18) == "seq look 1/5"
    looks = [
        {"look": 1, "comparisons": [{"verdict": "undecided"}, {"verdict": "undecided"}], "spent": 6},
        {"look": 2, "comparisons": [{"verdict": "worse"}, {"verdict": "undecided"}], "spent": 9},
    ]
    assert progress_label("seq", looks, 5, 18) == "seq look 3/5 (1 decided, 1 undecided, 9/18 seeds)"


class RacedStore(Store):
    """A store where another driver of the study writes look 1 just before this one does."""

    def write_look(self, study, look, record):
        if look == 1:
            super().write_look(study, look, {**record, "by": "the other driver"})
        super().write_look(study, look, record)


@pytest.mark.slow
def test_a_look_another_driver_took_meanwhile_is_read_back_and_followed(study, tmp_path):
    spec = load_study(study)
    design = Design(BASELINE, 0.005, start=2, step=1, max_seeds=3)
    with RacedStore(tmp_path / "raced.db") as store:
        outcome = run_until_decided(spec, store, design, decide, device="cpu", workers=1, progress=False)
        looks = store.looks("seq")
    assert [look["look"] for look in looks] == [1, 2] and outcome.taken == 1
    assert looks[0]["by"] == "the other driver" and outcome.looks == looks
    assert outcome.decision.done and outcome.spent == sum(looks[-1]["seeds_run"].values())


@pytest.mark.slow
def test_the_report_reads_a_study_run_until_decided_with_the_design_its_looks_recorded(
    capsys, study, tmp_path
):
    from dropoutlab.report import analyze

    store = tmp_path / "seq.db"
    assert run_cli(capsys, "run", study, "--until-decided", "--store", store, *FLAGS)[0] == 0
    with Store(store, readonly=True) as s:
        analysis = analyze(s, "seq", min_effect=0.2, alpha=0.2)  # other levels: the looks' design wins
        looks = s.looks("seq")
    assert len(analysis.looks) == len(looks) >= 2
    assert dataclasses.asdict(analysis.decision.design) == looks[-1]["design"]
    assert analysis.decision.verdicts() == {c["config"]: c["verdict"] for c in looks[-1]["comparisons"]}
    assert (
        analysis.findings[0].kind == "choice"
        and "--until-decided` adds them" not in analysis.findings[0].text
    )
