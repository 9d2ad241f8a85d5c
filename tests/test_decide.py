"""The decision of issue 25 (``dropoutlab.report.decide``): units, then whole sequential
studies simulated through ``decide`` alone, with a fixed RNG seed.

A simulated study draws every configuration's test accuracy for every possible seed up front
(normal, around known means), starts with ``design.start`` seeds, and trains exactly the seeds
each ``Decision`` asks for until it says ``done``, building the table the store returns at
every look. Rates are checked with a one-sided binomial bound: a rate promised to be at most
``alpha`` fails the test only when the count observed would be below 0.1 % likely at ``alpha``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.weightstats import ttost_paired

from dropoutlab.errors import DropoutlabError
from dropoutlab.report.decide import (
    Decision,
    Design,
    decide,
    equivalence_power,
    look_levels,
    recommend_max_seeds,
    spending,
)

BASE = "no dropout"


def table(acc: dict[str, list[float]], seeds=None, status=None, rates=None) -> pd.DataFrame:
    """A runs table of the store's shape from per-configuration accuracies (seed i = position i)."""
    rows = []
    for config, values in acc.items():
        for i, value in enumerate(values):
            seed = seeds[i] if seeds is not None else i
            row = {"config": config, "seed": seed, "status": "completed", "test_acc": value}
            if status and (config, seed) in status:
                row["status"] = status[(config, seed)]
                row["test_acc"] = math.nan
            if rates is not None:
                row["dropout.hidden1"] = rates[config]
            rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------
# Units


def test_interval_and_tost_match_scipy_and_statsmodels_on_a_single_look():
    rng = np.random.default_rng(1)
    base = 0.9 + rng.normal(0, 0.01, 8)
    other = base + 0.001 + rng.normal(0, 0.004, 8)
    design = Design(BASE, 0.01, alpha=0.05, start=8, step=1, max_seeds=8)
    c = decide(table({BASE: list(base), "b": list(other)}), design).comparisons[0]

    p_tost, _, _ = ttost_paired(other, base, -0.01, 0.01)
    assert c.p_tost == pytest.approx(p_tost, rel=1e-9)
    assert c.p_value == pytest.approx(stats.ttest_rel(other, base).pvalue, rel=1e-9)
    # one look holding all of alpha, split over the two tails of the one comparison
    assert c.level == pytest.approx(0.025)
    half = stats.t.isf(0.025, 7) * np.std(other - base, ddof=1) / math.sqrt(8)
    assert (c.low, c.high) == pytest.approx((c.diff - half, c.diff + half), rel=1e-12)
    assert c.verdict == ("equivalent" if p_tost < c.level else "undecided")
    assert c.n == 8 and c.decided_at in (None, 8)


def test_tost_verdict_agrees_with_statsmodels_over_many_tables():
    rng = np.random.default_rng(2)
    design = Design(BASE, 0.01, alpha=0.1, start=6, step=1, max_seeds=6)
    agree = 0
    for _ in range(60):
        base = 0.9 + rng.normal(0, 0.01, 6)
        other = base + rng.normal(rng.uniform(-0.01, 0.01), 0.006, 6)
        c = decide(table({BASE: list(base), "b": list(other)}), design).comparisons[0]
        p_tost = ttost_paired(other, base, -0.01, 0.01)[0]
        interval_inside = c.low > -0.01 and c.high < 0.01
        assert interval_inside == (p_tost < c.level)
        assert interval_inside == (c.verdict == "equivalent") or c.verdict in ("better", "worse")
        agree += interval_inside
    assert 0 < agree < 60  # both outcomes were exercised


def test_spending_adds_up_to_alpha_over_the_looks_and_is_small_early():
    design = Design(BASE, 0.01, alpha=0.05, start=3, step=2, max_seeds=15)
    levels = look_levels(design, comparisons=3)
    assert list(levels) == [3, 5, 7, 9, 11, 13, 15]
    assert sum(levels.values()) * (3 * 3 - 1) == pytest.approx(0.05)
    assert levels[3] < levels[15] / 100
    assert float(spending(1.0, 0.05)) == pytest.approx(0.05)
    assert float(spending(0.0, 0.05)) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_effect": None}, "min_effect: missing"),
        ({"min_effect": 0.0}, "min_effect: 0.0"),
        ({"min_effect": -0.01}, "min_effect: -0.01"),
        ({"min_effect": "1pp"}, "is not a number"),
        ({"max_seeds": 2, "start": 3}, "max_seeds: 2 is below start (3)"),
        ({"step": 0}, "step: 0; at least 1"),
        ({"start": 1}, "start: 1 seed(s); at least 2"),
        ({"alpha": 1.5}, "alpha: 1.5"),
        ({"max_seeds": 10.5}, "max_seeds: 10.5 is not a whole number"),
    ],
)
def test_bad_designs_raise_one_line(kwargs, message):
    settings = {"baseline": BASE, "min_effect": 0.01, **kwargs}
    with pytest.raises(DropoutlabError) as info:
        Design(**settings)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_grid_with_nothing_to_compare_or_without_the_baseline_raises_one_line():
    design = Design(BASE, 0.01)
    with pytest.raises(DropoutlabError, match="nothing to compare") as info:
        decide(table({BASE: [0.9, 0.91, 0.92]}), design)
    assert "\n" not in str(info.value)
    with pytest.raises(DropoutlabError, match="baseline 'no dropout' is not a configuration"):
        design.check(["a", "b"])
    with pytest.raises(DropoutlabError, match="column.*test_acc"):
        decide(pd.DataFrame({"config": [BASE], "seed": [0], "status": ["completed"]}), design)


def test_first_look_asks_for_the_start_seeds_and_never_for_a_seed_already_run():
    design = Design(BASE, 0.01, start=3, step=2, max_seeds=9)
    d = decide(table({BASE: [0.9], "b": [0.91, 0.9]}, seeds=[100, 101]), design)
    assert d.look == 0 and not d.done
    assert d.next_seeds == {BASE: (101, 102), "b": (102,)}
    d = decide(table({BASE: [0.9, 0.91, 0.92], "b": [0.91, 0.9, 0.9]}, seeds=[100, 101, 102]), design)
    assert d.look == 3 and d.next_seeds == {BASE: (103, 104), "b": (103, 104)}
    assert d.comparisons[0].verdict == "undecided" and "add 2 seed(s)" in d.comparisons[0].to_decide


def test_seeds_go_only_where_they_still_matter():
    rng = np.random.default_rng(6)
    acc = {
        BASE: list(0.90 + rng.normal(0, 0.001, 5)),
        "bad": list(0.50 + rng.normal(0, 0.001, 5)),  # decided worse, out of the best set
        "close": list(0.90 + rng.normal(0, 0.01, 5)),  # undecided
    }
    d = decide(table(acc), Design(BASE, 0.01, start=5, step=2, max_seeds=9))
    assert d.verdicts() == {"bad": "worse", "close": "undecided"}
    assert "bad" not in d.could_be_best and d.worse_than_best["bad"] > 0.35
    assert d.next_seeds == {BASE: (5, 6), "close": (5, 6)}
    assert d.comparisons[0].decided_at == 5 and d.comparisons[0].to_decide == ""


def test_the_same_table_gives_the_same_decision():
    rng = np.random.default_rng(3)
    runs = table({BASE: list(0.9 + rng.normal(0, 0.01, 7)), "b": list(0.92 + rng.normal(0, 0.01, 7))})
    design = Design(BASE, 0.01, start=3, step=2, max_seeds=11)
    assert decide(runs, design) == decide(runs.sample(frac=1, random_state=0), design)


def test_the_same_difference_of_images_on_every_seed_is_no_certainty():
    # 9 of 360 test images fewer on each of 3 seeds: float32 accuracies make the paired
    # differences differ in their last digits only (a spread near 3e-8), which is no evidence
    correct = np.array([349, 346, 345])  # of 360, as the digits test split holds
    base, worse = np.float32(correct / 360), np.float32((correct - 9) / 360)
    runs = table({BASE: [float(x) for x in base], "b": [float(x) for x in worse]})
    diffs = runs[runs.config == "b"].test_acc.to_numpy() - runs[runs.config == BASE].test_acc.to_numpy()
    assert 0 < np.std(diffs, ddof=1) < 1e-6
    c = decide(runs, Design(BASE, 0.01, start=3, step=1, max_seeds=3)).comparisons[0]
    assert c.verdict == "undecided" and not math.isfinite(c.low)


def test_a_failed_run_is_missing_data_of_its_pair():
    acc = {BASE: [0.90, 0.91, 0.92, 0.90, 0.91], "b": [0.93, 0.94, 0.95, 0.93, 0.95]}
    design = Design(BASE, 0.01, start=5, step=1, max_seeds=5)
    c = decide(table(acc, status={("b", 2): "diverged"}), design).comparisons[0]
    assert c.n == 4 and c.look == 5
    assert c.diff == pytest.approx(np.mean([0.03, 0.03, 0.03, 0.04]))


def test_choice_is_the_smallest_rate_within_min_effect_of_the_best_else_the_highest_mean():
    rng = np.random.default_rng(4)
    noise = rng.normal(0, 0.0005, (3, 12))
    acc = {BASE: list(0.90 + noise[0]), "p=0.2": list(0.950 + noise[1]), "p=0.5": list(0.9505 + noise[2])}
    design = Design(BASE, 0.01, start=12, step=1, max_seeds=12)
    d = decide(table(acc, rates={BASE: 0.0, "p=0.2": 0.2, "p=0.5": 0.5}), design)
    assert set(d.could_be_best) == {"p=0.2", "p=0.5"} and d.settled
    assert BASE in d.worse_than_best and d.worse_than_best[BASE] > 0.04
    assert d.choice == "p=0.2" and "smallest total dropout rate" in d.rule
    assert d.verdicts() == {"p=0.2": "better", "p=0.5": "better"} and d.done and d.reason == "decided"
    unordered = decide(table(acc), design)
    assert unordered.choice == "p=0.5" and "highest mean" in unordered.rule


def test_decision_is_json_ready():
    d = decide(table({BASE: [0.9, 0.91], "b": [0.91, 0.9]}), Design(BASE, 0.01))
    data = json.loads(json.dumps(d.to_dict(), allow_nan=False))
    assert data["comparisons"][0]["verdict"] == "undecided"
    assert data["comparisons"][0]["low"] is None  # before the first look: -inf -> None
    assert data["next_seeds"] == {BASE: [2], "b": [2]} and data["look"] == 0


def test_equivalence_power_matches_a_simulation_of_tost():
    rng = np.random.default_rng(5)
    n, sd, me, level = 8, 0.01, 0.01, 0.01
    d = rng.normal(0, sd, (20000, n))
    half = stats.t.isf(level, n - 1) * d.std(axis=1, ddof=1) / math.sqrt(n)
    simulated = np.mean(np.abs(d.mean(axis=1)) + half < me)
    assert equivalence_power(n, sd, me, level) == pytest.approx(simulated, abs=0.01)


def test_recommended_max_is_larger_for_more_spread_and_more_comparisons():
    one = recommend_max_seeds(0.007, 0.01)
    assert recommend_max_seeds(0.014, 0.01) > one
    assert recommend_max_seeds(0.007, 0.01, comparisons=5) > one
    assert recommend_max_seeds(0.007, 0.01, sequential=False) <= one


# ----------------------------------------------------------------------------------------
# Whole sequential studies


def simulate(
    means,
    sds,
    design: Design,
    studies: int,
    rng: np.random.Generator,
    seed_offset: int = 0,
    shared_sd: float = 0.0,
    fail: tuple[int, int] | None = None,
) -> list[Decision]:
    """Run ``studies`` sequential studies through ``decide``; the last decision of each.

    ``means``/``sds``: per configuration (the first is the baseline); ``shared_sd``: a seed
    effect shared by all configurations; ``fail``: (configuration, seed position) of a run
    that fails. Checks on the way that no seed is asked for twice and verdicts stand."""
    k, top = len(means), design.max_seeds
    names = [BASE, *(f"c{i}" for i in range(1, k))]
    out = []
    for _ in range(studies):
        acc = rng.normal(np.asarray(means)[:, None], np.asarray(sds)[:, None], (k, top))
        acc += rng.normal(0, shared_sd, top) if shared_sd else 0.0
        run = {name: list(range(seed_offset, seed_offset + design.start)) for name in names}
        seen: dict[str, str] = {}
        while True:
            config = [name for name in names for _ in run[name]]
            seeds = [s for name in names for s in run[name]]
            idx = [names.index(c) for c in config]
            values = acc[idx, np.array(seeds) - seed_offset]
            status = np.full(len(seeds), "completed", dtype=object)
            if fail is not None:
                status[(np.array(idx) == fail[0]) & (np.array(seeds) - seed_offset == fail[1])] = "failed"
            runs = pd.DataFrame({"config": config, "seed": seeds, "status": status, "test_acc": values})
            d = decide(runs, design)
            for c in d.comparisons:
                assert seen.setdefault(c.config, c.verdict) in (c.verdict, "undecided")
                seen[c.config] = c.verdict
            if d.done:
                break
            for name, new in d.next_seeds.items():
                assert not set(new) & set(run[name])
                run[name].extend(new)
        out.append(d)
    return out


def at_most(count: int, studies: int, rate: float) -> bool:
    """Whether ``count`` of ``studies`` is compatible with a true rate of at most ``rate``."""
    return stats.binom.sf(count - 1, studies, rate) > 0.001


def at_least(count: int, studies: int, rate: float) -> bool:
    """Whether ``count`` of ``studies`` is compatible with a true rate of at least ``rate``."""
    return stats.binom.cdf(count, studies, rate) > 0.001


ALPHA = 0.05
ME = 0.01

VARIANTS = {
    "plain": {},
    "failed run, seed offset, shared seed effect, unequal variances": {
        "seed_offset": 1000,
        "shared_sd": 0.02,
        "fail": (1, 1),
        "unequal": True,
    },
}


def _variant(name: str, sds: list[float]):
    options = dict(VARIANTS[name])
    if options.pop("unequal", False):
        sds = [sd * (1 + 0.5 * i) for i, sd in enumerate(sds)]
    return sds, options


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_null_sequential_to_max_makes_a_false_difference_claim_in_at_most_alpha(variant):
    # spread large against min_effect: equivalence is rarely reached, most studies look to max
    sds, options = _variant(variant, [0.02, 0.02, 0.02])
    design = Design(BASE, ME, alpha=ALPHA, start=3, step=2, max_seeds=13)
    decisions = simulate([0.9, 0.9, 0.9], sds, design, 200, np.random.default_rng(10), **options)
    false = sum(
        any(c.verdict in ("better", "worse") for c in d.comparisons)
        or any(w > 0 for w in d.worse_than_best.values())
        for d in decisions
    )
    assert at_most(false, len(decisions), ALPHA), false
    assert np.mean([d.look == design.max_seeds for d in decisions]) > 0.5  # the looks did happen


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_true_difference_of_min_effect_is_called_equivalent_in_at_most_alpha(variant):
    # a spread at which the difference is neither found at once nor hopeless to bound
    sds, options = _variant(variant, [0.008, 0.008])
    design = Design(BASE, ME, alpha=ALPHA, start=3, step=2, max_seeds=21)
    decisions = simulate([0.9, 0.9 + ME], sds, design, 150, np.random.default_rng(11), **options)
    equivalent = sum(d.comparisons[0].verdict == "equivalent" for d in decisions)
    # stricter: the whole interval inside +-min_effect, whatever the verdict says
    inside = sum(d.comparisons[0].low > -ME and d.comparisons[0].high < ME for d in decisions)
    assert at_most(equivalent, len(decisions), ALPHA), equivalent
    assert at_most(inside, len(decisions), ALPHA), inside
    assert 0.2 < np.mean([d.comparisons[0].verdict == "better" for d in decisions]) < 1  # a real test


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_no_difference_is_called_equivalent_in_80_percent_at_the_recommended_max(variant):
    sds, options = _variant(variant, [0.007 / math.sqrt(2)] * 2)  # paired differences: SD 0.7 pp plain
    sd = math.hypot(*sds)  # of the paired differences (a shared seed effect cancels in them)
    max_seeds = recommend_max_seeds(sd, ME, ALPHA, comparisons=1, start=3, step=2)
    if options.get("fail"):
        max_seeds += 1  # the failed run costs its pair
    design = Design(BASE, ME, alpha=ALPHA, start=3, step=2, max_seeds=int(max_seeds))
    decisions = simulate([0.9, 0.9], sds, design, 150, np.random.default_rng(12), **options)
    equivalent = sum(d.comparisons[0].verdict == "equivalent" for d in decisions)
    assert at_least(equivalent, len(decisions), 0.8), (equivalent, max_seeds)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_could_be_best_set_holds_the_true_best_in_at_least_1_minus_alpha(variant):
    # the best by half of min_effect: hard to single out, easy to lose by a wrong claim
    means = [0.900, 0.905, 0.910, 0.905]
    sds, options = _variant(variant, [0.006] * 4)
    design = Design(BASE, ME, alpha=ALPHA, start=3, step=2, max_seeds=11)
    decisions = simulate(means, sds, design, 100, np.random.default_rng(13), **options)
    held = sum("c2" in d.could_be_best for d in decisions)
    assert at_least(held, len(decisions), 1 - ALPHA), held
    assert np.mean([len(d.could_be_best) < 4 for d in decisions]) > 0.3  # some were ruled out
