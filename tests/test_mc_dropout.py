"""Monte Carlo dropout in a study: measured after training, stored, analysed and reported."""

import json

import pytest
import torch
from conftest import make_run, prepared
from torch import nn

from dropoutlab.report import analyze
from dropoutlab.report.numbers import analysis_to_json
from dropoutlab.report.sections import report_sections
from dropoutlab.report.write import write_study_report
from dropoutlab.store import Store
from dropoutlab.study import load_study, run_study
from dropoutlab.train import train_run, train_runs
from dropoutlab.train.uncertainty import mc_predict, mc_sweep, uncertainty_metrics

CPU = torch.device("cpu")


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 3))


def test_the_sweep_nests_its_passes_and_matches_the_sampler():
    model = small_model()
    x, y = torch.randn(300, 5), torch.randint(0, 3, (300,))
    entries = mc_sweep(model, x, y, (0, 1, 7, 40), seed=11)
    assert [e["samples"] for e in entries] == [0, 1, 7, 40]
    # T = 40 is the mean of the same 40 passes mc_predict draws from that seed
    expected = uncertainty_metrics(mc_predict(model, x, 40, seed=11), y)
    for key, value in expected.items():
        assert entries[-1][key] == pytest.approx(value, rel=1e-9, abs=1e-12)
    # and T = 7 the mean of the first 7 of them
    first = uncertainty_metrics(mc_predict(model, x, 40, seed=11)[:7], y)
    assert entries[2]["nll"] == pytest.approx(first["nll"], rel=1e-9)
    deterministic = uncertainty_metrics(mc_predict(model, x, 0), y)
    assert entries[0]["acc"] == deterministic["acc"] and entries[0]["mutual_information"] == 0
    assert entries[1]["mutual_information"] == pytest.approx(0, abs=1e-12)  # one pass cannot disagree
    assert entries[3]["mutual_information"] > 0
    assert sum(count for count, _, _ in entries[3]["reliability"]) == 300


def test_both_engines_give_a_run_the_same_monte_carlo_numbers(digits, float64):
    # without dropout both engines train the same weights (to float64 rounding), and MC testing
    # rebuilds each run's own model whatever the engine: the entries must agree
    runs = [make_run(seed, mc_samples=[1, 5], epochs=2) for seed in (0, 1)]
    data = prepared(digits, runs[0])
    stacked = train_runs(runs, data, CPU, "stacked")
    for run, from_stack in zip(runs, stacked, strict=True):
        alone = train_run(run, data, CPU)
        assert [e["samples"] for e in alone.mc] == [0, 1, 5]
        for a, b in zip(alone.mc, from_stack.mc, strict=True):
            assert a["acc"] == b["acc"]
            assert a["nll"] == pytest.approx(b["nll"], rel=1e-9)
        assert alone.mc[0]["acc"] == pytest.approx(alone.test_acc)  # T = 0 is the usual test


def test_a_runs_monte_carlo_masks_are_seeded_by_the_run(digits):
    run = make_run(0, mc_samples=[4], dropout={"hidden1": 0.5}, epochs=1)
    data = prepared(digits, run)
    first, again = train_run(run, data, CPU), train_run(run, data, CPU)
    assert first.mc == again.mc
    assert first.mc[1]["mutual_information"] > 0 and first.mc[1]["nll"] != first.mc[0]["nll"]


def test_without_mc_samples_nothing_is_measured(digits):
    run = make_run(0, epochs=1)
    assert train_run(run, prepared(digits, run), CPU).mc == ()


MC_STUDY = """
name = "mc"
dataset = "digits"
epochs = 2
seeds = 3
mc_samples = [1, 8]
[grid]
"dropout.hidden1" = [0.0, 0.4]
"""


def test_a_study_with_mc_samples_is_stored_analysed_and_reported(write_study, tmp_path):
    study = load_study(write_study(MC_STUDY))
    with Store(tmp_path / "s.db") as store:
        run_study(study, store, progress=False, workers=1)
        records = store.records("mc")
        assert all([m["samples"] for m in r["mc"]] == [0, 1, 8] for r in records)
        assert all(len(m["reliability"]) == 15 for r in records for m in r["mc"])
        a = analyze(store, "mc")
        report = write_study_report(store, "mc", tmp_path / "report")
    mc = a.mc
    assert mc is not None and mc.samples == (0, 1, 8)
    assert mc.no_dropout == (a.baseline,)  # rate 0: every pass is the deterministic one, not tested
    assert {(c.config, c.metric) for c in mc.contrasts} == {
        (c, m) for c in a.runs["config"].unique() if c != a.baseline for m in ("mc_acc", "mc_nll")
    }
    # the two tests join the one Holm family: one comparison with the baseline, two MC contrasts, the gap trend
    assert a.family_size == 4
    level = mc.level(mc.contrasts[0].config, 8, "acc")
    assert level.n == 3 and 0 < level.low < level.mean < level.high < 1
    finding = next(f for f in a.findings if f.kind == "mc_dropout")
    assert "8 Monte Carlo dropout passes" in finding.text and "nats" in finding.text
    numbers = analysis_to_json(a)["mc"]
    assert (
        numbers["samples"] == [0, 1, 8] and len(numbers["levels"]) == 2 * 3 and len(numbers["contrasts"]) == 2
    )
    json.dumps(numbers, allow_nan=False)
    section = next(s for s in report_sections(a) if s.title == "Monte Carlo dropout")
    assert [f[3] for f in section.figures] == ["mc-acc", "mc-nll", "mc-ece", "reliability-hidden1-0.4"]
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert (
        "## Monte Carlo dropout" in markdown
        and (tmp_path / "report" / "reliability-hidden1-0.4.png").exists()
    )
    assert report


def test_archiving_a_study_keeps_its_monte_carlo_rows(write_study, tmp_path):
    study = load_study(write_study(MC_STUDY.replace("seeds = 3", "seeds = 1")))
    with Store(tmp_path / "s.db") as store:
        run_study(study, store, progress=False, workers=1)
        before = {r["seed"]: r["mc"] for r in store.records("mc")}
        archived = store.archive_study("mc")
        after = {r["seed"]: r["mc"] for r in store.records(archived)}
    assert before == after and all(before.values())
