"""Findings as data: what a study says, each a kind, its configurations, its numbers and a sentence.

``build_findings(analysis)`` turns an ``Analysis`` into ``Finding``s that answer the
questions the teaching notebooks ask ("which dropout rate?", "what happens to train and
test accuracy as the rate grows?", "where should dropout go?"), over repeated seeds and
with intervals, so that seed-to-seed noise is not read as an effect. Every number a
sentence quotes is in its ``numbers`` (fractions, as in the store); the sentence speaks in
percent and percentage points (pp).

A finding with ``claim=True`` says that two things differ; every such claim rests on a
test of the analysis' one Holm family. ``exploratory=True`` marks comparisons of pairs
picked by looking at the data (the runner-up, the two best placements): they give
unadjusted numbers, make no claim and stay out of the headline.
"""

from __future__ import annotations

import math

import numpy as np

from dropoutlab.report.model import Analysis, Comparison, FactorInteraction, Finding, TestResult
from dropoutlab.report.stats import (
    SEEDS_SEARCH_LIMIT,
    compare_configs,
    mean_ci,
    no_dropout_configs,
    run_metrics,
)
from dropoutlab.report.text import (
    accuracy_level,
    and_list,
    ci_pp,
    level,
    nats,
    p_text,
    pct,
    pp,
    seeds_text,
    setting,
    value_text,
)


def _interval_numbers(prefix: str, interval) -> dict:
    names = {"mean": "mean", "ci_low": "low", "ci_high": "high", "min": "min", "max": "max", "n": "n",
             "interval": "method"}  # fmt: skip
    return {f"{prefix}_{key}": getattr(interval, field) for key, field in names.items()}


def _vs(c: Comparison, base_name: str, confidence: float) -> str:
    """``+1.3 pp vs no dropout (simultaneous 95% CI ..., paired t, Holm p = ...)``."""
    return (
        f"{pp(c.diff)} vs {base_name} ({ci_pp(c.ci_low, c.ci_high, confidence)}, {c.test}, "
        f"{p_text(c.p_adjusted, 'Holm p')})"
    )


def _numbers(c: TestResult, *fields: str) -> dict:
    """The numbers of a test a sentence quotes (``diff, ci_low, ci_high, p_value, p_adjusted, n``)
    and ``fields``."""
    return {f: getattr(c, f) for f in ("diff", "ci_low", "ci_high", "p_value", "p_adjusted", "n", *fields)}


def _comparison_numbers(c: Comparison) -> dict:
    return _numbers(c, "n_baseline", "seeds_needed")


# ----------------------------------------------------------------------------------------
# Findings


def build_findings(a: Analysis) -> list[Finding]:
    """The findings of an analysis, headline first in reading order, then the exploratory ones.

    In order: a plain statement first when nothing is distinguishable from the baseline;
    what the statistics rest on (completed, diverged and failed runs, seeds with no spread,
    seeds left out of a pairing); the best configuration against the baseline;
    configurations distinguishably better or worse; placement when dropout slots are varied
    one at a time; whether two crossed parameters interact; in a grid of three or more
    parameters, the effect of each value averaged over the other parameters and the two-way
    interactions (each distinguishable interaction, else the largest one per pair); the
    configurations not distinguishable from the baseline, with the seeds ``min_effect`` would need; the
    train-test gap along the rate axis; Monte Carlo dropout against the deterministic pass (studies
    with ``mc_samples``); where train accuracy falls below test accuracy.
    Then, exploratory: the lead of the best over the runner-up, the two best placements.
    """
    if a.runs.empty:
        return [Finding("no_runs", "No runs in this study yet: nothing to report.")]
    done = [c for c in a.configs if c.n > 0 and np.isfinite(c.test_acc.mean)]
    if not done:
        return [Finding("no_completed", "No completed runs: nothing to report."), *_failures(a)]
    out: list[Finding] = []
    out += _answer(a)
    out += _headline(a, done)
    out += _basis(a, done)
    out += _failures(a)
    out += _no_spread(a)
    out += _left_out(a)
    out += _best(a, done)
    out += _significant(a, done)
    out += _placement(a)
    out += _interaction(a)
    out += _factor_effects(a)
    out += _factor_interactions(a)
    out += _not_distinguishable(a, done)
    out += _gap_trend(a)
    out += _mc_dropout(a)
    out += _train_below_test(a, done)
    out += _runner_up(a, done)
    return out


def _answer(a: Analysis) -> list[Finding]:
    """The report's opening: which configuration to choose, by which rule, how sure that is
    (the could-be-best set), and the four verdicts against the baseline (``report/decide.py``)."""
    d = a.decision
    if d is None or d.choice is None:
        return []
    counts = {
        v: sum(c.verdict == v for c in d.comparisons) for v in ("better", "worse", "equivalent", "undecided")
    }
    said = [f"{n} {v}" for v, n in counts.items() if n]
    best = [a.label(c) for c in d.could_be_best]
    confidence = level(1 - d.design.alpha)
    text = (
        f"Choose {a.label(d.choice)}: {d.rule}. Could be the best on test accuracy ({confidence} confidence, "
        f"{seeds_text(d.look)} per configuration): {and_list(best)}. Against {a.baseline_name or a.label(a.baseline)}: "
        f"{', '.join(said)} (equivalent: within ±{100 * d.design.min_effect:.1f} pp)."
    )
    if counts["undecided"] and d.look < d.design.max_seeds:
        text += f" Seeds are still to be added ({d.reason})."
    elif counts["undecided"] and a.looks:
        text += (
            f" The undecided ones stayed so at the design's most seeds ({d.design.max_seeds}): deciding them "
            "needs a new study planned with more seeds, or a larger min_effect."
        )
    elif counts["undecided"]:
        text += (
            " The undecided ones need more seeds: `dropoutlab run STUDY.toml --until-decided` adds them where "
            "they matter until each is decided, with the error rates held."
        )
    numbers = {"choice": d.choice, "could_be_best": list(d.could_be_best), "seeds": d.look,
               "alpha": d.design.alpha, "min_effect": d.design.min_effect, **counts}  # fmt: skip
    return [
        Finding(
            "choice",
            text,
            (d.choice, *d.could_be_best),
            numbers,
            claim=bool(counts["better"] + counts["worse"]),
        )
    ]


def _seed_phrase(done) -> str:
    counts = sorted({c.n for c in done})
    if len(counts) == 1:
        return seeds_text(counts[0])
    return f"{counts[0]}\u2013{counts[-1]} seeds"


def _headline(a: Analysis, done) -> list[Finding]:
    base_name = a.baseline_name
    out = []
    if base_name is None and a.strata:
        bases = list(dict.fromkeys(a.strata.values()))
        out.append(
            Finding(
                "stratified_baseline",
                f"No single baseline: {len(bases)} configurations have no dropout and differ in "
                f"{and_list([p for p in a.varied if not p.startswith('dropout.')])}, so each configuration with "
                "dropout is compared with the one that has the same settings without dropout "
                f"({'; '.join(map(a.label, bases))}).",
                tuple(bases),
            )
        )
        base_name = "the same settings without dropout"
    if base_name is None and len(a.configs) == 1:
        return []  # one configuration (a study of Monte Carlo dropout, say): no baseline to miss
    if base_name is None:
        zero = no_dropout_configs(a.runs)
        why = (
            f"several configurations have no dropout ({'; '.join(map(a.label, zero))})"
            if zero
            else "no configuration has every dropout rate at 0"
        )
        example = a.config(zero[0] if zero else a.configs[0].config).params
        named = ",".join(setting(p, example.get(p)) for p in a.varied)
        return [
            Finding(
                "no_baseline",
                f"No baseline: {why}, so nothing is compared with a baseline; name one with "
                f"--baseline (e.g. '{named}') to get those comparisons.",
                tuple(zero),
            )
        ]
    if not a.comparisons:
        return [
            Finding(
                "only_baseline", f"Only the baseline ({base_name}) has been run: nothing to compare it with."
            )
        ]
    if any(c.significant for c in a.comparisons):
        return out
    tested = [c for c in a.comparisons if np.isfinite(c.p_value)]
    if not tested:
        return out + [
            Finding(
                "untestable",
                f"Nothing can be tested against {base_name} yet: every comparison lacks a second "
                "seed or any spread between seeds; run at least 3 seeds per configuration.",
                (a.baseline,),
            )
        ]
    smallest = min(c.p_adjusted for c in tested)
    counts = sorted({c.n for c in done})
    return out + [
        Finding(
            "none_distinguishable",
            f"No configuration is distinguishable from {base_name} on test accuracy with "
            f"{_seed_phrase(done)} (smallest Holm-adjusted {p_text(smallest)}; {a.family_size} tests "
            f"in one family at alpha = {a.alpha:g}).",
            (a.baseline,),
            {
                "p_adjusted_min": smallest,
                "family_size": a.family_size,
                "alpha": a.alpha,
                "seeds_min": counts[0],
                "seeds_max": counts[-1],
            },  # fmt: skip
        )
    ]


def _basis(a: Analysis, done) -> list[Finding]:
    n_runs = sum(c.n for c in done)
    counts = sorted({c.n for c in done})
    configurations = "1 configuration" if len(done) == 1 else f"{len(done)} configurations"
    text = f"Based on {n_runs} completed runs: {configurations} with {_seed_phrase(done)} each"
    missing = [c.config for c in a.configs if c.n == 0]
    if missing:
        text += f"; no completed run for {', '.join(map(a.label, missing))}"
    numbers = {"runs": n_runs, "configurations": len(done), "seeds_min": counts[0], "seeds_max": counts[-1]}
    return [Finding("basis", text + ".", tuple(missing), numbers)]


def _failures(a: Analysis) -> list[Finding]:
    out = []
    for c in a.configs:
        parts = []
        if c.n_diverged:
            parts.append(f"{c.n_diverged} diverged")
        if c.n_failed:
            parts.append(f"{c.n_failed} failed")
        if parts:
            total = c.n + c.n_diverged + c.n_failed
            out.append(
                Finding(
                    "failures",
                    f"{a.label(c.config)}: {' and '.join(parts)} of {total} runs, left out of the statistics.",
                    (c.config,),
                    {"diverged": c.n_diverged, "failed": c.n_failed, "runs": total},
                )
            )
    return out


def _no_spread(a: Analysis) -> list[Finding]:
    out = []
    for c in a.configs:
        if c.test_acc.method == "same":
            out.append(
                Finding(
                    "no_spread",
                    f"{a.label(c.config)}: all {c.n} seeds gave the same test accuracy ({pct(c.test_acc.mean)}) "
                    "\u2014 possible by chance on a small test set; if their test losses are equal too, the seeds did "
                    "not take effect: check the seeding.",
                    (c.config,),
                    {"n": c.n, "test_acc_mean": c.test_acc.mean},
                )
            )
    return out


def _left_out(a: Analysis) -> list[Finding]:
    out = []
    for c in a.comparisons:
        if c.test == "paired t" and c.seeds_left_out:
            seeds = ", ".join(str(s) for s in c.seeds_left_out)
            word = "seed" if len(c.seeds_left_out) == 1 else "seeds"
            out.append(
                Finding(
                    "seeds_left_out",
                    f"{a.label(c.config)} vs {a.baseline_of(c)}: paired on the {c.n} seeds both completed; "
                    f"{word} {seeds} left out (completed by only one of the two).",
                    (c.config, c.baseline),
                    {"n": c.n, "seeds_left_out": list(c.seeds_left_out)},
                )
            )
    return out


def _best_config(done):
    return max(done, key=lambda c: c.test_acc.mean)


def _best(a: Analysis, done) -> list[Finding]:
    best = _best_config(done)
    text_level = accuracy_level(best.test_acc, a.confidence, "test accuracy")
    numbers = _interval_numbers("test_acc", best.test_acc)
    if a.baseline is None:
        what = "Mean test accuracy" if len(a.configs) == 1 else "Highest mean test accuracy"
        return [
            Finding(
                "best",
                f"{what}: {a.label(best.config)} at {text_level}.",
                (best.config,),
                numbers,
            )
        ]
    if best.config == a.baseline:
        return [
            Finding(
                "best",
                f"The highest mean test accuracy is the baseline itself ({a.baseline_name}): {text_level}; "
                "no other setting has a higher mean.",
                (best.config,),
                numbers,
            )
        ]
    c = a.comparison(best.config)
    numbers.update(_comparison_numbers(c))
    if c.significant and c.diff > 0:
        return [
            Finding(
                "best",
                f"Best: {a.label(best.config)} with test accuracy {text_level}, {_vs(c, a.baseline_name, a.confidence)}: "
                f"higher than {a.baseline_name} at the corrected level.",
                (best.config, a.baseline),
                numbers,
                claim=True,
            )
        ]
    tail = _needed(a, c) if np.isfinite(c.p_value) else "."
    return [
        Finding(
            "best",
            f"Highest mean test accuracy: {a.label(best.config)} at {text_level}, {_vs(c, a.baseline_name, a.confidence)}: "
            f"not distinguishable from {a.baseline_name} with {seeds_text(min(c.n, c.n_baseline))}{tail}",
            (best.config, a.baseline),
            {**numbers, **_needed_numbers(a, c)},
        )
    ]


def _significant(a: Analysis, done) -> list[Finding]:
    best = _best_config(done).config
    out = []
    for c in a.comparisons:
        if not c.significant:
            continue
        base = a.baseline_of(c)
        if c.diff < 0:
            text = f"{a.label(c.config)} has lower test accuracy than {base}: {_vs(c, base, a.confidence)}."
        elif c.config != best or a.baseline is None:
            also = "" if a.baseline is None else "also "
            text = f"{a.label(c.config)} {also}has higher test accuracy than {base}: {_vs(c, base, a.confidence)}."
        else:
            continue
        out.append(Finding("significant", text, (c.config, c.baseline), _comparison_numbers(c), claim=True))
    return out


def _needed_numbers(a: Analysis, c: Comparison) -> dict:
    return {"min_effect": a.min_effect, "power": a.power, "alpha": a.alpha, "family_size": a.family_size,
            "level": a.alpha / max(a.family_size, 1), "seeds_needed": c.seeds_needed,
            "seeds_limit": SEEDS_SEARCH_LIMIT, "sd": c.sd}  # fmt: skip


def _needed(a: Analysis, c: Comparison) -> str:
    """The end of a not-distinguishable sentence: the seeds a difference of ``min_effect`` needs."""
    return _needed_text(a, c.seeds_needed, min(c.n, c.n_baseline))


def _needed_text(a: Analysis, needed: float, n: int, what: str = "a difference") -> str:
    """``"; a difference of 1.0 pp with 80% power ... would take about 12 seeds per configuration."``"""
    target = f"{what} of {pp(a.min_effect).lstrip('+')} with {a.power:.0%} power at the corrected level"
    if math.isinf(needed):
        return f"; {target} would take more than {SEEDS_SEARCH_LIMIT} seeds per configuration."
    if not np.isfinite(needed):
        return "."
    if needed <= n:
        return f"; these seeds already give {target}, so {what} that large would likely have shown."
    return f"; {target} would take about {int(needed)} seeds per configuration."


def _not_distinguishable(a: Analysis, done) -> list[Finding]:
    best = _best_config(done).config
    out = []
    for c in a.comparisons:
        if c.significant or (c.config == best and np.isfinite(c.p_value) and a.baseline is not None):
            continue  # said with the best configuration
        base = a.baseline_of(c)
        head = f"{a.label(c.config)}: {pp(c.diff)} vs {base}"
        n = min(c.n, c.n_baseline)
        numbers = _comparison_numbers(c)
        if not np.isfinite(c.p_value):
            if n < 2:
                text = (
                    f"{head} with {seeds_text(n)}: cannot be tested; "
                    "run at least 2 seeds (3 or more for a useful interval)."
                )
            elif np.isfinite(c.diff):
                text = f"{head}: identical across seeds, no spread to test against."
            else:
                continue
            out.append(Finding("untestable", text, (c.config, c.baseline), numbers))
            continue
        text = (
            f"{head} ({ci_pp(c.ci_low, c.ci_high, a.confidence)}, {p_text(c.p_adjusted, 'Holm p')}): not "
            f"distinguishable from {base} with {seeds_text(n)}{_needed(a, c)}"
        )
        out.append(
            Finding("not_distinguishable", text, (c.config, c.baseline), {**numbers, **_needed_numbers(a, c)})
        )
    return out


# ----------------------------------------------------------------------------------------
# Placement: dropout slots varied one at a time


def _one_at_a_time(a: Analysis) -> dict[str, list[str]]:
    """Configs that differ from the baseline in exactly one varied dropout parameter."""
    ref = a.config(a.baseline).params
    by_slot: dict[str, list[str]] = {}
    for c in a.configs:
        if c.config == a.baseline:
            continue
        differ = [p for p in a.varied if c.params.get(p) != ref.get(p)]
        if len(differ) == 1 and differ[0].startswith("dropout."):
            by_slot.setdefault(differ[0], []).append(c.config)
    return by_slot


def _slot(param: str) -> str:
    return f"the {param.removeprefix('dropout.')} slot"


def _placement_best(a: Analysis):
    """``[(best diff, slot, config)]`` sorted by diff, or None without two slots to compare."""
    if a.baseline is None or not a.comparisons:
        return None
    best_per_slot = []
    for slot, labels in _one_at_a_time(a).items():
        rows = [a.comparison(label) for label in labels]
        rows = [r for r in rows if r is not None and np.isfinite(r.diff)]
        if rows:
            top = max(rows, key=lambda r: r.diff)
            best_per_slot.append((top.diff, slot, top.config))
    if len(best_per_slot) < 2:
        return None
    return sorted(best_per_slot, key=lambda item: item[0], reverse=True)


def _placement(a: Analysis) -> list[Finding]:
    ranked = _placement_best(a)
    if ranked is None:
        return []
    parts, numbers = [], {}
    for _, slot, label in ranked:
        c = a.comparison(label)
        mark = "distinguishable" if c.significant else "not distinguishable"
        parts.append(
            f"{_slot(slot)} at best {pp(c.diff)} with {a.label(label)} ({ci_pp(c.ci_low, c.ci_high, a.confidence)}, {mark})"
        )
        numbers[f"{slot}_diff"] = c.diff
        numbers[f"{slot}_ci_low"] = c.ci_low
        numbers[f"{slot}_ci_high"] = c.ci_high
    by_slot = _one_at_a_time(a)
    helped = [slot for slot, labels in by_slot.items() if any(_helps(a.comparison(x)) for x in labels)]
    hurt_or_not = [slot for slot in by_slot if slot not in helped]
    if not helped:
        lead = f"no single-slot dropout setting is distinguishable from {a.baseline_name}"
    else:
        lead = (
            f"dropout in {' and '.join(map(_slot, helped))} is distinguishably better than {a.baseline_name}"
        )
        if hurt_or_not:
            lead += f"; in {' and '.join(map(_slot, hurt_or_not))} it is not"
    configs = tuple(label for _, _, label in ranked)
    return [
        Finding("placement", f"Placement: {lead} ({'; '.join(parts)}).", configs, numbers, claim=bool(helped))
    ]


def _helps(c: Comparison | None) -> bool:
    return bool(c is not None and c.significant and c.diff > 0)


# ----------------------------------------------------------------------------------------
# Interaction and the gap trend


def _interaction(a: Analysis) -> list[Finding]:
    r = a.interaction
    if r is None:
        return []
    fa, fb = r.factors
    how = "two-way ANOVA interaction F-test" + (", seed as a block" if r.blocked_by_seed else "")
    figure = (
        f"F({r.df_num}, {r.df_den}) = {r.F:.2f}, {p_text(r.p_adjusted, 'Holm p')} "
        f"(unadjusted {p_text(r.p_value)}), partial \u03b7\u00b2 = {r.partial_eta_sq:.2f}; {how}"
    )
    numbers = {"F": r.F, "df_num": r.df_num, "df_den": r.df_den, "p_value": r.p_value,
               "p_adjusted": r.p_adjusted, "partial_eta_sq": r.partial_eta_sq}  # fmt: skip
    if r.significant:
        return [
            Finding(
                "interaction",
                f"{fa} and {fb} interact on test accuracy ({figure}): the best {fa} depends on "
                f"{fb}, so read them together, not one at a time.",
                (),
                numbers,
                claim=True,
            )
        ]
    return [
        Finding(
            "interaction",
            f"No interaction between {fa} and {fb} on test accuracy was detected ({figure}). "
            "This does not show that their effects add up: an interaction this test could not see "
            "with these seeds may remain.",
            (),
            numbers,
        )
    ]


def _gap_trend(a: Analysis) -> list[Finding]:
    g = a.gap_trend
    if g is None:
        return []
    c = g.change
    change = f"a change of {pp(c.diff)} ({ci_pp(c.ci_low, c.ci_high, a.confidence)}"
    claim = False
    if not np.isfinite(c.p_value):
        change += ", cannot be tested: too few seeds or no spread)"
    elif not c.significant:
        change += f", {p_text(c.p_adjusted, 'Holm p')}): not distinguishable from no change"
    else:
        shape = "narrows" if c.diff < 0 else "widens"
        change += f", {p_text(c.p_adjusted, 'Holm p')}): the gap {shape} with more dropout"
        claim = True
    fixed = a.config(g.low_config).params
    others = [setting(p, fixed.get(p)) for p in a.varied if p != g.key]
    where = f" at {', '.join(others)}" if others else ""
    text = (
        f"Along {g.key} from {value_text(g.low_value)} to {value_text(g.high_value)}{where}, mean test accuracy "
        f"goes from {pct(g.low_test_acc)} to {pct(g.high_test_acc)} and the train-test accuracy gap "
        f"(eval-mode train accuracy where measured) from {pp(g.low_gap)} to {pp(g.high_gap)}, {change}."
    )
    numbers = {"low_value": g.low_value, "high_value": g.high_value, "low_test_acc": g.low_test_acc,
               "high_test_acc": g.high_test_acc, "low_gap": g.low_gap,
               "high_gap": g.high_gap, **_comparison_numbers(c)}  # fmt: skip
    return [Finding("gap_trend", text, (g.low_config, g.high_config), numbers, claim=claim)]


def _mc_verdict(c: Comparison, better_when_lower: bool) -> tuple[str, bool]:
    """How a Monte Carlo contrast reads: ``(words, claim)``."""
    if not np.isfinite(c.p_value):
        return "cannot be tested (too few seeds or no spread)", False
    if not c.significant:
        return f"{p_text(c.p_adjusted, 'Holm p')}: not distinguishable", False
    better = (c.diff < 0) == better_when_lower
    return f"{p_text(c.p_adjusted, 'Holm p')}: {'better' if better else 'worse'} with MC dropout", True


def _mc_dropout(a: Analysis) -> list[Finding]:
    """Per configuration with dropout: MC dropout's largest T against the deterministic pass."""
    mc = a.mc
    if mc is None:
        return []
    out = []
    t = mc.largest
    for config in dict.fromkeys(c.config for c in mc.contrasts):
        acc = next((c for c in mc.contrasts if c.config == config and c.metric == "mc_acc"), None)
        nll = next((c for c in mc.contrasts if c.config == config and c.metric == "mc_nll"), None)
        if acc is None or nll is None:
            continue
        acc_words, acc_claim = _mc_verdict(acc, better_when_lower=False)
        nll_words, nll_claim = _mc_verdict(nll, better_when_lower=True)
        at_t, at_0 = mc.level(config, t, "acc"), mc.level(config, 0, "acc")
        nll_ci = (
            f"{level(a.confidence)} CI {nats(nll.ci_low, unit=False)} to {nats(nll.ci_high)}"
            if np.isfinite(nll.ci_low) else "no interval"
        )  # fmt: skip
        text = (
            f"{a.label(config)}: averaging {t} Monte Carlo dropout passes gives a test accuracy of "
            f"{pct(at_t.mean)} against {pct(at_0.mean)} for the usual deterministic pass, {pp(acc.diff)} "
            f"({ci_pp(acc.ci_low, acc.ci_high, a.confidence)}, {acc_words}); the negative log-likelihood "
            f"changes by {nats(nll.diff)} (simultaneous {nll_ci}, {nll_words})."
        )
        numbers = {"samples": t, "acc_mc": at_t.mean, "acc_deterministic": at_0.mean,
                   **{f"acc_{k}": v for k, v in _comparison_numbers(acc).items()},
                   **{f"nll_{k}": v for k, v in _comparison_numbers(nll).items()}}  # fmt: skip
        out.append(Finding("mc_dropout", text, (config,), numbers, claim=acc_claim or nll_claim))
    return out


# ----------------------------------------------------------------------------------------
# Grids of three or more parameters: effects averaged over the others, two-way interactions


def _averaged(others: list[str]) -> str:
    return f"Averaged over {and_list(others)}, " if others else ""


def _seed_test(c: TestResult, confidence: float, note: str = "") -> str:
    """``(simultaneous 95% CI +1.1 to +2.9 pp, paired t over 5 seeds, Holm p = 0.003)``."""
    return (
        f"({ci_pp(c.ci_low, c.ci_high, confidence)}, paired t over {seeds_text(c.n)}, "
        f"{p_text(c.p_adjusted, 'Holm p')}{note})"
    )


def _untestable(c: TestResult) -> str:
    if c.n == 0:
        return (
            "no seed completed every configuration it averages over (see the runs that failed or diverged)."
        )
    if c.n == 1:
        return "only 1 seed completed every configuration it averages over; run at least 2 (3 or more for a useful interval)."
    return "identical across seeds, no spread to test against."


def _left_out_text(c: TestResult) -> str:
    if not c.seeds_left_out or c.n == 0:
        return ""
    word = "Seed" if len(c.seeds_left_out) == 1 else "Seeds"
    seeds = ", ".join(str(s) for s in c.seeds_left_out)
    return f" {word} {seeds} left out: a run failed or diverged in a configuration this averages over."


def _contrast_numbers(a: Analysis, c: TestResult) -> dict:
    return {**_numbers(c, "effect_size", "seeds_left_out"), **_needed_numbers(a, c)}


def _factor_effects(a: Analysis) -> list[Finding]:
    """One sentence per value of each parameter against its reference, averaged over the others."""
    fx = a.factors
    if fx is None:
        return []
    out = []
    for e in fx.effects:
        over = _averaged(fx.others(e.factor))
        this, ref = setting(e.factor, e.level), setting(e.factor, e.reference)
        if e.n == 0:
            text = f"{over}{this} vs {ref} cannot be computed: {_untestable(e)}"
        elif not np.isfinite(e.p_value):
            text = f"{over}{this} vs {ref}: {pp(e.diff)}, cannot be tested: {_untestable(e)}"
        elif e.significant:
            word = "higher" if e.diff > 0 else "lower"
            text = f"{over}{this} has {word} test accuracy than {ref}: {pp(e.diff)} {_seed_test(e, a.confidence)}."
        else:
            text = (
                f"{over}{this} vs {ref}: {pp(e.diff)} {_seed_test(e, a.confidence)}: not distinguishable "
                f"with {seeds_text(e.n)}{_needed_text(a, e.seeds_needed, e.n)}"
            )
        numbers = {**_contrast_numbers(a, e), "factor": e.factor, "level": e.level, "reference": e.reference}
        moderators = [
            _other(i, e.factor) for i in fx.interactions if i.significant and e.factor in (i.factor, i.by)
        ]
        if moderators:
            text += f" This is an average: the effect of {e.factor} depends on {and_list(list(dict.fromkeys(moderators)))} (below)."
        out.append(Finding("factor_effect", text + _left_out_text(e), (), numbers, claim=e.significant))
    return out


def _other(i: FactorInteraction, factor: str) -> str:
    return i.by if i.factor == factor else i.factor


def _effect_by(r: FactorInteraction, joint: str) -> str:
    """``the effect of dropout.rate=0.5 (against dropout.rate=0) is +3.2 pp with model=mlp but +1.0 pp with model=resnet``."""
    return (
        f"the effect of {setting(r.factor, r.level)} (against {setting(r.factor, r.reference)}) on test "
        f"accuracy is {pp(r.effect_at_reference)} with {setting(r.by, r.by_reference)} {joint} "
        f"{pp(r.effect_at_level)} with {setting(r.by, r.by_level)}"
    )


def _interaction_numbers(a: Analysis, r: FactorInteraction) -> dict:
    return {**_contrast_numbers(a, r), "factor": r.factor, "level": r.level, "reference": r.reference,
            "by": r.by, "by_level": r.by_level, "by_reference": r.by_reference,
            "effect_at_reference": r.effect_at_reference, "effect_at_level": r.effect_at_level}  # fmt: skip


def _factor_interactions(a: Analysis) -> list[Finding]:
    """Per pair of parameters: each distinguishable interaction, else the largest one, said as
    not detected, with the seeds an interaction of ``min_effect`` would need."""
    fx = a.factors
    if fx is None:
        return []
    out = []
    for factor, by in fx.pairs:
        rows = fx.interactions_of(factor, by)
        over = _averaged(fx.others(factor, by))
        significant = [r for r in rows if r.significant]
        for r in significant:
            text = (
                f"{over}{_effect_by(r, 'but')}: {factor} and {by} interact on test accuracy, a difference of "
                f"{pp(r.diff)} {_seed_test(r, a.confidence)}. Read them together, not one at a time."
            )
            out.append(
                Finding(
                    "factor_interaction", text + _left_out_text(r), (), _interaction_numbers(a, r), claim=True
                )
            )
        if significant:
            continue
        testable = [r for r in rows if np.isfinite(r.p_value)]
        if not testable:
            r = rows[0]
            text = f"The interaction of {factor} and {by} cannot be tested: {_untestable(r)}"
            out.append(
                Finding("factor_interaction", text + _left_out_text(r), (), _interaction_numbers(a, r))
            )
            continue
        r = max(testable, key=lambda x: abs(x.diff))
        largest = f"; the largest of its {len(rows)} interaction contrasts" if len(rows) > 1 else ""
        text = (
            f"No interaction between {factor} and {by} on test accuracy was detected: "
            f"{over[:1].lower() + over[1:]}{_effect_by(r, 'and')}, a difference of {pp(r.diff)} "
            f"{_seed_test(r, a.confidence, largest)}{_needed_text(a, r.seeds_needed, r.n, 'an interaction')[:-1]}. "
            "This does not show that their effects add up."
        )
        numbers = {**_interaction_numbers(a, r), "contrasts": len(rows)}
        out.append(Finding("factor_interaction", text + _left_out_text(r), (), numbers))
    return out


# ----------------------------------------------------------------------------------------
# Train accuracy below test accuracy


#: Train accuracy counts as below test accuracy from this much (half the 0.1 pp the text shows).
BELOW_MARGIN = 0.0005


def _train_below_test(a: Analysis, done) -> list[Finding]:
    metrics = run_metrics(a.runs)
    metrics = metrics[metrics["status"] == "completed"]
    no_dropout = set(no_dropout_configs(a.runs))
    out = []
    for c in done:
        test = c.test_acc.mean
        running, evaluated = c.train_acc.mean, c.train_eval_acc.mean
        mine = metrics[metrics["config"] == c.config]
        if np.isfinite(evaluated) and evaluated < test - BELOW_MARGIN:
            _, low, high = mean_ci(mine["train_eval_acc"] - mine["test_acc"], a.confidence)
            if not high < 0:
                continue  # the means alone, with an interval reaching 0, show nothing: no sentence
            text = (
                f"At {a.label(c.config)}, train accuracy is below test accuracy even in eval mode "
                f"({pct(evaluated)} vs {pct(test)}, {pp(evaluated - test)}, {ci_pp(low, high, a.confidence, 'unadjusted')}): "
                "a sign of underfitting at this setting (exploratory: one interval per configuration, "
                "not adjusted for the others)."
            )
            numbers = {"train_eval_acc": evaluated, "test_acc": test, "diff": evaluated - test,
                       "ci_low": low, "ci_high": high}  # fmt: skip
            out.append(Finding("train_below_test", text, (c.config,), numbers, exploratory=True))
            continue
        elif np.isfinite(running) and running < test - BELOW_MARGIN:
            _, low, high = mean_ci(mine["train_acc"] - mine["test_acc"], a.confidence)
            below = (
                f"At {a.label(c.config)}, mean train accuracy measured with dropout on ({pct(running)}) is "
                f"below mean test accuracy ({pct(test)}; {pp(running - test)}, {ci_pp(low, high, a.confidence, 'unadjusted')})"
            )
            numbers = {"train_acc": running, "test_acc": test, "diff": running - test, "ci_low": low,
                       "ci_high": high, "train_eval_acc": evaluated}  # fmt: skip
            if np.isfinite(evaluated) and c.config in no_dropout:
                # No dropout to blame: the running figure lags because it averages over an
                # epoch of still-improving weights.
                text = (
                    f"{below}, but eval-mode train accuracy ({pct(evaluated)}) is above it: the running "
                    "figure averages over an epoch of changing weights; this is not underfitting."
                )
            elif np.isfinite(evaluated):
                text = (
                    f"{below}, but eval-mode train accuracy ({pct(evaluated)}) is above it: "
                    "this is dropout noise, not underfitting."
                )
            else:
                text = (
                    f"{below}; eval-mode train accuracy was not measured, so this may be "
                    "dropout noise rather than underfitting."
                )
        else:
            continue
        out.append(Finding("train_below_test", text, (c.config,), numbers))
    return out


# ----------------------------------------------------------------------------------------
# Exploratory: pairs picked by looking at the data


EXPLORATORY = "Exploratory (a pair picked by ranking these same results; unadjusted, not a claim): "


def _pair(a: Analysis, kind: str, lead: str, first: str, second: str, numbers: dict, untestable: str | None):
    """An exploratory comparison of ``first`` minus ``second`` (unadjusted, no claim); None when
    it cannot be tested and ``untestable`` (the words for that) is None."""
    pair = compare_configs(a.runs, first, second, confidence=a.confidence)
    numbers = {**numbers, **{k: pair[k] for k in ("diff", "ci_low", "ci_high", "p_value")}}
    if np.isfinite(pair["p_value"]):
        detail = (f"{pp(pair['diff'])} ({ci_pp(pair['ci_low'], pair['ci_high'], a.confidence, 'unadjusted')}, "
                  f"{pair['test']}, unadjusted {p_text(pair['p_value'])})")  # fmt: skip
    elif untestable is None:
        return None
    else:
        detail = f"{pp(pair['diff'])}, {untestable}"
    return Finding(kind, f"{EXPLORATORY}{lead}{detail}.", (first, second), numbers, exploratory=True)


def _runner_up(a: Analysis, done) -> list[Finding]:
    ranked = sorted(done, key=lambda c: c.test_acc.mean, reverse=True)
    out = []
    if len(ranked) > 1 and ranked[0].config != a.baseline and ranked[1].config != a.baseline:
        best, runner = ranked[0], ranked[1]
        lead = (f"the highest mean, {a.label(best.config)}, is ahead of the runner-up {a.label(runner.config)} "
                f"({pct(runner.test_acc.mean)}) by ")  # fmt: skip
        out.append(_pair(a, "runner_up", lead, best.config, runner.config,
                         {"runner_up_test_acc": runner.test_acc.mean},
                         "which cannot be tested (one seed, or no spread between seeds)"))  # fmt: skip
    ranked_slots = _placement_best(a)
    if ranked_slots is not None:
        (_, _, top), (_, _, second) = ranked_slots[:2]
        lead = f"the best placements compared directly ({a.label(top)} minus {a.label(second)}): "
        out.append(_pair(a, "placement_pair", lead, top, second, {}, None))
    return [f for f in out if f is not None]
