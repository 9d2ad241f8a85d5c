"""``dropoutlab evaluate --mc``: Monte Carlo dropout on the stored weights of a finished study."""

import pytest

from dropoutlab.cli import main
from dropoutlab.errors import DropoutlabError
from dropoutlab.runs import MC_METRICS
from dropoutlab.store import Store
from dropoutlab.study import load_study, run_study
from dropoutlab.study.evaluate import evaluate_mc

STUDY = """
name = "{name}"
dataset = "digits"
model = "mlp"
epochs = 2
seeds = 2
{extra}
[dropout]
hidden1 = 0.3
hidden2 = 0.3
"""


def run(write_study, store, name, extra="", **options):
    study = load_study(write_study(STUDY.format(name=name, extra=extra), f"{name}.toml"))
    run_study(study, store, progress=False, workers=1, **options)
    return {r["seed"]: r for r in store.records(name)}


def test_evaluate_on_kept_weights_measures_what_the_study_measured(write_study, tmp_path):
    with Store(tmp_path / "s.db") as store:
        measured = run(write_study, store, "measured", extra="mc_samples = [1, 4]", keep_weights=True)
        assert all(store.weights(r["id"]) for r in measured.values())
        assert all([m["samples"] for m in r["mc"]] == [0, 1, 4] for r in measured.values())

        outcome = evaluate_mc(store, "measured", (1, 4, 6), device="cpu", progress=False)
        assert (outcome.evaluated, outcome.without_weights) == (2, 0)
        evaluated = {r["seed"]: r for r in store.records("measured")}
    for seed, record in evaluated.items():
        assert [m["samples"] for m in record["mc"]] == [0, 1, 4, 6]
        assert record["mc"][0]["acc"] == pytest.approx(record["test"]["acc"], abs=1e-6)  # float32 test acc
        # the same weights and the same masks (seeded by the run's seed) as in the study
        for got, want in zip(record["mc"], measured[seed]["mc"], strict=False):
            for key in MC_METRICS:
                assert got[key] == pytest.approx(want[key], rel=1e-6, abs=1e-9), (seed, got["samples"], key)
        assert record["mc"][3]["mutual_information"] > 0  # six passes with dropout on disagree somewhere


def test_evaluate_without_weights_is_one_line_and_the_cli_reports_what_it_did(write_study, tmp_path, capsys):
    path = tmp_path / "s.db"
    with Store(path) as store:
        run(write_study, store, "plain")
        with pytest.raises(DropoutlabError, match="no stored weights; run it with .*--keep-weights"):
            evaluate_mc(store, "plain", (5,), device="cpu", progress=False)
        run(write_study, store, "kept", keep_weights=True)
    assert main(["evaluate", "--store", str(path), "--study", "kept", "--mc", "3,2,3", "--no-progress"]) == 0
    assert "with 2, 3 passes measured for 2 runs" in capsys.readouterr().out
    with Store(path, readonly=True) as store:
        assert {m["samples"] for r in store.records("kept") for m in r["mc"]} == {0, 2, 3}
    assert main(["evaluate", "--store", str(tmp_path / "none.db"), "--mc", "3"]) == 2
    assert "no store here" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "--store", str(path), "--mc", "0"])
    assert "allowed: whole numbers from 1 to 1000" in capsys.readouterr().err


def test_archiving_a_study_keeps_its_weights(write_study, tmp_path):
    with Store(tmp_path / "s.db") as store:
        run(write_study, store, "kept", keep_weights=True)
        archived = store.archive_study("kept")
        assert all(store.weights(r["id"]) for r in store.records(archived))


def test_corrupt_stored_weights_are_one_line(write_study, tmp_path):
    with Store(tmp_path / "s.db") as store:
        records = run(write_study, store, "kept", keep_weights=True)
        with store.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE weights SET state = ? WHERE run_id = ?", (b"junk", records[0]["id"]))
        with pytest.raises(DropoutlabError, match="stored weights of run .* cannot be read"):
            evaluate_mc(store, "kept", (2,), device="cpu", progress=False)
