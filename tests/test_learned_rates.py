"""Concrete dropout's learned rates: recorded per epoch by both engines, stored, reported."""

import torch
from conftest import make_run, prepared

from dropoutlab.report import analyze
from dropoutlab.report.export import export_json
from dropoutlab.report.numbers import analysis_to_json
from dropoutlab.report.sections import report_sections
from dropoutlab.store import Store
from dropoutlab.study import load_study, run_study
from dropoutlab.train import train_run, train_runs

CPU = torch.device("cpu")


def concrete(seed, rate, **extra):
    return make_run(seed, epochs=3, dropout={"hidden1": {"rate": rate, "kind": "concrete"}}, **extra)


def test_both_engines_record_each_epochs_learned_rate(digits):
    runs = [concrete(0, 0.3), concrete(1, 0.3), concrete(2, 0.0)]
    data = prepared(digits, runs[0])
    stacked = train_runs(runs, data, CPU, "stacked")
    alone = train_run(runs[0], data, CPU)
    assert [(e, s) for e, s, _ in alone.learned_rates] == [(1, "hidden1"), (2, "hidden1"), (3, "hidden1")]
    for result in stacked[:2]:
        assert [(e, s) for e, s, _ in result.learned_rates] == [
            (1, "hidden1"),
            (2, "hidden1"),
            (3, "hidden1"),
        ]
        assert all(0 < rate < 1 for *_, rate in result.learned_rates)
    assert stacked[2].learned_rates == ()  # rate 0: no concrete layer, nothing learned
    # the rate moves from its start, and both engines move it alike (their masks differ)
    first, stack_first = alone.learned_rates[-1][2], stacked[0].learned_rates[-1][2]
    assert first != 0.3 and abs(first - stack_first) < 0.02


def test_plain_dropout_learns_nothing(digits):
    run = make_run(0, epochs=1, dropout={"hidden1": 0.3})
    assert train_run(run, prepared(digits, run), CPU).learned_rates == ()


def test_learned_rates_are_stored_exported_archived_and_reported(write_study, tmp_path):
    study = load_study(
        write_study(
            """
            name = "concrete"
            dataset = "digits"
            epochs = 2
            seeds = 2
            [dropout]
            hidden1 = {rate = 0.2, kind = "concrete"}
            [grid]
            "dropout.hidden2" = [0.0, 0.3]
            """
        )
    )
    with Store(tmp_path / "s.db") as store:
        run_study(study, store, progress=False, workers=1)
        records = store.records("concrete")
        assert all([(x["epoch"], x["slot"]) for x in r["learned_rates"]] == [(1, "hidden1"), (2, "hidden1")]
                   for r in records)  # fmt: skip
        assert '"learned_rates"' in export_json(records)
        a = analyze(store, "concrete")
        archived = store.archive_study("concrete")
        assert [r["learned_rates"] for r in store.records(archived)] == [r["learned_rates"] for r in records]
    assert len(a.learned_rates) == 4 * 2 and set(a.learned_rates["slot"]) == {"hidden1"}
    section = next(s for s in report_sections(a) if s.title == "Learned dropout rates")
    assert [f[3] for f in section.figures] == ["learned-rates"]
    caption, table = section.tables[0]
    assert list(table["epoch"]) == [2, 2] and list(table["seeds"]) == [2, 2]
    numbers = analysis_to_json(a)["learned_rates"]
    assert len(numbers) == 8 and {"config", "seed", "epoch", "slot", "rate"} <= set(numbers[0])
