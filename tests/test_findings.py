"""Findings text on small synthetic studies built here (accuracies as fractions)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dropoutlab.errors import DropoutlabError
from dropoutlab.report.analysis import StudyData, _analyze
from dropoutlab.report.model import Levels
from dropoutlab.report.stats import rate_axis

MINUS = "\u2212"


def study(
    configs: list[tuple[dict, float, float, float | None]],
    seeds: int = 3,
    rng: int = 0,
    seed_sd: float = 0.01,
    noise_sd: float = 0.003,
    params: list[str] | None = None,
) -> pd.DataFrame:
    """A runs table like ``Store.runs()``.

    Each config is ``(params, test accuracy, running train accuracy, eval-mode train
    accuracy or None when not measured)``; every run adds a shared per-seed offset (same
    seed, same initialisation) and its own noise. Slot columns ``dropout.conv`` and
    ``dropout.dense`` exist for every run.
    """
    gen = np.random.default_rng(rng)
    offsets = gen.normal(0, seed_sd, seeds)
    rows = []
    for values, test, train, train_eval in configs:
        label = ",".join(f"{k}={v}" for k, v in values.items())
        for seed in range(seeds):
            e = offsets[seed] + gen.normal(0, noise_sd)
            t = offsets[seed] + gen.normal(0, noise_sd)  # train side: its own noise
            row = {
                "config": label,
                "seed": seed,
                "status": "completed",
                "test_acc": test + e,
                "test_loss": 1.5 - test + e,
                "final_train_acc": train + t,
                "final_train_eval_acc": np.nan if train_eval is None else train_eval + t,
                "final_val_acc": test + e,
                "final_val_loss": 1.5 - test,
                "final_train_loss": 1.5 - train,
                "final_train_eval_loss": np.nan if train_eval is None else 1.5 - train_eval,
                "best_epoch": 8,
                "dropout.conv": 0.0,
                "dropout.dense": 0.0,
            }
            row.update(values)
            rows.append(row)
    runs = pd.DataFrame(rows)
    runs.attrs["params"] = params or list(configs[0][0])
    return runs


def analyze_runs(runs: pd.DataFrame, params=None, baseline=None, **levels):
    """The report's analysis of a runs table (parameters in attrs unless given)."""
    return _analyze(StudyData.from_runs(runs, params), baseline=baseline, levels=Levels(**levels))


def findings(runs: pd.DataFrame, params=None, baseline=None, **levels) -> list[str]:
    """The headline sentences of the report on ``runs``."""
    return [f.text for f in analyze_runs(runs, params, baseline, **levels).headline]


def conv(rate):
    return {"dropout.conv": rate}


def set_test_acc(runs: pd.DataFrame, rate: float, values: list[float]) -> None:
    """Overwrite the test accuracies of ``dropout.conv=rate``, one per seed in order."""
    rows = runs.index[runs["dropout.conv"] == rate]
    runs.loc[rows, "test_acc"] = values


def one(sentences: list[str], *needles: str) -> str:
    """The one sentence containing every needle."""
    hits = [s for s in sentences if all(n in s for n in needles)]
    assert len(hits) == 1, (needles, sentences)
    return hits[0]


# ---------------------------------------------------------------------------- effects


def test_clear_effect_is_reported_with_its_verdict_interval_and_look():
    runs = study(
        [
            (conv(0.0), 0.700, 0.90, 0.92),
            (conv(0.2), 0.750, 0.85, 0.88),
            (conv(0.8), 0.620, 0.66, 0.70),
        ],
        noise_sd=0.0002,
    )
    analysis = analyze_runs(runs)
    text = [f.text for f in analysis.headline]
    better = one(text, "dropout.conv=0.2 is better than no dropout")
    assert better.startswith("dropout.conv=0.2 is better than no dropout: +5.0 pp over 3 paired seeds")
    assert "(simultaneous 95% CI +" in better and "decided at 3 seeds per configuration" in better
    worse = one(text, "dropout.conv=0.8 is worse than no dropout")
    assert f"{MINUS}8.0 pp over 3 paired seeds (simultaneous 95% CI {MINUS}" in worse
    # the interval is the decision's, whose verdict it carries
    d = {c.config: c for c in analysis.decision.comparisons}
    found = {f.configs[0]: f for f in analysis.headline if f.kind in ("better", "worse")}
    assert found["dropout.conv=0.2"].numbers["ci_low"] == d["dropout.conv=0.2"].low > 0
    assert found["dropout.conv=0.8"].numbers["ci_high"] == d["dropout.conv=0.8"].high < 0
    assert all(f.claim for f in found.values())
    best = one(text, "Highest mean test accuracy: dropout.conv=0.2")
    assert best.endswith("against no dropout it is better (above).")
    assert "not distinguishable" not in " ".join(text)


def test_undecided_comparisons_are_one_sentence_with_what_would_decide_them():
    rates = (0.0, 0.05, 0.1, 0.2, 0.5)
    runs = study([(conv(r), 0.70, 0.80, 0.82) for r in rates], rng=5, noise_sd=0.004)
    analysis = analyze_runs(runs)
    text = [f.text for f in analysis.headline]
    assert text[0].startswith("Choose ") and "provisional" in text[0]  # the answer first: only noise
    assert "Against no dropout: 4 undecided" in text[0]
    undecided = [f for f in analysis.headline if f.kind == "undecided"]
    assert len(undecided) == 1 and analysis.headline[1] is undecided[0]  # right after the answer
    sentence = undecided[0].text
    assert sentence.startswith("All undecided against no dropout at 3 seeds per configuration")
    for rate in rates[1:]:
        assert f"dropout.conv={rate} (" in sentence
    assert "`dropoutlab run STUDY.toml --until-decided`" in sentence
    assert f"`--max-seeds {undecided[0].numbers['max_seeds_advised']}`" in sentence
    joined = " ".join(text)
    assert "not distinguishable from no dropout" not in joined and "seeds per configuration." not in joined
    assert "lower test accuracy than" not in joined and "is better than" not in joined
    assert not [f for f in analysis.headline if f.claim]


def test_undecided_sentence_plans_the_most_seeds_with_the_upper_bound_of_the_spread():
    from dropoutlab.report.decide import recommend_max_seeds
    from dropoutlab.report.stats import sd_upper_bound

    runs = study([(conv(0.0), 0.7, 0.8, 0.82), (conv(0.1), 0.7, 0.8, 0.82)], seed_sd=0.0)
    set_test_acc(runs, 0.0, [0.700, 0.708, 0.696])
    set_test_acc(runs, 0.1, [0.706, 0.705, 0.704])
    # Per-seed differences +0.6, -0.3, +0.8 pp: SD 0.59 pp over 2 degrees of freedom; its 80% upper
    # confidence bound is 1.48 times that, and the most seeds are planned at the bound.
    sd = np.std([0.006, -0.003, 0.008], ddof=1)
    bound = sd_upper_bound(sd, 2)
    assert bound == pytest.approx(sd * np.sqrt(2 / 0.4463), rel=1e-3)  # chi2(2) 20% quantile: 0.4463
    f = next(f for f in analyze_runs(runs).headline if f.kind == "undecided")
    assert f.numbers["sd"] == pytest.approx(sd) and f.numbers["sd_bound"] == pytest.approx(bound)
    advised = recommend_max_seeds(bound, 0.01, 0.05, 1, start=3, step=2)
    assert f.numbers["max_seeds_advised"] == max(advised, 5)
    assert advised > recommend_max_seeds(sd, 0.01, 0.05, 1, start=3, step=2)  # not the spread seen
    assert f"`--max-seeds {max(advised, 5)}`" in f.text
    assert f"80% upper confidence bound of the paired spread, {100 * bound:.1f} pp" in f.text
    # min_effect, not the observed +0.4 pp, sets the count: half the effect, more seeds.
    half = next(f for f in analyze_runs(runs, min_effect=0.005).headline if f.kind == "undecided")
    assert half.numbers["max_seeds_advised"] > f.numbers["max_seeds_advised"]


def test_the_best_worse_than_the_baseline_on_paired_seeds_is_not_called_not_distinguishable():
    # The baseline failed on seed 3, where every configuration did well: its mean over seeds 0-2 is
    # below the mean of dropout.conv=0.2 over seeds 0-3, yet paired by seed 0.2 is worse.
    runs = study([(conv(0.0), 0.7, 0.8, 0.82), (conv(0.2), 0.7, 0.8, 0.82)], seeds=4, seed_sd=0.0)
    set_test_acc(runs, 0.0, [0.700, 0.720, 0.710, 0.900])
    set_test_acc(runs, 0.2, [0.690, 0.7105, 0.6995, 0.890])
    runs.loc[(runs["dropout.conv"] == 0.0) & (runs["seed"] == 3), "status"] = "failed"
    analysis = analyze_runs(runs)
    assert analysis.decision.verdicts() == {"dropout.conv=0.2": "worse"}
    best = next(f for f in analysis.headline if f.kind == "best")
    assert best.configs[0] == "dropout.conv=0.2" and best.numbers["verdict"] == "worse"
    assert "not distinguishable" not in best.text
    assert "it is worse than no dropout" in best.text and "seeds the baseline did not complete" in best.text
    assert one([f.text for f in analysis.headline], "dropout.conv=0.2 is worse than no dropout")


def test_the_report_reads_answer_then_decided_then_undecided_with_no_sentence_twice():
    import re

    runs = study([(conv(0.0), 0.800, 0.9, 0.92), (conv(0.05), 0.800, 0.9, 0.92), (conv(0.1), 0.801, 0.9, 0.92),
                  (conv(0.2), 0.850, 0.9, 0.92), (conv(0.5), 0.700, 0.65, 0.92), (conv(0.8), 0.698, 0.64, 0.92)],
                 seeds=8, noise_sd=0.001)  # fmt: skip
    set_test_acc(runs, 0.1, list(0.80 + np.array([0.02, -0.02, 0.015, -0.01, 0.02, -0.02, 0.01, 0.0])))
    analysis = analyze_runs(runs)
    kinds = [f.kind for f in analysis.headline]
    assert kinds[0] == "choice"
    verdicts = analysis.decision.verdicts()
    decided = sum(v != "undecided" for v in verdicts.values())
    assert "undecided" in verdicts.values() and decided >= 3
    assert set(kinds[1 : 1 + decided]) <= {"better", "worse", "equivalent"}
    assert kinds[1 + decided] == "undecided" and kinds.count("undecided") == 1
    # no sentence twice: with the names and numbers taken out, every sentence differs
    names = sorted({analysis.label(c) for c in analysis.runs["config"]}, key=len, reverse=True)

    def shape(text):
        for name in names:
            text = text.replace(name, "NAME")
        return re.sub(r"[\u2212+\-]?\d+(\.\d+)?", "N", text)

    shapes = [shape(f.text) for f in analysis.headline if f.kind not in ("better", "worse", "equivalent")]
    assert len(shapes) == len(set(shapes)), shapes
    noise = [f for f in analysis.headline if f.kind == "train_below_test"]
    assert len(noise) == 1 and len(noise[0].configs) >= 2  # dropout noise of several, said once


def test_runner_up_comparison_says_whether_the_best_is_ahead():
    runs = study(
        [
            (conv(0.0), 0.70, 0.9, 0.92),
            (conv(0.1), 0.75, 0.9, 0.92),
            (conv(0.2), 0.75, 0.9, 0.92),
        ],
        seed_sd=0.0,
    )
    set_test_acc(runs, 0.1, [0.748, 0.752, 0.747])
    set_test_acc(runs, 0.2, [0.751, 0.747, 0.753])
    analysis = analyze_runs(runs)
    assert not [f for f in analysis.headline if "runner-up" in f.text]
    lead = one([f.text for f in analysis.exploratory], "runner-up dropout.conv=0.1")
    assert lead.startswith("Exploratory") and "unadjusted p = " in lead
    assert "distinguishable" not in lead  # no verdict on a pair picked by ranking


def test_single_seed_cannot_be_tested():
    runs = study([(conv(0.0), 0.70, 0.8, 0.82), (conv(0.5), 0.60, 0.7, 0.72)], seeds=1)
    text = findings(runs)
    assert text[0].startswith("Nothing can be tested against no dropout")
    assert "lower test accuracy" not in " ".join(text)
    assert "70.1% (one seed, no interval)" in one(text, "highest mean test accuracy is the baseline")


def test_no_baseline_is_said_and_best_still_reported():
    runs = study([(conv(0.1), 0.70, 0.8, 0.82), (conv(0.2), 0.72, 0.8, 0.82)])
    runs["dropout.dense"] = 0.1
    text = findings(runs)
    assert text[0].startswith("No baseline")
    assert one(text, "Highest mean test accuracy: dropout.conv=0.2 at 72.")


def test_several_no_dropout_configs_without_a_tie_break_ask_for_a_baseline():
    runs = study([({"optimizer.lr": lr}, 0.7, 0.8, 0.82) for lr in (0.01, 0.1)], seeds=2)
    text = findings(runs)
    assert text[0].startswith("No baseline: several configurations have no dropout")
    assert "optimizer.lr=0.01" in text[0] and "optimizer.lr=0.1" in text[0]
    assert "name one with --baseline (e.g. 'optimizer.lr=0.01')" in text[0]  # a baseline of this study


def test_explicit_baseline_and_params_without_attrs():
    runs = study([(conv(0.0), 0.70, 0.8, 0.82), (conv(0.2), 0.75, 0.8, 0.82)])
    plain = pd.DataFrame(runs.to_dict("list"))
    text = findings(plain, params=["dropout.conv"], baseline="dropout.conv=0.2")
    assert one(text, "dropout.conv=0 is worse than dropout.conv=0.2")
    with pytest.raises(DropoutlabError, match="pass params"):  # never guessed from the column names
        findings(plain)


def test_diverged_runs_are_counted_per_configuration():
    runs = study([(conv(0.0), 0.70, 0.8, 0.82), (conv(0.8), 0.60, 0.7, 0.72)], seeds=4)
    runs.loc[runs.index[-1], "status"] = "diverged"
    text = findings(runs)
    assert one(text, "dropout.conv=0.8: 1 diverged of 4 runs, left out")
    assert one(text, "Based on 7 completed runs")


# ---------------------------------------------------------------------------- train vs test


def test_dropout_noise_is_told_apart_from_underfitting():
    runs = study(
        [
            (conv(0.0), 0.70, 0.90, 0.92),
            (conv(0.8), 0.64, 0.61, 0.70),  # running < test < eval: dropout noise
            (conv(0.9), 0.55, 0.50, 0.52),  # eval < test as well: underfitting
        ],
        noise_sd=0.0005,
    )
    text = findings(runs)
    noise = one(text, "At dropout.conv=0.8")
    assert "train accuracy measured with dropout on (61." in noise
    assert "below mean test accuracy (64." in noise
    assert "eval-mode train accuracy (70." in noise
    assert noise.endswith("this is dropout noise, not underfitting.")
    assert not [s for s in text if s.startswith("At dropout.conv=0.9")]  # not a headline claim:
    under = one([f.text for f in analyze_runs(runs).exploratory], "At dropout.conv=0.9")  # exploratory
    assert "even in eval mode" in under and "underfitting" in under
    assert "dropout noise" not in under
    assert not [s for s in text if s.startswith("At dropout.conv=0.0,")]


def test_running_accuracy_lag_without_dropout_is_not_called_dropout_noise():
    runs = study([(conv(0.0), 0.70, 0.68, 0.72), (conv(0.5), 0.70, 0.69, 0.72)], noise_sd=0.0005)
    text = findings(runs)
    lag = one(text, "At no dropout,")
    assert "dropout noise" not in lag and "not underfitting" in lag
    assert one(text, "At dropout.conv=0.5").endswith("this is dropout noise, not underfitting.")


def test_unmeasured_eval_mode_train_accuracy_is_not_called_underfitting():
    runs = study([(conv(0.0), 0.70, 0.90, None), (conv(0.8), 0.64, 0.61, None)])
    sentence = one(findings(runs), "At dropout.conv=0.8")
    assert "was not measured, so this may be dropout noise rather than underfitting" in sentence


def test_gap_along_the_rate_axis_is_reported_with_intervals():
    runs = study(
        [
            (conv(0.0), 0.70, 0.90, 0.92),
            (conv(0.2), 0.72, 0.84, 0.86),
            (conv(0.5), 0.71, 0.76, 0.78),
        ],
        noise_sd=0.0005,
    )
    gap = one(findings(runs), "Along dropout.conv from 0 to 0.5")
    assert "gap (eval-mode train accuracy where measured) from +22.0 pp" in gap
    assert "to +7.0 pp" in gap
    # a claim of the Holm family: printed with the interval at its Holm step, which excludes 0 as it does
    assert f"a change of {MINUS}15.0 pp (" in gap and "% CI at its Holm step " in gap
    assert gap.endswith("the gap narrows with more dropout.")


# ---------------------------------------------------------------------------- placement, grid


def test_placement_names_the_slot_that_helped_most():
    def both(c, d):
        return {"dropout.conv": c, "dropout.dense": d}

    runs = study(
        [
            (both(0.0, 0.0), 0.70, 0.9, 0.92),
            (both(0.1, 0.0), 0.705, 0.9, 0.92),
            (both(0.2, 0.0), 0.700, 0.9, 0.92),
            (both(0.0, 0.3), 0.740, 0.9, 0.92),
            (both(0.0, 0.5), 0.760, 0.9, 0.92),
        ],
        noise_sd=0.0002,
    )
    analysis = analyze_runs(runs)
    placement = one([f.text for f in analysis.headline], "Placement:")
    assert placement.startswith(
        "Placement: dropout in the dense slot and the conv slot is better than no dropout"
    )
    assert "the dense slot at best +6.0 pp with dropout.dense=0.5" in placement
    pair = one([f.text for f in analysis.exploratory], "best placements compared directly")
    assert "(dropout.dense=0.5 minus dropout.conv=0.1)" in pair


def _grid(interacting: bool) -> pd.DataFrame:
    configs = []
    for rate in (0.0, 0.3, 0.6):
        for wd in (0.0, 0.001):
            acc = 0.70 + 0.02 * (rate > 0) + 0.01 * (wd > 0)
            if interacting and rate == 0.6 and wd > 0:
                acc -= 0.05
            configs.append(({"dropout.conv": rate, "optimizer.weight_decay": wd}, acc, 0.9, 0.92))
    return study(configs, seeds=3, noise_sd=0.003, rng=4)


def test_two_parameter_grid_reports_an_interaction_when_there_is_one():
    sentence = one(findings(_grid(interacting=True)), "interact on test accuracy")
    assert sentence.startswith("dropout.conv and optimizer.weight_decay interact")
    assert "two-way ANOVA interaction F-test" in sentence and "F(2, " in sentence


def test_two_parameter_grid_without_interaction_says_so():
    sentence = one(findings(_grid(interacting=False)), "interaction between")
    assert sentence.startswith("No interaction between dropout.conv and optimizer.weight_decay")
    assert "This does not show that their effects add up" in sentence and "add up:" in sentence


# ---------------------------------------------------------------------------- rate axis


def test_rate_axis_picks_the_most_varied_rate_and_keeps_other_slots_at_their_mode():
    def both(c, d):
        return {"dropout.conv": c, "dropout.dense": d}

    runs = study(
        [(both(r, 0.0), 0.7, 0.8, 0.82) for r in (0.0, 0.05, 0.1, 0.2, 0.5, 0.8)]
        + [(both(0.05, 0.15), 0.7, 0.8, 0.82)],
        seeds=2,
    )
    key, mask = rate_axis(runs)
    assert key == "dropout.conv"
    assert mask.index.equals(runs.index) and mask.dtype == bool
    assert set(runs.loc[mask, "dropout.dense"]) == {0.0}
    assert int(mask.sum()) == 12
    assert not mask[runs["config"] == "dropout.conv=0.05,dropout.dense=0.15"].any()


def test_rate_axis_without_a_varied_dropout_rate():
    runs = study([({"optimizer.lr": lr}, 0.7, 0.8, 0.82) for lr in (0.01, 0.1)], seeds=2)
    key, mask = rate_axis(runs)
    assert key is None and not mask.any()


@pytest.mark.parametrize("status", ["failed", "diverged"])
def test_no_completed_runs_is_said_plainly(status):
    runs = study([(conv(0.0), 0.7, 0.8, 0.82)], seeds=2)
    runs["status"] = status
    text = findings(runs)
    assert text[0] == "No completed runs: nothing to report."
    assert f"2 {status} of 2 runs" in text[1]


def test_a_study_of_one_configuration_misses_no_baseline():
    runs = study([(conv(0.5), 0.70, 0.8, 0.82)])
    text = findings(runs)
    assert not any("baseline" in t for t in text), text
    assert one(text, "Mean test accuracy: ")


# ---------------------------------------------------------------------------- the answer


def test_the_report_opens_with_the_choice_and_the_four_verdicts_of_the_decision():
    # 8 seeds, small noise: 0.2 clearly better, 0.8 clearly worse, 0.05 the same as no dropout
    runs = study([(conv(0.0), 0.800, 0.9, 0.92), (conv(0.05), 0.800, 0.9, 0.92), (conv(0.2), 0.850, 0.9, 0.92),
                  (conv(0.8), 0.700, 0.9, 0.92)], seeds=8, noise_sd=0.001)  # fmt: skip
    analysis = analyze_runs(runs)
    d = analysis.decision
    assert d.verdicts() == {"dropout.conv=0.05": "equivalent", "dropout.conv=0.2": "better",
                            "dropout.conv=0.8": "worse"}  # fmt: skip
    assert d.choice == "dropout.conv=0.2" and d.could_be_best == ("dropout.conv=0.2",)
    answer = analysis.findings[0]
    assert answer.kind == "choice" and answer.claim
    assert answer.text.startswith("Choose dropout.conv=0.2: ")
    assert "Against no dropout: 1 better, 1 worse, 1 equivalent (equivalent: within ±1.0 pp)." in answer.text
    assert "undecided" not in answer.text


def test_the_json_gives_each_comparison_its_verdict_and_the_choice():
    from dropoutlab.report.numbers import analysis_to_json

    runs = study([(conv(0.0), 0.80, 0.9, 0.92), (conv(0.2), 0.85, 0.9, 0.92)], seeds=6, noise_sd=0.001)
    data = analysis_to_json(analyze_runs(runs))
    assert data["decision"]["choice"] == "dropout.conv=0.2" and data["decision"]["could_be_best"] == [
        "dropout.conv=0.2"
    ]
    assert data["decision"]["verdicts"] == {"dropout.conv=0.2": "better"}
    assert [c["verdict"] for c in data["comparisons"] if c["config"] == "dropout.conv=0.2"] == ["better"]
    assert data["looks"] == []


def test_a_p_value_near_alpha_shows_the_digits_that_compare_it_with_alpha():
    from dropoutlab.report.text import p_text

    assert p_text(0.0497, "Holm p") == "Holm p = 0.0497"  # not "0.05" beside a claim at 0.05
    assert p_text(0.0503) == "p = 0.0503"
    assert p_text(0.051) == "p = 0.051"
    assert p_text(0.16) == "p = 0.16" and p_text(0.004) == "p = 0.004" and p_text(0.0004) == "p < 0.001"


def test_underfitting_is_said_only_when_its_interval_is_below_zero_and_as_exploratory():
    clear = analyze_runs(study([(conv(0.0), 0.80, 0.85, 0.70), (conv(0.5), 0.80, 0.85, 0.90)]))
    said = [f for f in clear.findings if f.kind == "train_below_test"]
    assert len(said) == 1 and said[0].exploratory and "a sign of underfitting" in said[0].text
    assert said[0].numbers["ci_high"] < 0
    noisy = analyze_runs(study([(conv(0.0), 0.80, 0.85, 0.78), (conv(0.5), 0.80, 0.85, 0.90)], noise_sd=0.05))
    assert not [f for f in noisy.findings if "underfitting" in f.text and "sign of" in f.text]


def test_undecided_strata_are_advised_a_new_study_not_until_decided():
    """No single baseline: each stratum has its own decision; ``--until-decided`` needs one
    baseline, so what would decide the rest is a new study with the seeds a fixed design needs."""
    configs = [
        ({"model": m, "dropout.conv": r}, 0.80, 0.85, 0.86) for m in ("mlp", "cnn") for r in (0.0, 0.5)
    ]
    runs = study(configs, seeds=3, noise_sd=0.01)
    a = analyze_runs(runs)
    assert a.decision is None and len(a.strata_decisions) == 2
    assert set(a.verdicts().values()) == {"undecided"}
    undecided = one([f.text for f in a.headline], "All undecided against the same settings without dropout")
    assert "dropout.conv=0.5 vs model=cnn without dropout" in undecided
    assert "in a new study (a new name, new seeds; `--until-decided` needs a single baseline" in undecided
    assert "give it `seeds = " in undecided and "--max-seeds" not in undecided
    finding = next(f for f in a.headline if f.kind == "undecided")
    assert finding.numbers["max_seeds_advised"] >= 3 and finding.numbers["alpha"] == 0.025
    from dropoutlab.report.sections import report_sections

    (section,) = [
        s for s in report_sections(a) if s.title == "Compared with the same settings without dropout"
    ]
    table = section.tables[0][1] if isinstance(section.tables[0], tuple) else section.tables[0]
    assert list(table["verdict"]) == ["undecided", "undecided"]
    assert any("each of the 2 strata at alpha / 2" in p for p in section.paragraphs)
