"""The one analysis every report renders: error rates by simulation, numbers in JSON, sections
that cannot be computed, the methods section, figure names and the words users read."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

import dropoutlab.report.analysis as analysis_module
from dropoutlab.report.analysis import StudyData, _analyze
from dropoutlab.report.model import Levels
from dropoutlab.report.numbers import analysis_to_json
from dropoutlab.report.sections import report_sections
from dropoutlab.report.stats import seeds_needed
from dropoutlab.report.text import p_text, pct, pp, signed
from dropoutlab.report.write import write_analysis


def analyze_runs(runs: pd.DataFrame, baseline=None, **levels):
    """The report's analysis of a runs table (``Store.runs()`` layout, parameters in attrs)."""
    return _analyze(StudyData.from_runs(runs), baseline=baseline, levels=Levels(**levels))


def analyze_records(records: list[dict], study: str):
    """The report's analysis of store records (``Store.records``)."""
    return _analyze(StudyData.from_records(records), study)


CLAIM_WORDS = ("higher test accuracy than", "lower test accuracy than", "higher than", " is better than ",
               " is worse than ", " interact on ", "narrows", "widens")  # fmt: skip


def study(rng, effects: dict, seeds: int = 3, param: str = "dropout.conv", noise=0.005, seed_sd=0.01):
    """A runs table like ``Store.runs()``: test accuracy 0.70 + effect + seed offset + noise."""
    offsets = rng.normal(0, seed_sd, seeds)
    rows = []
    for value, effect in effects.items():
        for s in range(seeds):
            test = 0.70 + effect + offsets[s] + rng.normal(0, noise)
            train = 0.90 + offsets[s] + rng.normal(0, noise)
            rows.append({"config": f"{param}={value}", "seed": s, "status": "completed", "test_acc": test,
                         "test_loss": 1 - test, "final_train_acc": train, "final_train_eval_acc": train + 0.01,
                         "final_val_acc": test, "best_epoch": 5, param: value})  # fmt: skip
    runs = pd.DataFrame(rows)
    runs.attrs["params"] = [param]
    return runs


# ---------------------------------------------------------------------------- error rates


def test_null_studies_make_a_claim_of_a_difference_in_at_most_alpha_of_them():
    """Every claim of a difference comes from a family at alpha: the decision (the comparisons with
    the baseline, placement) or the Holm family (the gap trend). An equivalence is no false claim here."""
    rng = np.random.default_rng(2024)
    studies, alpha = 200, 0.05
    claimed = raw = 0
    for _ in range(studies):
        a = analyze_runs(study(rng, {r: 0.0 for r in (0.0, 0.1, 0.2, 0.3, 0.5)}), alpha=alpha)
        claims = [f for f in a.headline if f.claim and f.kind != "equivalent"]
        worded = [f for f in a.headline if any(w in f.text for w in CLAIM_WORDS)]
        assert bool(claims) == bool(worded), [f.text for f in a.headline]
        assert not [f for f in a.exploratory if f.claim]
        claimed += bool(claims)
        raw += any(c.p_value < alpha for c in a.comparisons)
    assert claimed / studies <= alpha
    assert raw / studies > 2 * alpha  # without the family, these studies would claim far more often


def test_a_difference_of_min_effect_is_detected_at_the_promised_seeds():
    """The seeds ``seeds_needed`` promises detect a 2-SD difference in >= 80% of studies."""
    rng = np.random.default_rng(7)
    noise = 0.005
    sd_diff = noise * np.sqrt(2)  # SD of a paired difference of two runs with the same seed
    effects = {"0.01": 0.0, "0.02": 2 * sd_diff, "0.03": 0.0, "0.04": 0.0}
    m = len(effects) - 1  # a learning-rate sweep: no rate axis, the family is the comparisons
    promised = int(seeds_needed(2 * sd_diff, sd_diff, alpha=0.05, m=m))
    assert promised == 6
    detected = 0
    studies = 150
    for _ in range(studies):
        runs = study(rng, effects, seeds=promised, param="optimizer.lr", noise=noise)
        a = analyze_runs(runs, baseline="optimizer.lr=0.01")
        assert a.family_size == m
        detected += a.comparison("optimizer.lr=0.02").significant
    assert detected / studies >= 0.8


def test_alpha_reaches_every_verdict():
    rng = np.random.default_rng(3)
    runs = study(rng, {0.0: 0.0, 0.2: 0.006, 0.5: -0.02}, seeds=4)
    loose = analyze_runs(runs, alpha=0.2)
    strict = analyze_runs(runs, alpha=0.001)
    flagged = {a.alpha: {c.config for c in a.comparisons if c.significant} for a in (loose, strict)}
    assert flagged[0.2] != flagged[0.001] and flagged[0.001] < flagged[0.2]
    assert [f.text for f in loose.headline] != [f.text for f in strict.headline]
    assert all(f.kind != "none_distinguishable" for f in loose.headline)


def test_confidence_reaches_every_interval_and_sentence():
    rng = np.random.default_rng(4)
    runs = study(rng, {0.0: 0.0, 0.2: 0.01, 0.5: 0.0})
    wide, narrow = analyze_runs(runs, confidence=0.99), analyze_runs(runs, confidence=0.8)
    c99, c80 = wide.comparison("dropout.conv=0.2"), narrow.comparison("dropout.conv=0.2")
    assert c99.ci_high - c99.ci_low > c80.ci_high - c80.ci_low
    assert wide.configs[0].test_acc.high > narrow.configs[0].test_acc.high
    # The decision's sentences quote its own intervals, at 1 - alpha (its verdicts are read from
    # them); every other interval is at the report's confidence.
    decision = {"choice", "better", "worse", "equivalent", "undecided"}
    assert any("99% CI" in f.text for f in wide.findings)
    assert not any("95% CI" in f.text for f in wide.findings if f.kind not in decision)
    assert any("simultaneous 95% CI" in f.text for f in wide.findings if f.kind in decision)


def test_simultaneous_intervals_never_exclude_zero_beside_not_distinguishable():
    rng = np.random.default_rng(9)
    excluding = 0
    for _ in range(40):
        # one true difference near the edge of detection, so that some intervals exclude 0
        a = analyze_runs(study(rng, {0.0: 0.0, 0.1: 0.0, 0.2: 0.02, 0.3: 0.0}))
        for c in a.comparisons:
            if c.ci_low > 0 or c.ci_high < 0:
                excluding += 1
                assert c.significant
    assert excluding >= 5  # 11 with this seed: the check above ran, it cannot pass by never being reached


# ---------------------------------------------------------------------------- JSON


def _rendered_numbers(value) -> set[str]:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return set()
    if isinstance(value, list):
        return {t for v in value for t in _rendered_numbers(v)}
    x = float(value)
    if not np.isfinite(x):
        return set()
    out = {
        pct(x).rstrip("%"),
        signed(x),
        signed(abs(x)),
        signed(abs(x)).lstrip("+"),
        f"{100 * abs(x):.1f}",
        f"{x:.2f}",
        f"{x:g}",
    }
    out |= {p_text(x).split(" ")[-1], f"{100 * x:.4g}"}
    if x == int(x):
        out.add(str(int(x)))
    return out


def test_json_holds_every_number_a_sentence_quotes():
    rng = np.random.default_rng(1)
    runs = study(rng, {0.0: 0.0, 0.2: 0.02, 0.5: -0.01, 0.8: 0.0})
    runs.loc[runs.index[-1], "status"] = "diverged"
    a = analyze_runs(runs)
    data = json.loads(json.dumps(analysis_to_json(a)))
    assert (data["alpha"], data["confidence"], data["min_effect"]) == (0.05, 0.95, 0.01)
    stated = _rendered_numbers([data["alpha"], data["confidence"], data["min_effect"], data["power"]])
    stated |= {"80", "95", "1.0"}
    checked = 0
    for finding in data["findings"]:
        text = finding["text"]
        for label in sorted({a.label(c) for c in a.runs["config"]}, key=len, reverse=True):
            text = text.replace(label, "")  # parameter values in names are not quoted numbers
        text = text.replace("\u2212", "-").replace("F(", "(").replace("η²", "")
        allowed = stated | _rendered_numbers(list(finding["numbers"].values()))
        for token in re.findall(r"\d+(?:\.\d+)?", text):
            assert token in allowed, (token, finding["text"], finding["numbers"])
            checked += 1
    assert checked > 20


def test_json_holds_every_number_a_factor_sentence_quotes():
    """Grids of three parameters: the effect and interaction sentences too, with a failed run."""
    rng = np.random.default_rng(2)
    offsets = rng.normal(0, 0.01, 4)
    rows = []
    for rate in (0.0, 0.3, 0.6):
        for wd in (0.0, 0.001):
            for model in ("mlp", "resnet"):
                for s in range(4):
                    test = 0.8 + 0.03 * (rate > 0) * (model == "mlp") + offsets[s] + rng.normal(0, 0.004)
                    rows.append({"config": f"{rate}-{wd}-{model}", "seed": s, "status": "completed",
                                 "test_acc": test, "final_train_acc": test + 0.1, "dropout.rate": rate,
                                 "optimizer.weight_decay": wd, "model": model})  # fmt: skip
    runs = pd.DataFrame(rows)
    runs.attrs["params"] = ["dropout.rate", "optimizer.weight_decay", "model"]
    runs.loc[runs.index[5], "status"] = "failed"
    a = analyze_runs(runs)
    data = json.loads(json.dumps(analysis_to_json(a)))
    stated = _rendered_numbers([data["alpha"], data["confidence"], data["min_effect"], data["power"]])
    stated |= {"80", "95", "1.0"}
    checked = 0
    for finding in data["findings"]:
        if not finding["kind"].startswith("factor"):
            continue
        text = finding["text"]
        for key in ("dropout.rate", "optimizer.weight_decay"):
            text = re.sub(rf"{re.escape(key)}=[0-9.e-]+", "", text)  # parameter values are not quoted numbers
        text = text.replace("\u2212", "-").replace("dropout.rate", "").replace("optimizer.weight_decay", "")
        allowed = stated | _rendered_numbers(
            [v for v in finding["numbers"].values() if not isinstance(v, str)]
        )
        for token in re.findall(r"\d+(?:\.\d+)?", text):
            assert token in allowed, (token, finding["text"], finding["numbers"])
            checked += 1
    assert checked > 40


# ---------------------------------------------------------------------------- sections


def _grid_runs(missing_cell: bool) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for rate in (0.0, 0.5):
        for wd in (0.0, 1e-4):
            if missing_cell and (rate, wd) == (0.5, 1e-4):
                continue
            for s in range(3):
                acc = 0.7 + rng.normal(0, 0.005)
                rows.append({"config": f"dropout.conv={rate}, optimizer.weight_decay={wd}", "seed": s,
                             "status": "completed", "test_acc": acc, "final_train_acc": acc + 0.1,
                             "final_val_acc": acc, "dropout.conv": rate, "optimizer.weight_decay": wd})  # fmt: skip
    runs = pd.DataFrame(rows)
    runs.attrs["params"] = ["dropout.conv", "optimizer.weight_decay"]
    return runs


def test_a_section_that_cannot_be_computed_says_so_in_one_line_with_the_reason():
    a = analyze_runs(_grid_runs(missing_cell=True))
    assert a.interaction is None
    assert a.unavailable["interaction"].startswith(
        "the grid of dropout.conv x optimizer.weight_decay is not complete"
    )
    grid = next(s for s in report_sections(a) if s.title == "optimizer.weight_decay x dropout.conv")
    lines = [p for p in grid.paragraphs if "could not be computed" in p]
    assert lines == [
        "The interaction test could not be computed: the grid of dropout.conv x optimizer.weight_decay is "
        "not complete: no completed run for dropout.conv=0.5, optimizer.weight_decay=0.0001."
    ]
    complete = analyze_runs(_grid_runs(missing_cell=False))
    assert complete.interaction is not None and "interaction" not in complete.unavailable


def test_a_bug_in_a_section_keeps_its_traceback(monkeypatch):
    def broken(*args, **kwargs):
        return 1 / 0

    monkeypatch.setattr(analysis_module, "interaction_test", broken)
    with pytest.raises(ZeroDivisionError):
        analyze_runs(_grid_runs(missing_cell=False))


# ---------------------------------------------------------------------------- records: methods, names, words


def records(engine_keys: bool = True, study_name: str = "sweep") -> list[dict]:
    """Store records (the export layout) of a 3-rate x 3-seed sweep of dropout.hidden1."""
    rng = np.random.default_rng(5)
    out = []
    for rate in (0.0, 0.5, 0.7):
        for seed in range(3):
            history = [{"epoch": e, "train_loss": 1 / e, "train_acc": 0.5 + 0.1 * e + rng.normal(0, 0.01),
                        "val_loss": 1.1 / e, "val_acc": 0.5 + 0.09 * e + rng.normal(0, 0.01),
                        "train_eval_loss": None, "train_eval_acc": None} for e in (1, 2, 3)]  # fmt: skip
            env = {"dropoutlab": "0.1.0", "torch": "2.13.0", "python": "3.11.7", "device": "cpu: x86_64",
                   "threads": 1}  # fmt: skip
            if engine_keys:
                env.update(
                    engine="stacked", dtype="float32", stack={"size": 9, "position": seed, "wall_s": 3.0}
                )
            out.append({
                "id": f"{rate}-{seed}", "study": study_name, "params": {"dropout.hidden1": rate}, "seed": seed,
                "status": "completed", "history": history,
                "test": {"loss": 0.5, "acc": 0.8 - 0.02 * rate + rng.normal(0, 0.005)},
                "best_epoch": 3, "stopped_epoch": 3, "wall_s": 0.3,
                "spec": {"dataset": "digits", "model": "mlp", "epochs": 3, "batch_size": 64,
                         "dropout": {"input": 0.0, "hidden1": rate, "hidden2": 0.0}, "early_stopping": None,
                         "optimizer": {"name": "adam", "lr": 0.001}},
                "env": env,
            })  # fmt: skip
    return out


def test_methods_read_the_engine_and_precision_and_say_when_an_old_store_lacks_them():
    new = analyze_records(records(engine_keys=True), "sweep")
    assert new.methods.engines == {"stacked": 9} and new.methods.dtypes == {"float32": 9}
    assert new.methods.stack_sizes == {9: 9} and new.methods.devices == {"cpu: x86_64": 9}
    text = " ".join(report_sections(new)[-1].paragraphs)
    assert "9 trained stacked" in text and "precision: float32" in text and "Device: cpu (x86_64);" in text
    assert "dataset digits, model mlp, 3 epochs, batch size 64, optimizer adam (lr 0.001)" in text
    old = analyze_records(records(engine_keys=False), "sweep")
    assert old.methods.dtypes == {"not recorded": 9}
    assert "precision: not recorded" in " ".join(report_sections(old)[-1].paragraphs)


def test_report_files_have_short_unique_names_and_no_reference_study_numbers(tmp_path):
    paths = write_analysis(analyze_records(records(), "sweep"), tmp_path)
    pngs = sorted(k for k in paths if k.endswith(".png"))
    assert pngs == ["curves-all.png", "curves-hidden1-0.5.png", "curves-hidden1-0.7.png", "curves-no-dropout.png",
                    "rate-sweep-gap.png", "rate-sweep-test-acc.png"]  # fmt: skip
    for name in ("html", "markdown"):
        text = paths[name].read_text()
        assert "seed 000" not in text.lower() and "seed 001" not in text.lower()
        assert "Methods" in text and "simultaneous 95% CI" in text


def test_a_study_named_like_an_image_stays_text_in_the_markdown(tmp_path):
    name = "![t](http://x/y.png)"
    paths = write_analysis(analyze_records(records(study_name=name), name), tmp_path)
    markdown = paths["markdown"].read_text()
    assert name not in markdown and "!\\[t\\](http://x/y.png)" in markdown
    assert not re.search(r"!\[[^\]]*\]\(http", markdown)
    assert "<img" not in paths["html"].read_text().split("<main>")[1].split("<figure>")[0]


def test_two_seeds_show_the_range_and_say_too_few():
    a = analyze_records([r for r in records() if r["seed"] < 2], "sweep")
    best = next(f for f in a.headline if f.kind == "best")
    assert "2 seeds ranged" in best.text and "too few for an interval" in best.text
    assert "\u2212" not in best.text.split("ranged")[1].split(";")[0]  # no negative accuracy
    assert a.configs[0].test_acc.method == "range"


def test_identical_seeds_are_flagged_for_checking_the_seeding():
    runs = study(np.random.default_rng(0), {0.0: 0.0, 0.5: 0.0})
    runs.loc[runs["dropout.conv"] == 0.5, "test_acc"] = 0.75
    a = analyze_runs(runs)
    sentence = next(f.text for f in a.headline if f.kind == "no_spread")
    assert sentence == (
        "dropout.conv=0.5: all 3 seeds gave the same test accuracy (75.0%) \u2014 possible by chance on a "
        "small test set; if their test losses are equal too, the seeds did not take effect: check the seeding."
    )


def test_seeds_left_out_of_a_pairing_are_reported():
    runs = study(np.random.default_rng(0), {0.0: 0.0, 0.5: 0.01}, seeds=4)
    runs.loc[(runs["dropout.conv"] == 0.0) & (runs["seed"] == 3), "status"] = "failed"
    a = analyze_runs(runs)
    c = a.comparison("dropout.conv=0.5")
    assert c.test == "paired t" and c.seeds_left_out == (3,)
    sentence = next(f.text for f in a.headline if f.kind == "seeds_left_out")
    assert sentence == (
        "dropout.conv=0.5 vs no dropout: paired on the 3 seeds both completed; seed 3 left out "
        "(completed by only one of the two)."
    )
    assert pp(c.diff) in " ".join(f.text for f in a.headline)


def test_every_claim_of_the_holm_family_is_printed_beside_an_interval_that_excludes_zero():
    """Factor effects, interactions and the gap trend: a claim quotes the interval at its Holm
    step (never a simultaneous one that may reach 0); a sentence without a claim quotes one with 0 in it."""
    rng = np.random.default_rng(12)
    claims = others = 0
    for _ in range(6):
        rows = []
        offsets = rng.normal(0, 0.01, 4)
        for rate in (0.0, 0.3, 0.6):
            for wd in (0.0, 0.001):
                for model in ("mlp", "resnet"):
                    for s in range(4):
                        test = 0.8 + 0.008 * (rate > 0) + 0.006 * (model == "mlp") * (rate > 0) + offsets[s]
                        rows.append({"config": f"{rate}-{wd}-{model}", "seed": s, "status": "completed",
                                     "test_acc": test + rng.normal(0, 0.004), "final_train_acc": 0.9,
                                     "dropout.rate": rate, "optimizer.weight_decay": wd, "model": model})  # fmt: skip
        runs = pd.DataFrame(rows)
        runs.attrs["params"] = ["dropout.rate", "optimizer.weight_decay", "model"]
        for f in analyze_runs(runs).headline:
            if (
                f.kind not in ("factor_effect", "factor_interaction", "gap_trend")
                or "ci_low" not in f.numbers
            ):
                continue
            n = f.numbers
            if f.claim:
                claims += 1
                assert n["ci_low_step"] > 0 or n["ci_high_step"] < 0, f.text
                assert "% CI at its Holm step" in f.text and "simultaneous" not in f.text
            elif np.isfinite(n["ci_low"]):
                others += 1
                assert n["ci_low"] <= 0 <= n["ci_high"], f.text
                assert "at its Holm step" not in f.text
    assert claims >= 5 and others >= 5  # both kinds of sentence were checked


# ---------------------------------------------------------------------------- sub-grids, rate peak


def _kinds_runs(rng) -> pd.DataFrame:
    """The kinds example's shape: a baseline sub-grid (rate 0, the default kind) beside a
    sub-grid crossing three kinds with rates 0.1 and 0.3; kind 'b' is 2 pp worse at 0.3 only."""
    rows = []
    cells = [(0.0, "standard")] + [(r, k) for k in ("standard", "b", "c") for r in (0.1, 0.3)]
    for rate, kind in cells:
        for s in range(4):
            acc = 0.9 + rng.normal(0, 0.002) - (0.02 if (kind, rate) == ("b", 0.3) else 0.0)
            rows.append({"config": f"dropout.conv={rate}, dropout.conv.kind={kind}", "seed": s,
                         "status": "completed", "test_acc": acc, "final_train_acc": acc + 0.05,
                         "final_val_acc": acc, "dropout.conv": rate, "dropout.conv.kind": kind})  # fmt: skip
    runs = pd.DataFrame(rows)
    runs.attrs["params"] = ["dropout.conv", "dropout.conv.kind"]
    return runs


def test_the_interaction_test_uses_only_the_cells_a_sub_grid_crosses():
    runs = _kinds_runs(np.random.default_rng(3))
    grids = (
        {"dropout.conv": [0.0]},
        {"dropout.conv.kind": ["standard", "b", "c"], "dropout.conv": [0.1, 0.3]},
    )
    a = _analyze(StudyData.from_runs(runs, crossed=2, grids=grids))
    assert "interaction" not in a.unavailable  # no "no completed run for ... rate 0, kind b"
    assert a.interaction.levels == ([0.1, 0.3], ["b", "c", "standard"]) and a.interaction.n == 24
    assert a.interaction.left_out == ("dropout.conv=0.0, dropout.conv.kind=standard",)
    assert a.interaction.significant  # kind b loses 2 pp at 0.3 only
    sentence = next(f.text for f in a.findings if f.kind == "interaction")
    assert (
        "over the 2 x 6 cells" not in sentence and "over the 2 x 3 cells the study file crosses" in sentence
    )
    # without the stored sub-grids every run counts, and the rate-0 cells of kinds b and c are missing
    bare = _analyze(StudyData.from_runs(runs, crossed=2))
    assert "no completed run for dropout.conv=0.0, dropout.conv.kind=b" in bare.unavailable["interaction"]


def _peak_runs(rng, mean, rates=(0.0, 0.1, 0.2, 0.3, 0.5, 0.7), seeds=5, sd=0.004) -> pd.DataFrame:
    rows = [{"config": f"dropout.conv={r}", "seed": s, "status": "completed", "test_acc": mean(r) + rng.normal(0, sd),
             "final_train_acc": 0.99, "final_val_acc": mean(r), "dropout.conv": r}
            for r in rates for s in range(seeds)]  # fmt: skip
    runs = pd.DataFrame(rows)
    runs.attrs["params"] = ["dropout.conv"]
    return runs


def test_the_rate_peak_of_a_known_quadratic_lies_in_its_bootstrap_interval_and_is_exploratory():
    runs = _peak_runs(np.random.default_rng(7), lambda r: 0.95 - 0.4 * (r - 0.3) ** 2)
    a = analyze_runs(runs)
    peak = a.rate_peak
    assert peak.key == "dropout.conv" and peak.edge is None and peak.exploratory
    assert peak.ci_low < 0.3 < peak.ci_high and abs(peak.peak - 0.3) < 0.03
    assert peak.ci_high - peak.ci_low < 0.1 and (peak.resamples, peak.confidence) == (2000, 0.95)
    again = analyze_runs(runs).rate_peak  # a fixed generator: the same runs, the same interval
    assert (again.ci_low, again.ci_high) == (peak.ci_low, peak.ci_high)
    (finding,) = [f for f in a.findings if f.kind == "rate_peak"]
    assert finding.exploratory and not finding.claim and finding not in a.headline
    assert finding.text.startswith("Exploratory (a curve fitted to these same results; nothing is tested")
    assert f"peaks at dropout.conv = {peak.peak:.2f}" in finding.text
    data = json.loads(json.dumps(analysis_to_json(a)))
    assert data["rate_peak"]["exploratory"] is True and data["rate_peak"]["peak"] == pytest.approx(peak.peak)
    assert next(f for f in data["findings"] if f["kind"] == "rate_peak")["numbers"]["exploratory"] is True


def test_the_bootstrap_interval_of_the_rate_peak_covers_the_true_peak_in_most_studies():
    """Percentile bootstrap over 5 seeds per rate: at 95% it covered the true peak in 87 of 100
    simulated studies (docs/report.md states the shortfall); at least 80 of 100 here."""
    from dropoutlab.report.stats import rate_peak

    rates = [0.0, 0.1, 0.2, 0.3, 0.5, 0.7]
    covered = 0
    for i in range(100):
        rng = np.random.default_rng(1000 + i)
        r = rate_peak(
            rates, [0.95 - 0.4 * (x - 0.3) ** 2 + rng.normal(0, 0.004, 5) for x in rates], resamples=500
        )
        covered += r["ci_low"] <= 0.3 <= r["ci_high"]
    assert covered >= 80


def test_a_rate_peak_at_the_end_of_the_sweep_is_said_so_and_not_extrapolated():
    rising = analyze_runs(_peak_runs(np.random.default_rng(2), lambda r: 0.90 + 0.05 * r))
    assert rising.rate_peak.edge == "high" and rising.rate_peak.peak == pytest.approx(0.7)
    text = next(f.text for f in rising.findings if f.kind == "rate_peak")
    assert "is highest at or beyond the largest rate tried, dropout.conv = 0.7" in text
    falling = analyze_runs(_peak_runs(np.random.default_rng(2), lambda r: 0.95 - 0.3 * r))
    assert falling.rate_peak.edge == "low" and falling.rate_peak.peak < 0.01
    assert "at or below the smallest rate tried, dropout.conv = 0" in next(
        f.text for f in falling.findings if f.kind == "rate_peak"
    )


def test_a_rate_peak_needs_three_rates_and_two_seeds_at_each():
    two = analyze_runs(_peak_runs(np.random.default_rng(2), lambda r: 0.9, rates=(0.0, 0.5)))
    assert two.rate_peak is None and "rate_peak" not in two.unavailable  # no curve to fit: silent
    one_seed = analyze_runs(_peak_runs(np.random.default_rng(2), lambda r: 0.9, seeds=1))
    assert (
        one_seed.rate_peak is None and "fewer than two completed seeds" in one_seed.unavailable["rate_peak"]
    )


def test_json_holds_every_number_the_strata_and_best_model_sentences_quote():
    """Three models with and without dropout: a decision per stratum and the models' best set."""
    rng = np.random.default_rng(4)
    rows = []
    for model, shift in (("a", 0.0), ("b", -0.03), ("c", -0.002)):
        for rate in (0.0, 0.2):
            for s in range(4):
                acc = 0.9 + shift - 0.02 * (rate > 0) * (model == "a") + rng.normal(0, 0.003)
                rows.append({"config": f"model={model}, dropout.rate={rate}", "seed": s, "status": "completed",
                             "test_acc": acc, "final_train_acc": acc + 0.05, "final_val_acc": acc,
                             "model": model, "dropout.rate": rate})  # fmt: skip
    runs = pd.DataFrame(rows)
    runs.attrs["params"] = ["model", "dropout.rate"]
    a = analyze_runs(runs)
    assert a.decision is None and len(a.strata_decisions) == 3 and len(a.factor_best) == 1
    assert [f["family"] for f in analysis_to_json(a)["families"]] == ["decision", "factor_best", "holm"]
    data = json.loads(json.dumps(analysis_to_json(a)))
    stated = _rendered_numbers([data["alpha"], data["confidence"], data["min_effect"], data["power"]]) | {
        "95"
    }
    kinds = set()
    for finding in data["findings"]:
        if finding["kind"] not in ("choice", "factor_best", "worse", "better", "equivalent", "undecided"):
            continue
        kinds.add(finding["kind"])
        text = finding["text"]
        for label in sorted({a.label(c) for c in a.runs["config"]}, key=len, reverse=True):
            text = text.replace(label, "")
        text = re.sub(r"(model|dropout\.rate)=[\w.]+", "", text.replace("\u2212", "-"))
        allowed = stated | _rendered_numbers(
            [v if not isinstance(v, dict) else list(v.values()) for v in finding["numbers"].values()]
        )
        for token in re.findall(r"\d+(?:\.\d+)?", text):
            assert token in allowed, (token, finding["text"], finding["numbers"])
    assert {"choice", "factor_best"} <= kinds
