"""Findings as data: what a study says, each a kind, its configurations, its numbers and a sentence.

``build_findings(analysis)`` turns an ``Analysis`` into ``Finding``s that answer the
questions the teaching notebooks ask ("which dropout rate?", "what happens to train and
test accuracy as the rate grows?", "where should dropout go?"), over repeated seeds and
with intervals, so that seed-to-seed noise is not read as an effect. Every number a
sentence quotes is in its ``numbers`` (fractions, as in the store); the sentence speaks in
percent and percentage points (pp).

A finding with ``claim=True`` says that two things differ (or, ``equivalent``, that they
differ by less than ``min_effect``). Against the baseline every claim is a verdict of the
decision (``report/decide.py``), printed with the decision's own interval, from which it is
read; every other claim rests on a test of the analysis' Holm family and is printed with the
interval at the level of its Holm step, which excludes 0 whenever Holm rejects (the
simultaneous interval need not). Seeds are planned with the ``stats.PLANNING_CONFIDENCE``
upper confidence bound of the spread, never the spread a few seeds happened to show.
``exploratory=True`` marks comparisons of pairs picked by looking at the data (the
runner-up, the two best placements): they give unadjusted numbers, make no claim and stay
out of the headline.
"""

from __future__ import annotations

import math

import numpy as np

from dropoutlab.report.model import CONFIDENCE, Analysis, Comparison, FactorInteraction, Finding, TestResult
from dropoutlab.report.stats import (
    PLANNING_CONFIDENCE,
    SEEDS_SEARCH_LIMIT,
    compare_configs,
    mean_ci,
    no_dropout_configs,
    run_metrics,
    sd_upper_bound,
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
    signed,
    value_text,
)


def _interval_numbers(prefix: str, interval) -> dict:
    names = {"mean": "mean", "ci_low": "low", "ci_high": "high", "min": "min", "max": "max", "n": "n",
             "interval": "method"}  # fmt: skip
    return {f"{prefix}_{key}": getattr(interval, field) for key, field in names.items()}


def _ci(c: TestResult, confidence: float) -> str:
    """The interval a test of the Holm family is printed with: for a claim (``significant``),
    the interval at the level of its Holm step, labelled so, which excludes 0 whenever Holm
    rejects (at ``confidence = 1 - alpha``); otherwise the simultaneous interval, which then
    contains 0."""
    if c.significant and np.isfinite(c.ci_low_step):
        step = 1 - (1 - confidence) / max(int(c.holm_step), 1)
        return f"{level(step)} CI at its Holm step {signed(c.ci_low_step)} to {signed(c.ci_high_step)} pp"
    return ci_pp(c.ci_low, c.ci_high, confidence)


def _vs(c: Comparison, base_name: str, confidence: float) -> str:
    """``+1.3 pp vs no dropout (97.5% CI at its Holm step ..., paired t, Holm p = ...)``."""
    return f"{pp(c.diff)} vs {base_name} ({_ci(c, confidence)}, {c.test}, {p_text(c.p_adjusted, 'Holm p')})"


def _numbers(c: TestResult, *fields: str, confidence: float = CONFIDENCE) -> dict:
    """The numbers of a test a sentence quotes (``diff, ci_low, ci_high, p_value, p_adjusted, n``;
    for a claim its Holm step's interval, ``ci_low_step, ci_high_step, holm_step`` and its level
    ``ci_step_confidence``) and ``fields``."""
    step = ("ci_low_step", "ci_high_step", "holm_step") if c.significant else ()
    out = {
        f: getattr(c, f) for f in ("diff", "ci_low", "ci_high", "p_value", "p_adjusted", "n", *step, *fields)
    }
    if c.significant and np.isfinite(c.holm_step):
        out["ci_step_confidence"] = 1 - (1 - confidence) / max(int(c.holm_step), 1)
    return out


def _comparison_numbers(c: Comparison, confidence: float = CONFIDENCE) -> dict:
    return _numbers(c, "n_baseline", "seeds_needed", "sd_bound", confidence=confidence)


# ----------------------------------------------------------------------------------------
# Findings


def build_findings(a: Analysis) -> list[Finding]:
    """The findings of an analysis, headline first in reading order, then the exploratory ones.

    In order: the answer (which configuration to choose and how sure that is, from the
    decision, or per stratum); what is decided against the baseline, one sentence per
    comparison (better, worse or equivalent, with the decision's interval and the look it was
    decided at); what is not, in one sentence with what would decide it; per categorical
    parameter with three or more values (kind, model), which values could be best, compared
    with each other; what the statistics rest on
    (completed, diverged and failed runs, seeds with no spread, seeds left out of a pairing);
    the configuration with the highest mean; placement when dropout slots are varied one at a
    time; whether two crossed parameters interact; in a grid of three or more parameters, the
    effect of each value averaged over the other parameters and the two-way interactions
    (each distinguishable interaction, else the largest one per pair); the train-test gap
    along the rate axis; Monte Carlo dropout against the deterministic pass (studies with
    ``mc_samples``); where train accuracy falls below test accuracy. Then, exploratory: the
    rate at which a curve fitted along the swept rate peaks, the lead of the best over the
    runner-up, the two best placements. With no single baseline each stratum has its own
    decision; without any decision the comparisons are the Holm family's, in the same two parts.
    """
    if a.runs.empty:
        return [Finding("no_runs", "No runs in this study yet: nothing to report.")]
    done = [c for c in a.configs if c.n > 0 and np.isfinite(c.test_acc.mean)]
    if not done:
        return [Finding("no_completed", "No completed runs: nothing to report."), *_failures(a)]
    out: list[Finding] = []
    out += _answer(a)
    out += _headline(a, done)
    out += _decided(a) if a.decisions() else _holm_decided(a, done)
    out += _undecided(a) if a.decisions() else _holm_undecided(a, done)
    out += _factor_best(a)
    out += _basis(a, done)
    out += _failures(a)
    out += _no_spread(a)
    out += _left_out(a)
    out += _best(a, done)
    out += _placement(a)
    out += _interaction(a)
    out += _factor_effects(a)
    out += _factor_interactions(a)
    out += _gap_trend(a)
    out += _mc_dropout(a)
    out += _train_below_test(a, done)
    out += _rate_peak(a)
    out += _runner_up(a, done)
    return out


def _base(a: Analysis, d) -> str:
    """How the report names what decision ``d`` compares with: the baseline, or its stratum's
    configuration without dropout (``model=cnn without dropout``)."""
    if a.decision is not None or not d.comparisons:
        return a.baseline_name or a.label(a.baseline)
    return a.baseline_of(d.comparisons[0])


def _verdict_counts(d) -> dict[str, int]:
    return {
        v: sum(c.verdict == v for c in d.comparisons) for v in ("better", "worse", "equivalent", "undecided")
    }


def _answer(a: Analysis) -> list[Finding]:
    """The report's opening: which configuration to choose, by which rule, how sure that is
    (the could-be-best set), and the four verdicts against the baseline (``report/decide.py``);
    with no single baseline, the same per stratum in one sentence (``_strata_answer``)."""
    d = a.decision
    if d is None:
        return _strata_answer(a)
    if d.choice is None:
        return []
    counts = _verdict_counts(d)
    said = [f"{n} {v}" for v, n in counts.items() if n]
    best = [a.label(c) for c in d.could_be_best]
    confidence = level(1 - d.design.alpha)
    text = (
        f"Choose {a.label(d.choice)}: {d.rule}. Could be the best on test accuracy ({confidence} confidence, "
        f"{seeds_text(d.look)} per configuration): {and_list(best)}. Against {_base(a, d)}: "
        f"{', '.join(said)} (equivalent: within ±{100 * d.design.min_effect:.1f} pp)."
    )
    if not counts["undecided"] and not d.done:
        text += f" Seeds are still to be added ({d.reason})."
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


_PROVISIONAL = " (provisional: none is yet shown within min_effect of the best)"


def _strata_answer(a: Analysis) -> list[Finding]:
    """With no single baseline: per stratum (the same other settings, with and without dropout)
    the choice, its verdicts and the could-be-best set, in one sentence; each stratum's
    decision at ``alpha / S``, so the ``S`` strata hold together at ``1 - alpha``."""
    decisions = [d for d in a.strata_decisions.values() if d.choice is not None]
    if not decisions:
        return []

    def short(config: str) -> str:  # within a stratum only the dropout settings differ
        params = a.config(config).params
        return ", ".join(setting(p, params.get(p)) for p in a.varied if p.startswith("dropout.")) or a.label(
            config
        )

    parts, counts = [], dict.fromkeys(("better", "worse", "equivalent", "undecided"), 0)
    for d in decisions:
        params = a.config(d.design.baseline).params
        stratum = ", ".join(setting(p, params.get(p)) for p in a.varied if not p.startswith("dropout."))
        mine = _verdict_counts(d)
        counts = {v: counts[v] + n for v, n in mine.items()}
        said = ", ".join(f"{n} {v}" for v, n in mine.items() if n)
        provisional = ", provisional" if d.rule.endswith(_PROVISIONAL) else ""
        parts.append(
            f"{stratum}: choose {short(d.choice)}{provisional} ({said}; could be best: "
            f"{and_list([short(c) for c in d.could_be_best])})"
        )
    first = decisions[0]
    rules = list(dict.fromkeys(d.rule.removesuffix(_PROVISIONAL) for d in decisions))
    provisional = any(d.rule.endswith(_PROVISIONAL) for d in decisions)
    text = (
        f"Per stratum, each against its own settings without dropout ({seeds_text(first.look)} per configuration; "
        f"{level(1 - first.design.alpha)} confidence each, the {len(a.strata_decisions)} strata together at "
        f"{level(1 - a.alpha)}): {'; '.join(parts)}. Each choice is {' or '.join(rules)}"
        + ("; provisional where none is yet shown within min_effect of the best." if provisional else ".")
    )
    numbers = {"choices": {d.design.baseline: d.choice for d in decisions}, "seeds": first.look,
               "alpha": first.design.alpha, "confidence": 1 - first.design.alpha, "family_alpha": a.alpha,
               "family_confidence": 1 - a.alpha, "strata": len(a.strata_decisions),
               "min_effect": first.design.min_effect, **counts}  # fmt: skip
    configs = tuple(dict.fromkeys(c for d in decisions for c in (d.choice, *d.could_be_best)))
    return [Finding("choice", text, configs, numbers, claim=bool(counts["better"] + counts["worse"]))]


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
    return out


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
    """Seeds left out of a pairing because a run failed or diverged. Seeds the other side never
    ran are said only outside a study run until decided, where they are the design's doing."""
    ran = a.runs.groupby("config")["seed"].agg(lambda x: set(x.tolist())) if "seed" in a.runs else {}
    out = []
    for c in a.comparisons:
        if c.test != "paired t" or not c.seeds_left_out:
            continue
        both = ran.get(c.config, set()) & ran.get(c.baseline, set())
        failed = [s for s in c.seeds_left_out if s in both]
        unrun = [] if a.looks else [s for s in c.seeds_left_out if s not in both]
        parts = []
        for seeds, why in (
            (failed, "completed by only one of the two"),
            (unrun, "run by only one of the two"),
        ):
            if seeds:
                word = "seed" if len(seeds) == 1 else "seeds"
                parts.append(f"{word} {', '.join(str(s) for s in sorted(seeds, key=str))} left out ({why})")
        if parts:
            text = f"{a.label(c.config)} vs {a.baseline_of(c)}: paired on the {c.n} seeds both completed; {'; '.join(parts)}."
            numbers = {"n": c.n, "seeds_left_out": list(c.seeds_left_out)}
            out.append(Finding("seeds_left_out", text, (c.config, c.baseline), numbers))
    return out


def _best_config(done):
    return max(done, key=lambda c: c.test_acc.mean)


def _best(a: Analysis, done) -> list[Finding]:
    """The highest mean test accuracy. Against the baseline it repeats no verdict: it points to
    the decision's (or, without one, the Holm family's), so it never says less than they do."""
    best = _best_config(done)
    text_level = accuracy_level(best.test_acc, a.confidence, "test accuracy")
    numbers = _interval_numbers("test_acc", best.test_acc)
    if a.baseline is None:
        what = "Mean test accuracy" if len(a.configs) == 1 else "Highest mean test accuracy"
        return [Finding("best", f"{what}: {a.label(best.config)} at {text_level}.", (best.config,), numbers)]
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
    verdict = _verdict(a, best.config)
    numbers["verdict"] = verdict
    head = f"Highest mean test accuracy: {a.label(best.config)} at {text_level}"
    if verdict == "worse":
        text = (
            f"{head}; yet on the seeds both completed it is worse than {a.baseline_name} (above): its higher "
            "mean comes from seeds the baseline did not complete, so compare them on the paired seeds."
        )
    elif verdict == "untestable":
        text = f"{head}; against {a.baseline_name} it cannot be tested yet (above)."
    else:
        text = f"{head}; against {a.baseline_name} it is {verdict} (above)."
    return [Finding("best", text, (best.config, a.baseline), numbers)]


def _verdict(a: Analysis, config: str) -> str:
    """How ``config`` compares with the baseline: the decision's verdict, else the Holm family's
    (``better``, ``worse``, ``undecided``; ``untestable`` without an interval)."""
    if a.decisions():
        return a.verdicts().get(config, "undecided")
    c = a.comparison(config)
    if c is None or not np.isfinite(c.p_value):
        return "untestable"
    if c.significant:
        return "better" if c.diff > 0 else "worse"
    return "undecided"


# ----------------------------------------------------------------------------------------
# Against the baseline: the decision's verdicts (report/decide.py)


def _decision_ci(c, confidence: float) -> str:
    """``"simultaneous 95% CI -1.9 to -0.6 pp"``: the decision's running interval, simultaneous
    over every comparison and every look."""
    return ci_pp(c.low, c.high, confidence)


def _decided(a: Analysis) -> list[Finding]:
    """One sentence per comparison a decision has decided: better, worse or equivalent, with
    its interval and the look it was decided at (each stratum's decision without a single baseline)."""
    out = []
    for d in a.decisions():
        confidence, base = 1 - d.design.alpha, _base(a, d)
        for c in d.comparisons:
            if c.verdict == "undecided":
                continue
            at = f"decided at {seeds_text(c.decided_at)} per configuration"
            if c.verdict == "equivalent":
                verdict = f"is equivalent to {base} (within \u00b1{100 * d.design.min_effect:.1f} pp)"
            else:
                verdict = f"is {c.verdict} than {base}"
            text = (
                f"{a.label(c.config)} {verdict}: {pp(c.diff)} over {c.n} paired seeds "
                f"({_decision_ci(c, confidence)}, {at})."
            )
            numbers = {"verdict": c.verdict, "diff": c.diff, "ci_low": c.low, "ci_high": c.high, "n": c.n,
                       "decided_at": c.decided_at, "alpha": d.design.alpha, "confidence": confidence,
                       "min_effect": d.design.min_effect}  # fmt: skip
            out.append(Finding(c.verdict, text, (c.config, c.baseline), numbers, claim=True))
    return out


def _undecided(a: Analysis) -> list[Finding]:
    """The comparisons the decisions have not decided, in one sentence with what would decide them."""
    decisions = a.decisions()
    pending = [(d, c) for d in decisions for c in d.comparisons if c.verdict == "undecided"]
    if not pending:
        return []
    d = decisions[0]
    stratified = a.decision is None
    parts = [
        f"{a.label(c.config)}{' vs ' + _base(a, e) if stratified else ''} ({pp(c.diff)}, "
        f"{_decision_ci(c, 1 - e.design.alpha)})"
        if np.isfinite(c.low) and np.isfinite(c.high)
        else f"{a.label(c.config)} (no interval yet: fewer than 2 paired seeds, or no spread)"
        for e, c in pending
    ]
    total = sum(len(e.comparisons) for e in decisions)
    which = "Undecided" if len(pending) < total else "All undecided"
    they = "It" if len(pending) == 1 else "They"
    against = "the same settings without dropout" if stratified else _base(a, d)
    text = (
        f"{which} against {against} at {seeds_text(d.look)} per configuration, neither shown different nor "
        f"within \u00b1{100 * d.design.min_effect:.1f} pp: {'; '.join(parts)}. "
    )
    numbers = {"undecided": [c.config for _, c in pending], "diff": [c.diff for _, c in pending],
               "ci_low": [c.low for _, c in pending], "ci_high": [c.high for _, c in pending],
               "n": [c.n for _, c in pending], "seeds": d.look, "alpha": d.design.alpha,
               "confidence": 1 - d.design.alpha,
               "min_effect": d.design.min_effect, "max_seeds": d.design.max_seeds}  # fmt: skip
    later = [g for g in d.design.grid() if g > d.look]
    if a.looks and later and not d.done:
        text += (
            f"The next look, at {seeds_text(later[0])} of at most {d.design.max_seeds}, adds seeds to them "
            "and to the baseline: run the same `--until-decided` command again."
        )
        numbers["next_look"] = later[0]
    else:
        plan = _plan(a, d, [c for _, c in pending], new_study=bool(a.looks), fixed=stratified)
        numbers.update(plan)
        text += _plan_text(a, d, plan, new_study=bool(a.looks), they=they, fixed=stratified)
    return [Finding("undecided", text, tuple(c.config for _, c in pending), numbers)]


def _plan(a: Analysis, d, pending, new_study: bool, fixed: bool = False) -> dict:
    """The most seeds a sequential design needs to decide ``pending`` comparisons of decision
    ``d``: the spread of their paired differences pooled, its ``PLANNING_CONFIDENCE`` upper
    confidence bound, and ``recommend_max_seeds`` at that bound (``docs/report.md``, "The
    findings"); with ``fixed`` (strata, which ``--until-decided`` cannot run), the seeds of a
    new study of one look."""
    from dropoutlab.report.decide import DEFAULT_STEP, recommend_max_seeds

    rows = [a.comparison(c.config) for c in pending]
    rows = [r for r in rows if r is not None and np.isfinite(r.sd) and r.sd > 0 and r.test == "paired t"]
    df = sum(r.n - 1 for r in rows)
    sd = math.sqrt(sum((r.n - 1) * r.sd**2 for r in rows) / df) if df > 0 else math.nan
    bound = sd_upper_bound(sd, df)
    start = 3 if new_study or fixed else d.design.start
    plan = {"sd": sd, "sd_df": df, "sd_bound": bound, "planning_confidence": PLANNING_CONFIDENCE,
            "start": start, "step": DEFAULT_STEP, "max_seeds_advised": math.nan}  # fmt: skip
    if np.isfinite(bound):
        m = len(d.comparisons)
        advised = recommend_max_seeds(
            bound, d.design.min_effect, d.design.alpha, m, start, DEFAULT_STEP, sequential=not fixed
        )
        plan["max_seeds_advised"] = (
            advised if math.isinf(advised) or fixed else max(int(advised), start + DEFAULT_STEP)
        )
    return plan


def _plan_text(a: Analysis, d, plan: dict, new_study: bool, they: str = "They", fixed: bool = False) -> str:
    sd, bound, advised = plan["sd"], plan["sd_bound"], plan["max_seeds_advised"]
    them = "it" if they == "It" else "them"
    if fixed:
        lead = (
            f"More seeds decide {them}, in a new study (a new name, new seeds; `--until-decided` needs a single "
            "baseline, and looking again at these seeds would spend the error rate twice)"
        )
        how = "give it `seeds ="
    elif new_study:
        lead = (
            f"{they} stayed so at the design's most seeds ({d.design.max_seeds}); deciding {them} needs a new study "
            "with new seeds, or a larger min_effect"
        )
        how = "run `--until-decided` with `--max-seeds"
    else:
        lead = (
            f"More seeds decide {them}: `dropoutlab run STUDY.toml --until-decided` adds seeds only where they "
            "still matter, looks after each step and keeps the error rates"
        )
        how = "give it `--max-seeds"
    if not np.isfinite(bound):
        return f"{lead}."
    spread = (
        f"planned with the {level(PLANNING_CONFIDENCE)} upper confidence bound of the paired spread, "
        f"{100 * bound:.1f} pp, not the {100 * sd:.1f} pp these seeds happened to show, pooled over "
        f"{plan['sd_df']} degrees of freedom"
    )
    if math.isinf(advised):
        return f"{lead}; at that spread ({spread}) even 2000 seeds would not suffice: choose a larger min_effect."
    most = "the seeds" if fixed else "the most seeds"
    return (
        f"{lead}; {how} {int(advised)}`, {most} that call a comparison with no true difference "
        f"equivalent in 80% of studies ({spread})."
    )


# ----------------------------------------------------------------------------------------
# Against the baseline without a decision (no single baseline): the Holm family


def _holm_decided(a: Analysis, done) -> list[Finding]:
    """Without a decision: each comparison the Holm family rejects, printed with the interval at
    the level of its Holm step (which excludes 0, as the claim does)."""
    out = []
    for c in a.comparisons:
        if not c.significant:
            continue
        base = a.baseline_of(c)
        word = "higher" if c.diff > 0 else "lower"
        text = f"{a.label(c.config)} has {word} test accuracy than {base}: {_vs(c, base, a.confidence)}."
        out.append(
            Finding(
                _verdict(a, c.config),
                text,
                (c.config, c.baseline),
                _comparison_numbers(c, a.confidence),
                claim=True,
            )
        )
    return out


def _holm_undecided(a: Analysis, done) -> list[Finding]:
    """Without a decision: the comparisons the Holm family does not reject, in one sentence with
    the seeds a difference of ``min_effect`` would need (planned with the upper bound of the
    spread); those that cannot be tested, one sentence each."""
    out, pending = [], []
    for c in a.comparisons:
        if c.significant:
            continue
        n = min(c.n, c.n_baseline)
        head = f"{a.label(c.config)}: {pp(c.diff)} vs {a.baseline_of(c)}"
        if np.isfinite(c.p_value):
            pending.append(c)
        elif n < 2:
            text = f"{head} with {seeds_text(n)}: cannot be tested; run at least 2 seeds (3 or more for a useful interval)."
            out.append(
                Finding("untestable", text, (c.config, c.baseline), _comparison_numbers(c, a.confidence))
            )
        elif np.isfinite(c.diff):
            text = f"{head}: identical across seeds, no spread to test against."
            out.append(
                Finding("untestable", text, (c.config, c.baseline), _comparison_numbers(c, a.confidence))
            )
    if not pending:
        return out
    parts = [
        f"{a.label(c.config)} vs {a.baseline_of(c)} ({pp(c.diff)}, {ci_pp(c.ci_low, c.ci_high, a.confidence)}, "
        f"{p_text(c.p_adjusted, 'Holm p')})"
        for c in pending
    ]
    worst = max(pending, key=lambda c: c.seeds_needed if not np.isnan(c.seeds_needed) else -1)
    n = min(min(c.n, c.n_baseline) for c in pending)
    text = (
        f"Undecided, no difference shown at the corrected level with {_seed_phrase(done)}: {'; '.join(parts)}"
        f"{_needed_text(a, worst.seeds_needed, n, bound=worst.sd_bound)}"
    )
    numbers = {"undecided": [c.config for c in pending], "diff": [c.diff for c in pending],
               "ci_low": [c.ci_low for c in pending], "ci_high": [c.ci_high for c in pending],
               "p_adjusted": [c.p_adjusted for c in pending], **_needed_numbers(a, worst)}  # fmt: skip
    return [Finding("undecided", text, tuple(c.config for c in pending), numbers), *out]


def _needed_numbers(a: Analysis, c: TestResult) -> dict:
    return {"min_effect": a.min_effect, "power": a.power, "alpha": a.alpha, "family_size": a.family_size,
            "level": a.alpha / max(a.family_size, 1), "seeds_needed": c.seeds_needed,
            "seeds_limit": SEEDS_SEARCH_LIMIT, "sd": c.sd, "sd_bound": c.sd_bound,
            "planning_confidence": PLANNING_CONFIDENCE}  # fmt: skip


def _needed_text(
    a: Analysis, needed: float, n: int, what: str = "a difference", bound: float = math.nan
) -> str:
    """``"; a difference of 1.0 pp with 80% power ... would take about 12 seeds per configuration
    (planned with the 80% upper confidence bound of the spread, 0.9 pp)."``"""
    target = f"{what} of {pp(a.min_effect).lstrip('+')} with {a.power:.0%} power at the corrected level"
    planned = (
        f" (planned with the {level(PLANNING_CONFIDENCE)} upper confidence bound of the spread, {100 * bound:.1f} pp)"
        if np.isfinite(bound)
        else ""
    )
    if math.isinf(needed):
        return f"; {target} would take more than {SEEDS_SEARCH_LIMIT} seeds per configuration{planned}."
    if not np.isfinite(needed):
        return "."
    if needed <= n:
        return f"; these seeds already give {target}{planned}, so {what} that large would likely have shown."
    return f"; {target} would take about {int(needed)} seeds per configuration{planned}."


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


def _placement_interval(a: Analysis, config: str) -> tuple[float, float, str]:
    """``(low, high, words)`` of the interval a placement part quotes: the decision's, else the
    one the Holm family prints (``_ci``)."""
    if a.decision is not None:
        c = next(x for x in a.decision.comparisons if x.config == config)
        return c.low, c.high, _decision_ci(c, 1 - a.decision.design.alpha)
    c = a.comparison(config)
    if c.significant:
        return c.ci_low_step, c.ci_high_step, _ci(c, a.confidence)
    return c.ci_low, c.ci_high, _ci(c, a.confidence)


def _placement(a: Analysis) -> list[Finding]:
    ranked = _placement_best(a)
    if ranked is None:
        return []
    parts, numbers = [], {}
    for _, slot, label in ranked:
        c = a.comparison(label)
        low, high, words = _placement_interval(a, label)
        parts.append(
            f"{_slot(slot)} at best {pp(c.diff)} with {a.label(label)} ({words}, {_verdict(a, label)})"
        )
        numbers[f"{slot}_diff"] = c.diff
        numbers[f"{slot}_ci_low"] = low
        numbers[f"{slot}_ci_high"] = high
    by_slot = _one_at_a_time(a)
    helped = [slot for slot, labels in by_slot.items() if any(_verdict(a, x) == "better" for x in labels)]
    hurt_or_not = [slot for slot in by_slot if slot not in helped]
    if not helped:
        lead = f"no single-slot dropout setting is shown better than {a.baseline_name}"
    else:
        lead = f"dropout in {' and '.join(map(_slot, helped))} is better than {a.baseline_name}"
        if hurt_or_not:
            lead += f"; in {' and '.join(map(_slot, hurt_or_not))} it is not shown better"
    configs = tuple(label for _, _, label in ranked)
    return [
        Finding("placement", f"Placement: {lead} ({'; '.join(parts)}).", configs, numbers, claim=bool(helped))
    ]


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
               "p_adjusted": r.p_adjusted, "partial_eta_sq": r.partial_eta_sq, "left_out": list(r.left_out)}  # fmt: skip
    if r.left_out:
        figure += (
            f"; over the {len(r.levels[0])} x {len(r.levels[1])} cells the study file crosses: "
            f"{and_list([a.label(c) for c in r.left_out])} {'is' if len(r.left_out) == 1 else 'are'} not among them"
        )
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
    change = f"a change of {pp(c.diff)} ({_ci(c, a.confidence)}"
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
               "high_gap": g.high_gap, **_comparison_numbers(c, a.confidence)}  # fmt: skip
    return [Finding("gap_trend", text, (g.low_config, g.high_config), numbers, claim=claim)]


def _rate(value: float) -> str:
    """A rate in two decimals, as the sweep's own values are written when it is one (``0.3``)."""
    return f"{value:g}" if abs(value - round(value, 2)) < 1e-9 else f"{value:.2f}"


def _rate_peak(a: Analysis) -> list[Finding]:
    """Exploratory: the rate at which a quadratic fitted to mean test accuracy peaks, with its
    bootstrap interval over seeds; at an end of the swept range it says so and goes no further."""
    r = a.rate_peak
    if r is None:
        return []
    fixed = a.config(r.configs[0]).params
    others = [setting(p, fixed.get(p)) for p in a.varied if p != r.key]
    where = f" at {', '.join(others)}" if others else ""
    curve = "a quadratic in the rate" if r.scale == "rate" else "a quadratic in the square root of the rate"
    interval = f"{level(r.confidence)} bootstrap interval over seeds {_rate(r.ci_low)} to {_rate(r.ci_high)}"
    if r.edge == "high":
        peak = (
            f"is highest at or beyond the largest rate tried, {r.key} = {_rate(r.rates[-1])}: the sweep does not "
            "show where accuracy peaks; try larger rates to find it"
        )
    elif r.edge == "low":
        peak = (
            f"is highest at or below the smallest rate tried, {r.key} = {_rate(r.rates[0])}: accuracy falls "
            "from there along the rates tried"
        )
    else:
        peak = f"peaks at {r.key} = {_rate(r.peak)}"
    text = (
        f"Exploratory (a curve fitted to these same results; nothing is tested, not a claim): along {r.key}"
        f"{where}, {curve} fitted to mean test accuracy at {len(r.rates)} rates {peak} (fitted "
        f"{pct(r.fitted)}; {interval}, {r.resamples} resamples)."
    )
    numbers = {"exploratory": True, "key": r.key, "scale": r.scale, "peak": r.peak, "fitted": r.fitted,
               "ci_low": r.ci_low, "ci_high": r.ci_high, "edge": r.edge, "confidence": r.confidence,
               "resamples": r.resamples, "seed": r.seed, "rates": list(r.rates), "means": list(r.means),
               "n": list(r.n), "rate_count": len(r.rates)}  # fmt: skip
    return [Finding("rate_peak", text, r.configs, numbers, exploratory=True)]


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
        nll_low, nll_high, nll_level = (
            (nll.ci_low_step, nll.ci_high_step, f"{level(1 - (1 - a.confidence) / max(int(nll.holm_step), 1))} CI at its Holm step")
            if nll.significant else (nll.ci_low, nll.ci_high, f"simultaneous {level(a.confidence)} CI")
        )  # fmt: skip
        nll_ci = (
            f"{nll_level} {nats(nll_low, unit=False)} to {nats(nll_high)}"
            if np.isfinite(nll_low)
            else "no interval"
        )
        text = (
            f"{a.label(config)}: averaging {t} Monte Carlo dropout passes gives a test accuracy of "
            f"{pct(at_t.mean)} against {pct(at_0.mean)} for the usual deterministic pass, {pp(acc.diff)} "
            f"({_ci(acc, a.confidence)}, {acc_words}); the negative log-likelihood "
            f"changes by {nats(nll.diff)} ({nll_ci}, {nll_words})."
        )
        numbers = {"samples": t, "acc_mc": at_t.mean, "acc_deterministic": at_0.mean,
                   **{f"acc_{k}": v for k, v in _comparison_numbers(acc, a.confidence).items()},
                   **{f"nll_{k}": v for k, v in _comparison_numbers(nll, a.confidence).items()}}  # fmt: skip
        out.append(Finding("mc_dropout", text, (config,), numbers, claim=acc_claim or nll_claim))
    return out


# ----------------------------------------------------------------------------------------
# Grids of three or more parameters: effects averaged over the others, two-way interactions


def _averaged(others: list[str]) -> str:
    return f"Averaged over {and_list(others)}, " if others else ""


def _seed_test(c: TestResult, confidence: float, note: str = "") -> str:
    """``(simultaneous 95% CI +1.1 to +2.9 pp, paired t over 5 seeds, Holm p = 0.003)``."""
    return f"({_ci(c, confidence)}, paired t over {seeds_text(c.n)}, {p_text(c.p_adjusted, 'Holm p')}{note})"


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
    return {**_numbers(c, "effect_size", "seeds_left_out", confidence=a.confidence), **_needed_numbers(a, c)}


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
                f"with {seeds_text(e.n)}{_needed_text(a, e.seeds_needed, e.n, bound=e.sd_bound)}"
            )
        numbers = {**_contrast_numbers(a, e), "factor": e.factor, "level": e.level, "reference": e.reference}
        moderators = [
            _other(i, e.factor) for i in fx.interactions if i.significant and e.factor in (i.factor, i.by)
        ]
        if moderators:
            text += f" This is an average: the effect of {e.factor} depends on {and_list(list(dict.fromkeys(moderators)))} (below)."
        out.append(Finding("factor_effect", text + _left_out_text(e), (), numbers, claim=e.significant))
    return out


def _mean(value: float) -> float:
    return value if np.isfinite(value) else -math.inf


def _factor_best(a: Analysis) -> list[Finding]:
    """Per multi-level categorical parameter (kind, model): which of its values could be the
    best, compared with each other (Hsu's MCB through ``decide``), in one sentence."""
    out = []
    together = len(a.factor_best)
    for fb in a.factor_best:
        d = fb.decision
        name = {c: value_text(fb.value(c)) for c in d.means}
        over = [
            f"{o} {and_list([value_text(v) for v in vals])}" for o, vals in fb.over.items() if len(vals) > 1
        ]
        fixed = [setting(o, vals[0]) for o, vals in fb.over.items() if len(vals) == 1]
        where = (f"each value averaged per seed over {and_list(over)}" if over else "") + (
            ("; " if over else "") + f"at {', '.join(fixed)}" if fixed else ""
        )
        top = max(d.means, key=lambda c: _mean(d.means[c]))
        shared = f", {together} such sets together at {level(1 - a.alpha)}" if together > 1 else ""
        head = (
            f"Which {fb.factor}: of its {len(fb.levels)} values compared with each other on test accuracy"
            f"{' (' + where + ')' if where else ''}, over {seeds_text(len(fb.seeds))}, could be the best at "
            f"{level(1 - d.design.alpha)} confidence (Hsu's multiple comparisons with the best{shared}): "
            f"{and_list([name[c] for c in sorted(d.could_be_best, key=lambda c: -_mean(d.means[c]))])}"
        )
        parts = [head]
        worse = [
            f"{name[c]} (by at least {pp(w).lstrip('+')})" if w > 0 else name[c]
            for c, w in d.worse_than_best.items()
        ]
        if worse:
            parts.append(f"worse than the best: {and_list(worse)}")
        if d.within_min_effect:
            parts.append(
                f"within ±{100 * d.design.min_effect:.1f} pp of the best: "
                f"{and_list([name[c] for c in d.within_min_effect])}"
            )
        parts.append(f"highest mean: {name[top]} ({pct(d.means[top])})")
        numbers = {"factor": fb.factor, "levels": list(fb.levels), "level_count": len(fb.levels),
                   "could_be_best": [fb.value(c) for c in d.could_be_best],
                   "worse_than_best": {str(fb.value(c)): w for c, w in d.worse_than_best.items()},
                   "worse_by": list(d.worse_than_best.values()),
                   "within_min_effect": [fb.value(c) for c in d.within_min_effect],
                   "means": {str(fb.value(c)): m for c, m in d.means.items()}, "highest_mean": d.means[top],
                   "over": {o: list(v) for o, v in fb.over.items()}, "over_values": [v for vals in fb.over.values() for v in vals],
                   "seeds": len(fb.seeds), "alpha": d.design.alpha, "confidence": 1 - d.design.alpha,
                   "family_confidence": 1 - a.alpha, "sets": together,
                   "min_effect": d.design.min_effect}  # fmt: skip
        claim = bool(d.worse_than_best or d.within_min_effect)
        out.append(Finding("factor_best", "; ".join(parts) + ".", fb.configs, numbers, claim=claim))
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
            f"{_seed_test(r, a.confidence, largest)}{_needed_text(a, r.seeds_needed, r.n, 'an interaction', r.sd_bound)[:-1]}. "
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
    return _grouped_noise(a, out)


_NOISE = "this is dropout noise, not underfitting."


def _grouped_noise(a: Analysis, found: list[Finding]) -> list[Finding]:
    """Two or more configurations where dropout noise alone puts running train accuracy below
    test accuracy: one sentence for all of them, in place of the first."""
    noise = [f for f in found if f.text.endswith(_NOISE)]
    if len(noise) < 2:
        return found
    parts = [
        f"{a.label(f.configs[0])} ({pct(f.numbers['train_acc'])} vs {pct(f.numbers['test_acc'])}, "
        f"{ci_pp(f.numbers['ci_low'], f.numbers['ci_high'], a.confidence, 'unadjusted')}; "
        f"eval mode {pct(f.numbers['train_eval_acc'])})"
        for f in noise
    ]
    text = (
        "Mean train accuracy measured with dropout on is below mean test accuracy, but eval-mode train "
        f"accuracy is above it, at {and_list(parts)}: {_NOISE}"
    )
    numbers = {f"{f.configs[0]}: {k}": v for f in noise for k, v in f.numbers.items()}
    merged = Finding("train_below_test", text, tuple(f.configs[0] for f in noise), numbers)
    first = found.index(noise[0])
    rest = [f for f in found if f not in noise]
    return [*rest[:first], merged, *rest[first:]]


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
