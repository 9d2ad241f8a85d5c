"""Effects of each parameter averaged over the others, and two-way interactions, in grids of
three or more parameters: planted effects found, absent ones not claimed, statsmodels agrees,
failed runs left out and named, and the section shown only where it applies."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from dropoutlab.report.analysis import StudyData, _analyze, _crossed
from dropoutlab.report.factors import factor_contrasts, factor_design, factor_results, level_means
from dropoutlab.report.model import Levels
from dropoutlab.report.numbers import analysis_to_json
from dropoutlab.report.sections import FACTORS_TITLE, report_sections
from dropoutlab.report.stats import adjust_family, varied_params
from dropoutlab.report.write import write_analysis

LEVELS = {
    "dropout.rate": [0.0, 0.5],
    "optimizer.weight_decay": [0.0, 0.0001, 0.001],
    "model": ["mlp", "resnet"],
}


def planted(rate, weight_decay, model) -> float:
    """True mean test accuracy of a cell: dropout helps an MLP by 4 points and a ResNet by 1
    (a main effect of +2.5 averaged over the models, an interaction of -3); a ResNet is 1
    point worse without dropout; weight decay does nothing."""
    acc = 0.80 - 0.01 * (model == "resnet")
    if rate > 0:
        acc += 0.04 if model == "mlp" else 0.01
    return acc


def grid_runs(mean=planted, levels=LEVELS, seeds=5, rng=0, seed_sd=0.01, noise_sd=0.004) -> pd.DataFrame:
    """A runs table like ``Store.runs()``: every cell of the grid x every seed, with a per-seed
    offset shared by the seed's runs (same initialisation) and per-run noise."""
    gen = np.random.default_rng(rng)
    offsets = gen.normal(0, seed_sd, seeds)
    keys = list(levels)
    rows = []
    for values in itertools.product(*levels.values()):
        params = dict(zip(keys, values, strict=True))
        for seed in range(seeds):
            test = mean(*values) + offsets[seed] + gen.normal(0, noise_sd)
            rows.append({"config": ",".join(f"{k}={v}" for k, v in params.items()), "seed": seed,
                         "status": "completed", "test_acc": test, "test_loss": 1 - test,
                         "final_train_acc": test + 0.1, "final_train_eval_acc": test + 0.11,
                         "final_val_acc": test, "best_epoch": 5, **params})  # fmt: skip
    runs = pd.DataFrame(rows)
    runs.attrs["params"] = keys
    return runs


def analyze_runs(runs: pd.DataFrame, baseline=None):
    """The report's analysis of a runs table (parameters in attrs)."""
    return _analyze(StudyData.from_runs(runs), baseline=baseline)


def factor_effects(runs: pd.DataFrame, alpha: float = 0.05):
    """The factor analysis of ``runs`` as a family of its own (Holm over its tests alone)."""
    design = factor_design(runs, varied_params(runs))
    rows = adjust_family(pd.DataFrame(factor_contrasts(design, 0.95)), Levels(alpha=alpha))
    return factor_results(design, level_means(design, 0.95), [row for _, row in rows.iterrows()])


def true_contrast(weights: dict) -> float:
    """The noiseless value of a contrast: ``weights`` maps a selection ``{factor: value}`` to
    +1 / -1; each selection is the mean of ``planted`` over the matching cells."""
    total = 0.0
    for selection, sign in weights.items():
        sel = dict(selection)
        cells = [v for v in itertools.product(*LEVELS.values())
                 if all(v[list(LEVELS).index(k)] == x for k, x in sel.items())]  # fmt: skip
        total += sign * np.mean([planted(*v) for v in cells])
    return total


def covers(c, value: float) -> bool:
    return c.ci_low <= value <= c.ci_high


# ---------------------------------------------------------------------------- planted effects


@pytest.mark.parametrize("rng", [0, 1, 2])
def test_planted_effects_are_found_and_absent_ones_are_not_claimed(rng):
    a = analyze_runs(grid_runs(rng=rng))
    fx = a.factors
    assert fx is not None and a.grid is None and fx.cells == 12
    assert fx.reference == {"dropout.rate": 0.0, "optimizer.weight_decay": 0.0, "model": "mlp"}

    (dropout,) = fx.effects_of("dropout.rate")
    truth = true_contrast({(("dropout.rate", 0.5),): 1, (("dropout.rate", 0.0),): -1})
    assert truth == pytest.approx(0.025)
    assert dropout.significant and covers(dropout, truth) and dropout.n == 5
    (model,) = fx.effects_of("model")
    assert model.significant and covers(
        model, true_contrast({(("model", "resnet"),): 1, (("model", "mlp"),): -1})
    )
    for e in fx.effects_of("optimizer.weight_decay"):  # no effect planted
        assert not e.significant and covers(e, 0.0)

    planted_pair = fx.interactions_of("dropout.rate", "model")
    assert len(planted_pair) == 1
    i = planted_pair[0]
    assert i.significant and covers(i, -0.03)
    assert i.effect_at_reference == pytest.approx(0.04, abs=0.01)  # with an MLP
    assert i.effect_at_level == pytest.approx(0.01, abs=0.01)  # with a ResNet
    assert i.diff == pytest.approx(i.effect_at_level - i.effect_at_reference)
    for pair in [("dropout.rate", "optimizer.weight_decay"), ("optimizer.weight_decay", "model")]:
        for r in fx.interactions_of(*pair):  # none planted
            assert not r.significant and covers(r, 0.0)
    assert fx.pairs == [("dropout.rate", "optimizer.weight_decay"), ("dropout.rate", "model"),
                        ("optimizer.weight_decay", "model")]  # fmt: skip

    claims = [f for f in a.headline if f.kind.startswith("factor") and f.claim]
    assert {(f.numbers["factor"], f.numbers.get("by")) for f in claims} == {
        ("dropout.rate", None), ("model", None), ("dropout.rate", "model")}  # fmt: skip


def test_the_question_does_dropout_help_a_resnet_as_much_as_an_mlp_gets_a_sentence():
    a = analyze_runs(grid_runs(rng=0))
    (sentence,) = [f.text for f in a.headline if f.kind == "factor_interaction" and f.claim]
    assert sentence.startswith(
        "Averaged over optimizer.weight_decay, the effect of dropout.rate=0.5 (against dropout.rate=0) on "
        "test accuracy is +"
    )
    assert (
        " with model=mlp but +" in sentence
        and " with model=resnet: dropout.rate and model interact" in sentence
    )
    # a claim: its interval is the one at its Holm step, which excludes 0 as the claim does
    assert "% CI at its Holm step \u2212" in sentence and "paired t over 5 seeds, Holm p" in sentence

    # Without the interaction the same question is answered "not detected", with the seeds it needs.
    runs = grid_runs(mean=lambda r, w, m: 0.80 + 0.02 * (r > 0), rng=3)
    b = analyze_runs(runs)
    (answer,) = [f for f in b.headline if f.kind == "factor_interaction"
                 and (f.numbers["factor"], f.numbers["by"]) == ("dropout.rate", "model")]  # fmt: skip
    assert not answer.claim
    assert answer.text.startswith(
        "No interaction between dropout.rate and model on test accuracy was detected: averaged over "
        "optimizer.weight_decay, the effect of dropout.rate=0.5 (against dropout.rate=0)"
    )
    assert "paired t over 5 seeds" in answer.text and "an interaction of 1.0 pp with 80% power" in answer.text
    assert answer.text.endswith("This does not show that their effects add up.")
    assert np.isfinite(answer.numbers["seeds_needed"])


def test_a_factor_with_no_effect_is_said_not_distinguishable_with_its_seeds_needed():
    a = analyze_runs(grid_runs(rng=0))
    sentences = [
        f.text
        for f in a.headline
        if f.kind == "factor_effect" and f.numbers["factor"] == "optimizer.weight_decay"
    ]
    assert len(sentences) == 2
    for s in sentences:
        assert s.startswith("Averaged over dropout.rate and model, optimizer.weight_decay=0.")
        assert "vs optimizer.weight_decay=0: " in s and "not distinguishable with 5 seeds" in s
        assert "a difference of 1.0 pp with 80% power at the corrected level" in s
    effect = next(
        f.text for f in a.headline if f.kind == "factor_effect" and f.numbers["factor"] == "dropout.rate"
    )
    assert effect.startswith(
        "Averaged over optimizer.weight_decay and model, dropout.rate=0.5 has higher test accuracy than "
        "dropout.rate=0: +"
    )
    # The average hides the interaction with the model, and says so; weight decay interacts with nothing.
    assert effect.endswith("This is an average: the effect of dropout.rate depends on model (below).")
    assert not [s for s in sentences if "This is an average" in s]


def test_null_factorial_studies_claim_an_effect_in_at_most_alpha_of_them():
    """Six nearly independent tests put Holm's family-wise rate just under alpha (about 4.9%),
    so the simulated rate is checked with a binomial test rather than against alpha itself."""
    from scipy.stats import binomtest

    gen = np.random.default_rng(11)
    levels = {"dropout.rate": [0.0, 0.5], "optimizer.weight_decay": [0.0, 0.001], "model": ["mlp", "resnet"]}
    studies, alpha = 200, 0.05
    claimed = raw = 0
    for _ in range(studies):
        runs = grid_runs(mean=lambda *_: 0.8, levels=levels, seeds=4, rng=int(gen.integers(1 << 30)))
        fx = factor_effects(runs, alpha=alpha)
        tests = [*fx.effects, *fx.interactions]
        claimed += any(t.significant for t in tests)
        raw += any(t.p_value < alpha for t in tests)
    assert binomtest(claimed, studies, alpha, alternative="greater").pvalue > 0.01, claimed
    assert binomtest(raw, studies, alpha, alternative="greater").pvalue < 1e-6  # unadjusted: far more often


def test_t_squared_equals_the_F_of_statsmodels_repeated_measures_anova():
    from statsmodels.stats.anova import AnovaRM

    levels = {"dropout.rate": [0.0, 0.5], "optimizer.weight_decay": [0.0, 0.001], "model": ["mlp", "resnet"]}
    runs = grid_runs(
        mean=lambda r, w, m: planted(r, w, m) + 0.01 * (w > 0) * (m == "mlp"), levels=levels, seeds=6
    )
    rows = pd.DataFrame(factor_contrasts(factor_design(runs, list(levels)), 0.95))
    data = runs.assign(R=runs["dropout.rate"].astype(str), W=runs["optimizer.weight_decay"].astype(str),
                       M=runs["model"])  # fmt: skip
    table = AnovaRM(data, "test_acc", "seed", within=["R", "W", "M"]).fit().anova_table
    names = {"dropout.rate": "R", "optimizer.weight_decay": "W", "model": "M"}
    for _, row in rows.iterrows():
        term = names[row["factor"]] if row["kind"] == "main" else None
        if term is None:
            term = ":".join(sorted([names[row["factor"]], names[row["by"]]], key="RWM".index))
        t = row["diff"] / row["se"]
        assert t**2 == pytest.approx(table.loc[term, "F Value"], rel=1e-9)
        assert row["p_value"] == pytest.approx(table.loc[term, "Pr > F"], rel=1e-7)
        assert row["df"] == table.loc[term, "Den DF"]


def test_marginal_means_are_per_seed_means_over_the_other_parameters_then_over_seeds():
    runs = grid_runs(rng=4)
    fx = factor_effects(runs)
    mean = next(m for m in fx.means if m.factor == "model" and m.level == "resnet")
    per_seed = runs[runs["model"] == "resnet"].groupby("seed")["test_acc"].mean()
    assert mean.test_acc.mean == pytest.approx(per_seed.mean())
    assert mean.test_acc.method == "logit t" and mean.test_acc.n == 5
    assert mean.test_acc.low < per_seed.mean() < mean.test_acc.high


def test_reference_values_are_the_baselines():
    levels = {"dropout.conv": [0.0, 0.3], "dropout.dense": [0.0, 0.5], "optimizer.weight_decay": [0.0, 0.001]}
    runs = grid_runs(mean=lambda c, d, w: 0.8 + 0.02 * (d > 0), levels=levels, rng=1)
    a = analyze_runs(runs)
    assert a.baseline_name == "no regularization"  # no dropout and no weight decay
    assert a.factors.reference == {"dropout.conv": 0.0, "dropout.dense": 0.0, "optimizer.weight_decay": 0.0}
    b = analyze_runs(runs, baseline="dropout.conv=0.3,dropout.dense=0.5,optimizer.weight_decay=0.001")
    assert b.factors.reference == {"dropout.conv": 0.3, "dropout.dense": 0.5, "optimizer.weight_decay": 0.001}
    (dense,) = b.factors.effects_of("dropout.dense")
    assert dense.level == 0.0 and dense.diff < 0
    # The factor tests join the one family with the baseline comparisons.
    assert a.family_size == 7 + 3 + 3 + 1  # comparisons, main effects, interactions, gap trend
    compared = next(s for s in report_sections(a) if s.title == "Compared with the baseline")
    assert "the effect of each parameter and their two-way interactions" in compared.paragraphs[0]


# ---------------------------------------------------------------------------- failed runs


def test_failed_and_diverged_runs_leave_their_seed_out_of_what_averages_over_them():
    runs = grid_runs(rng=0)
    mid = runs["optimizer.weight_decay"] == 0.0001
    runs.loc[
        mid & (runs["seed"] == 2) & (runs["model"] == "mlp") & (runs["dropout.rate"] == 0.5), "status"
    ] = "failed"
    runs.loc[
        mid & (runs["seed"] == 4) & (runs["model"] == "resnet") & (runs["dropout.rate"] == 0.0), "status"
    ] = "diverged"
    a = analyze_runs(runs)
    fx = a.factors
    (dropout,) = fx.effects_of("dropout.rate")
    assert dropout.n == 3 and dropout.seeds_left_out == (2, 4)
    high, middle = sorted(fx.effects_of("optimizer.weight_decay"), key=lambda e: e.level, reverse=True)
    assert (high.level, high.n, high.seeds_left_out) == (0.001, 5, ())  # does not touch the failed cells
    assert (middle.n, middle.seeds_left_out) == (3, (2, 4))
    sentence = next(
        f.text for f in a.headline if f.kind == "factor_effect" and f.numbers["factor"] == "dropout.rate"
    )
    assert "paired t over 3 seeds" in sentence
    assert sentence.endswith(
        "Seeds 2, 4 left out: a run failed or diverged in a configuration this averages over."
    )
    kinds = [f.kind for f in a.headline]
    assert kinds.count("failures") == 2  # still counted per configuration, as everywhere
    assert json.loads(json.dumps(analysis_to_json(a)))["factors"]["effects"][0]["seeds_left_out"] == [2, 4]


def test_a_configuration_without_any_completed_run_leaves_only_its_numbers_untestable():
    runs = grid_runs(rng=0)
    dead = (
        (runs["optimizer.weight_decay"] == 0.001)
        & (runs["model"] == "resnet")
        & (runs["dropout.rate"] == 0.5)
    )
    runs.loc[dead, "status"] = "diverged"
    a = analyze_runs(runs)
    fx = a.factors
    assert fx.empty_cells == ({"dropout.rate": 0.5, "optimizer.weight_decay": 0.001, "model": "resnet"},)
    (dropout,) = fx.effects_of("dropout.rate")
    assert dropout.n == 0 and not np.isfinite(dropout.p_value) and not dropout.significant
    low = next(e for e in fx.effects_of("optimizer.weight_decay") if e.level == 0.0001)
    assert low.n == 5 and np.isfinite(low.p_value)
    sentence = next(
        f.text for f in a.headline if f.kind == "factor_effect" and f.numbers["factor"] == "dropout.rate"
    )
    assert sentence == (
        "Averaged over optimizer.weight_decay and model, dropout.rate=0.5 vs dropout.rate=0 cannot be computed: "
        "no seed completed every configuration it averages over (see the runs that failed or diverged)."
    )
    section = next(s for s in report_sections(a) if s.title == FACTORS_TITLE)
    assert (
        "No completed run for dropout.rate=0.5, optimizer.weight_decay=0.001, model=resnet: the numbers that "
        "average over it cannot be computed." in section.paragraphs
    )


# ---------------------------------------------------------------------------- where it is shown


def one_at_a_time() -> pd.DataFrame:
    """Three dropout slots, each varied with the others at 0: not a crossed grid."""
    rows = []
    slots = ["dropout.input", "dropout.hidden1", "dropout.hidden2"]
    configs = [dict.fromkeys(slots, 0.0)] + [{**dict.fromkeys(slots, 0.0), s: 0.5} for s in slots]
    gen = np.random.default_rng(0)
    for params in configs:
        for seed in range(3):
            acc = 0.8 + gen.normal(0, 0.005)
            rows.append({"config": ",".join(f"{k}={v}" for k, v in params.items()), "seed": seed,
                         "status": "completed", "test_acc": acc, "final_train_acc": acc + 0.1, **params})  # fmt: skip
    runs = pd.DataFrame(rows)
    runs.attrs["params"] = slots
    return runs


def test_a_grid_that_does_not_cross_its_parameters_says_why_in_one_line():
    a = analyze_runs(one_at_a_time())
    assert a.factors is None
    assert a.unavailable["factors"] == (
        "the configurations do not cross every value of dropout.input, dropout.hidden1 and dropout.hidden2: "
        "4 of 8 combinations were run, and an effect averaged over the other parameters needs every combination"
    )
    section = next(s for s in report_sections(a) if s.title == FACTORS_TITLE)
    assert section.paragraphs == (
        "The effects averaged over the other parameters could not be computed: "
        + a.unavailable["factors"]
        + ".",
    )
    assert not section.tables
    data = analysis_to_json(a)
    assert data["factors"] is None and data["unavailable"]["factors"] == a.unavailable["factors"]


def test_a_study_file_that_crosses_no_three_parameters_gets_no_factor_section():
    """The demo sweeps slots one at a time: no factorial design was asked for, so none is missed."""
    grid = [{"dropout": [{"input": 0.0, "hidden1": 0.0}, {"input": 0.2, "hidden1": 0.5}]},
            {"dropout.hidden1": [0.1, 0.2, 0.3]}, {"seed_only": [1]}]  # fmt: skip
    assert _crossed({"grid": grid}) == 1 and _crossed({"grid": {"a": [1, 2], "b": [1, 2], "c": [3, 4]}}) == 3
    assert _crossed({}) is None
    a = _analyze(StudyData.from_runs(one_at_a_time(), crossed=1))
    assert a.factors is None and "factors" not in a.unavailable
    assert FACTORS_TITLE not in [s.title for s in report_sections(a)]
    assert not [f for f in a.findings if "could not be computed" in f.text]
    crossed = _analyze(StudyData.from_runs(one_at_a_time(), crossed=3))  # asked for, not run: said why
    assert "4 of 8 combinations were run" in crossed.unavailable["factors"]


def _two_keys() -> pd.DataFrame:
    runs = grid_runs(levels={"dropout.rate": [0.0, 0.5], "model": ["mlp", "resnet"]},
                     mean=lambda r, m: planted(r, 0.0, m))  # fmt: skip
    return runs


@pytest.mark.parametrize(
    "runs, shown",
    [(lambda: grid_runs(seeds=3), True), (_two_keys, False),
     (lambda: grid_runs(levels={"dropout.rate": [0.0, 0.2, 0.5]}, mean=lambda r: 0.8 + r / 10), False)],
    ids=["three keys", "two keys", "one key"],
)  # fmt: skip
def test_the_factor_section_is_rendered_only_when_three_or_more_parameters_vary(tmp_path, runs, shown):
    a = analyze_runs(runs())
    paths = write_analysis(a, tmp_path)
    html, markdown = paths["html"].read_text(), paths["markdown"].read_text()
    data = json.loads(json.dumps(analysis_to_json(a)))
    assert (FACTORS_TITLE in html) == shown and (f"## {FACTORS_TITLE}" in markdown) == shown
    assert ("factors" in data["unavailable"]) is False
    if not shown:
        assert a.factors is None and data["factors"] is None
        assert not [f for f in data["findings"] if f["kind"].startswith("factor")]
        return
    fx = data["factors"]
    assert fx["factors"] == ["dropout.rate", "optimizer.weight_decay", "model"] and fx["cells"] == 12
    assert len(fx["means"]) == 7 and len(fx["effects"]) == 4 and len(fx["interactions"]) == 2 + 1 + 2
    effect = next(e for e in fx["effects"] if e["factor"] == "dropout.rate")
    for key in ("diff", "ci_low", "ci_high", "ci_low_unadjusted", "p_value", "p_adjusted", "significant",
                "effect_size", "sd", "n", "seeds_needed", "seeds_left_out", "level", "reference"):  # fmt: skip
        assert key in effect
    assert effect["ci_low"] < effect["diff"] < effect["ci_high"] and effect["n"] == 3
    interaction = next(i for i in fx["interactions"] if i["by"] == "model")
    assert interaction["effect_at_level"] - interaction["effect_at_reference"] == pytest.approx(
        interaction["diff"]
    )
    assert "Two-way interactions" in html and "dropout.rate=0.5 vs 0" in markdown
    assert "These tests belong to the report's one Holm family" in markdown


def test_a_grid_over_models_compares_each_models_dropout_with_the_same_model_without():
    levels = {"model": ["mlp", "resnet"], "dropout.rate": [0.0, 0.2]}
    # dropout costs the MLP 3 points and the ResNet nothing
    runs = grid_runs(mean=lambda m, r: 0.9 - 0.03 * (m == "mlp") * (r > 0), levels=levels, rng=2)
    a = analyze_runs(runs)
    assert a.baseline is None and a.strata == {
        "model=mlp,dropout.rate=0.2": "model=mlp,dropout.rate=0.0",
        "model=resnet,dropout.rate=0.2": "model=resnet,dropout.rate=0.0",
    }
    mlp, resnet = (a.comparison(f"model={m},dropout.rate=0.2") for m in ("mlp", "resnet"))
    assert mlp.baseline == "model=mlp,dropout.rate=0.0" and mlp.significant and mlp.diff < -0.02
    assert not resnet.significant and abs(resnet.diff) < 0.01
    texts = [f.text for f in a.headline]
    assert any(f.kind == "stratified_baseline" for f in a.headline)
    # one decision per model at alpha / 2, so both hold together at alpha
    assert set(a.strata_decisions) == {"model=mlp,dropout.rate=0.0", "model=resnet,dropout.rate=0.0"}
    assert all(d.design.alpha == pytest.approx(0.025) for d in a.strata_decisions.values())
    assert a.verdicts() == {
        "model=mlp,dropout.rate=0.2": "worse",
        "model=resnet,dropout.rate=0.2": "equivalent",
    }
    assert any(t.startswith("model=mlp, dropout.rate=0.2 is worse than model=mlp without dropout: ")
               for t in texts), texts  # fmt: skip
    assert any(
        t.startswith("model=resnet, dropout.rate=0.2 is equivalent to model=resnet without") for t in texts
    )
    answer = next(f.text for f in a.headline if f.kind == "choice")
    assert answer.startswith(
        "Per stratum, each against its own settings without dropout (5 seeds per configuration; "
    )
    assert (
        "the 2 strata together at 95%" in answer and "model=mlp: choose dropout.rate=0 (1 worse; " in answer
    )
    data = json.loads(json.dumps(analysis_to_json(a)))
    assert data["decision"] is None and [s["stratum"] for s in data["strata_decisions"]] == list(
        a.strata_decisions
    )
    assert [c["verdict"] for c in data["comparisons"]] == ["worse", "equivalent"]
    assert not any(f.kind == "no_baseline" for f in a.headline)
    section = next(
        s for s in report_sections(a) if s.title == "Compared with the same settings without dropout"
    )
    assert list(section.tables[0][1]["baseline"]) == [
        "model=mlp without dropout",
        "model=resnet without dropout",
    ]
    trend = next(f.text for f in a.headline if f.kind == "gap_trend")
    assert trend.startswith("Along dropout.rate from 0 to 0.2 at model=mlp,"), trend  # the line's slice


def test_a_grid_over_kinds_has_no_rate_axis():
    runs = grid_runs(mean=lambda k: 0.9, levels={"dropout.conv.kind": ["spatial", "standard", "dropblock"]})
    runs["dropout.conv"] = 0.2
    a = analyze_runs(runs)
    assert a.rate_key is None and a.gap_trend is None


# ---------------------------------------------------------------------------- the best value of a factor


def kinds_grid(worse: float = 0.03, seeds: int = 6, rng: int = 0) -> pd.DataFrame:
    """The kinds example's shape: a baseline without dropout (the default kind) beside four kinds
    crossed with rates 0.1 and 0.3; kind 'gaussian' is ``worse`` lower at both rates."""
    runs = grid_runs(lambda rate, kind: 0.90 - worse * (kind == "gaussian"),
                     levels={"dropout.conv": [0.1, 0.3], "dropout.conv.kind": ["standard", "scaled", "gaussian",
                                                                               "spatial"]},
                     seeds=seeds, rng=rng, seed_sd=0.01, noise_sd=0.003)  # fmt: skip
    base = runs[runs["config"] == "dropout.conv=0.1,dropout.conv.kind=standard"].copy()
    base["config"], base["dropout.conv"] = "dropout.conv=0.0,dropout.conv.kind=standard", 0.0
    return pd.concat([base, runs], ignore_index=True).pipe(lambda r: r.__setattr__("attrs", runs.attrs) or r)


def test_a_clearly_worse_kind_is_left_out_of_the_kinds_could_be_best_set():
    runs = kinds_grid()
    runs.attrs["params"] = ["dropout.conv", "dropout.conv.kind"]
    grids = ({"dropout.conv": [0.0]}, {"dropout.conv.kind": ["standard", "scaled", "gaussian", "spatial"],
                                       "dropout.conv": [0.1, 0.3]})  # fmt: skip
    a = _analyze(StudyData.from_runs(runs, crossed=2, grids=grids))
    (best,) = a.factor_best
    assert best.factor == "dropout.conv.kind" and best.over == {"dropout.conv": [0.1, 0.3]}
    assert "dropout.conv=0.0,dropout.conv.kind=standard" not in best.configs  # the baseline is no kind's cell
    d = best.decision
    could = {best.value(c) for c in d.could_be_best}
    assert "gaussian" not in could and could == {"standard", "scaled", "spatial"}
    assert d.worse_than_best["dropout.conv.kind=gaussian"] > 0.01  # 3 pp worse, bounded away
    (finding,) = [f for f in a.findings if f.kind == "factor_best"]
    assert finding.claim and finding.text.startswith(
        "Which dropout.conv.kind: of its 4 values compared with each"
    )
    assert "worse than the best: gaussian (by at least" in finding.text
    assert "averaged per seed over dropout.conv 0.1 and 0.3" in finding.text
    data = json.loads(json.dumps(analysis_to_json(a)))
    (entry,) = data["factor_best"]
    assert set(entry["could_be_best"]) == could and "gaussian" in entry["worse_than_best"]
    assert entry["alpha"] == 0.05 and entry["decision"]["design"]["alpha"] == 0.05


def test_kinds_that_do_not_differ_all_could_be_best_and_no_claim_is_made():
    runs = kinds_grid(worse=0.0, seeds=3)
    runs.attrs["params"] = ["dropout.conv", "dropout.conv.kind"]
    a = _analyze(StudyData.from_runs(runs))  # no stored sub-grids: the cells every kind ran still count
    (best,) = a.factor_best
    assert {best.value(c) for c in best.decision.could_be_best} == {
        "standard",
        "scaled",
        "gaussian",
        "spatial",
    }
    assert best.over == {"dropout.conv": [0.1, 0.3]}
    (finding,) = [f for f in a.findings if f.kind == "factor_best"]
    assert not finding.claim and "worse than the best" not in finding.text


def test_the_could_be_best_set_of_a_factor_holds_the_true_best_in_at_least_1_minus_alpha():
    """200 simulated 4-kind grids, kinds 0, 0.5, 1 and 1 pp apart (the best unique), 3 seeds:
    the best kind stays in its set in at least 95% (one-sided binomial bound)."""
    from scipy import stats

    from dropoutlab.report.factors import factor_best

    misses = 0
    for i in range(200):
        gen = np.random.default_rng(500 + i)
        shift = {"a": 0.0, "b": -0.005, "c": -0.01, "d": -0.01}
        rows = [{"config": f"k={k},r={r}", "seed": s, "status": "completed", "k": k, "r": r,
                 "test_acc": 0.9 + shift[k] + gen.normal(0, 0.006)}
                for k in shift for r in (0.1, 0.3) for s in range(3)]  # fmt: skip
        best = factor_best(pd.DataFrame(rows), "k", ["r"], "a", 0.01, 0.05)
        misses += "k=a" not in best.decision.could_be_best
    assert stats.binom.sf(misses - 1, 200, 0.05) > 0.01  # no evidence of more than alpha misses
