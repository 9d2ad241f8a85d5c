"""The report's sections, built from an ``Analysis``: paragraphs, figures and tables to render.

Each section only shows what the ``Analysis`` holds, and only where it applies; its figures
are the analysis' ``FigurePlan``s drawn by ``plots.draw``. A section that applies to the
study but cannot be computed says so in one line with the reason (``Analysis.unavailable``,
or a figure whose data refuses it: a ``DropoutlabError``); anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import math
from collections import Counter

import pandas as pd

from dropoutlab.errors import DropoutlabError
from dropoutlab.report import plots
from dropoutlab.report.decide import VERDICTS as VERDICT_WORDS
from dropoutlab.report.html import Section
from dropoutlab.report.model import NOT_RECORDED, Analysis
from dropoutlab.report.stats import PLANNING_CONFIDENCE, SEEDS_SEARCH_LIMIT, sorted_levels
from dropoutlab.report.text import and_list, level, p_text, pp, setting, value_text
from dropoutlab.runs import MC_METRICS

#: The columns of the summary table: ``Analysis.summary``'s name -> the name shown.
SUMMARY_COLUMNS = {
    "n": "seeds", "test_acc_mean": "test acc", "test_acc_ci_low": "test acc ci_low",
    "test_acc_ci_high": "test acc ci_high", "test_acc_min": "test acc lowest", "test_acc_max": "test acc highest",
    "val_acc_mean": "val acc", "train_acc_mean": "train acc (dropout on)",
    "train_eval_acc_mean": "train acc (eval mode)", "gap_acc_mean": "gap (train \u2212 test)",
    "best_epoch_mean": "best epoch",
}  # fmt: skip

#: The summary's columns shown in its second, folded table.
SUMMARY_DETAILS = ("test acc lowest", "test acc highest", "train acc (dropout on)", "train acc (eval mode)",
                   "best epoch")  # fmt: skip

INTERVAL_WORDS = {
    "logit t": "t on the logit scale",
    "t": "t",
    "range": "none: fewer than 3 seeds",
    "same": "none: all seeds gave the same accuracy (by chance on a small test set, or seeds without effect)",
    "boundary": "none: a seed at exactly 0% or 100%",
    "none": "none: no completed run",
}


def unavailable_line(what: str, reason: str) -> str:
    """The one line a section shows when it cannot be computed."""
    return f"{what} could not be computed: {reason}."


def report_sections(analysis: Analysis) -> list[Section]:
    """The report's sections, in order: summary, comparisons, the looks of a study run until
    decided, rate sweep, grid (two parameters), the effect of each parameter (three or more),
    Monte Carlo dropout, curves, methods."""
    a = analysis
    if not a.completed:
        return [_summary(a), _methods(a)]  # nothing finished: no comparison and no figure to draw
    sections = [_summary(a), _comparisons(a)]
    if a.looks:
        sections.append(_looks(a))
    if a.rate_key is not None:
        sections.append(_rate(a))
    if a.grid is not None:
        sections.append(_grid(a))
    if a.factors is not None or "factors" in a.unavailable:
        sections.append(_factors(a))
    if a.mc is not None:
        sections.append(_mc_dropout(a))
    if not a.learned_rates.empty:
        sections.append(_learned_rates(a))
    sections.append(_curves(a))
    sections.append(_methods(a))
    return [s for s in sections if s is not None]


def _figures(a: Analysis, kinds: tuple[str, ...]) -> tuple[list, list[str]]:
    figures, notes = [], []
    for plan in a.figures:
        if plan.kind not in kinds:
            continue
        try:
            figures.append((plan.title, plots.draw(a, plan), plan.alt, plan.name))
        except DropoutlabError as error:
            notes.append(unavailable_line(f"The figure {plan.title!r}", str(error)))
    return figures, notes


def _with_labels(a: Analysis, frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    if "config" in frame:
        frame["config"] = frame["config"].map(lambda c: a.label(str(c)))
    return frame


# ----------------------------------------------------------------------------------------


def _summary(a: Analysis) -> Section:
    if a.summary.empty:
        return Section("Summary over seeds", ["No runs in this study yet."])
    shown = a.summary[["config", *SUMMARY_COLUMNS]].rename(columns=SUMMARY_COLUMNS)
    shown = _with_labels(a, shown.dropna(axis=1, how="all"))
    shown.attrs["units"] = {"gap (train \u2212 test)": "pp"}
    if a.decision is not None:
        shown.insert(2, "could be best", [str(c) in a.decision.could_be_best for c in a.summary["config"]])
    main = shown[[c for c in shown.columns if c not in SUMMARY_DETAILS]]
    details = shown[["config", *(c for c in SUMMARY_DETAILS if c in shown.columns)]]
    methods = a.summary["test_acc_interval"].tolist()
    if any(m != "logit t" for m in methods):
        details = details.assign(**{"test acc interval": [INTERVAL_WORDS.get(m, m) for m in methods]})
    details.attrs["details"] = True
    text = (
        f"Final accuracies per configuration: mean over the completed seeds with a {level(a.confidence)} "
        "confidence interval for test accuracy, a Student t interval on the logit scale, which stays "
        "between 0% and 100%. Below 3 seeds there is no interval, only the lowest and highest seed. "
        "Train accuracy 'dropout on' is the running accuracy during the epoch; 'eval mode' is "
        "measured afterwards with dropout off."
        + (
            f" 'could be best': the configurations that could have the highest true test accuracy at "
            f"{level(1 - a.decision.design.alpha)} (the decision, docs/report.md)."
            if a.decision is not None
            else ""
        )
    )
    tables = [("Per configuration", main)]
    if len(details.columns) > 1:
        tables.append(("More per configuration: range of seeds, train accuracy, best epoch", details))
    return Section("Summary over seeds", [text], tables=tables)


def _comparisons(a: Analysis) -> Section:
    title = "Compared with the same settings without dropout" if a.strata else "Compared with the baseline"
    if "comparisons" in a.unavailable:
        return Section(
            title, [unavailable_line("The comparison with a baseline", a.unavailable["comparisons"])]
        )
    if not a.comparisons:
        return Section(
            title, [f"Only the baseline ({a.baseline_name}) has been run: nothing to compare it with."]
        )
    verdicts = a.verdicts()  # the study's decision, or each stratum's
    leads = [{"config": a.label(c.config), **({"baseline": a.baseline_of(c)} if a.strata else {}),
              **({"verdict": verdicts.get(c.config, "")} if verdicts else {})} for c in a.comparisons]  # fmt: skip
    table, details = _split_tests(a, leads, [{"config": a.label(c.config)} for c in a.comparisons], a.comparisons,
                                  main=_MAIN_TESTS[1:])  # fmt: skip
    m = a.family_size
    members = "each configuration against " + ("its own baseline" if a.strata else "the baseline")
    if a.interaction is not None:
        members += ", the interaction test"
    if a.factors is not None:
        members += ", the effect of each parameter and their two-way interactions"
    if a.gap_trend is not None:
        members += ", the gap trend along the rate"
    if a.mc is not None and a.mc.contrasts:
        members += ", Monte Carlo dropout against the deterministic pass"
    against = (
        "the configuration with the same other settings and no dropout (column 'baseline')"
        if a.strata
        else f"the baseline ({a.baseline_name})"
    )
    text = [
        f"Test accuracy of each configuration minus {against}, in percentage points. "
        f"Every claim of a difference outside the decision comes from one family of {m} tests ({members}), "
        f"adjusted together with Holm's method at alpha = {a.alpha:g}: 'significant' means a Holm-adjusted "
        f"p below {a.alpha:g}. Paired t-tests on the seeds both configurations completed; Welch's t-test "
        "when they share fewer than two seeds.",
        f"The intervals are simultaneous {level(a.confidence)} intervals over the family (Bonferroni: each "
        f"at {level(1 - (1 - a.confidence) / max(m, 1))}), so together they cover every true difference "
        f"with probability {level(a.confidence)}"
        + (
            "; an interval that excludes 0 always goes with a significant test."
            if math.isclose(a.confidence, 1 - a.alpha)
            else f"; they are at a different level from the tests (alpha = {a.alpha:g}), so an interval "
            "and its test may disagree."
        )
        + " The unadjusted columns are each comparison's own interval.",
        f"'seeds needed': seeds per configuration for {a.power:.0%} power to detect a difference of "
        f"{pp(a.min_effect).lstrip('+')} (the smallest difference worth detecting, --min-effect) at "
        f"alpha / {m} = {a.alpha / max(m, 1):.3g}, the level Holm's method needs at its strictest step, "
        f"planned with the {PLANNING_CONFIDENCE:.0%} upper confidence bound of the seed-to-seed spread measured "
        "here (the spread of a few seeds is itself uncertain); \u221e means more than "
        f"{SEEDS_SEARCH_LIMIT}.",
    ]
    if verdicts and a.strata:
        design = next(iter(a.strata_decisions.values())).design
        text.append(
            "'verdict': each stratum's decision for each comparison against its own configuration without "
            f'dropout (docs/report.md, "The answer"): better or worse by more than 0, equivalent (the whole '
            f"difference within \u00b1{pp(design.min_effect).lstrip('+')}), or undecided, from one look at "
            f"these seeds, each of the {len(a.strata_decisions)} strata at alpha / {len(a.strata_decisions)}, "
            f"so every claim in all of them holds together at a family-wise error rate of {a.alpha:g}."
        )
    elif verdicts:
        d = a.decision
        text.append(
            "'verdict': the decision's word for each comparison (docs/report.md, \"The answer\"): better or "
            f"worse by more than 0, equivalent (the whole difference within \u00b1{pp(d.design.min_effect).lstrip('+')}"
            "), or undecided, from "
            + (
                f"the study's {len(a.looks)} look(s), run until decided"
                if a.looks
                else "one look at these seeds"
            )
            + f", at a family-wise error rate of {d.design.alpha:g} over every claim."
        )
    tables = [("Differences in test accuracy", table),
              ("Each comparison on its own: the test, unadjusted interval and p, effect size", details)]  # fmt: skip
    return Section(title, text, tables=tables)


LOOKS_TITLE = "Seeds added until decided"


def _looks(a: Analysis) -> Section:
    """The path of a study run ``--until-decided``: per look its seeds, runs spent and verdicts."""
    rows = []
    for look in a.looks:
        counts = Counter(c.get("verdict") for c in look.get("comparisons", ()))
        rows.append({"look": look.get("look"), "seeds per configuration": look.get("seeds"),
                     "runs so far": look.get("spent"), **{v: counts.get(v, 0) for v in VERDICT_WORDS},
                     "could be best": len(look.get("could_be_best", ())), "done": bool(look.get("done"))})  # fmt: skip
    table = pd.DataFrame(rows)
    table.attrs["units"] = {k: "int" for k in ("look", "seeds per configuration", "runs so far", *VERDICT_WORDS,
                                               "could be best")}  # fmt: skip
    last = a.looks[-1]
    design = last.get("design") or {}
    configs = len(last.get("seeds_run") or {}) or len(a.configs)
    text = [
        f"The study ran with --until-decided: a first look at {design.get('start')} seeds per configuration, "
        f"then {design.get('step')} more at each look, at most {design.get('max_seeds')}; seeds went only to "
        "the configurations that still mattered (undecided, the baseline and the candidates for best). "
        "Each look's verdicts count against the baseline; 'could be best' counts the configurations that "
        "could have the highest test accuracy."
    ]
    spent, planned = last.get("spent"), configs * (design.get("max_seeds") or 0)
    if spent is not None and planned:
        text.append(
            f"Runs spent: {spent}, against {planned} for a fixed design of {design.get('max_seeds')} seeds for "
            f"each of the {configs} configurations ({spent / planned:.0%}). "
            + ("Stopped: " + str(last.get("reason")) + "." if last.get("done") else
               f"Not done yet: {last.get('reason')}; the same command continues the design.")
        )  # fmt: skip
    return Section(LOOKS_TITLE, text, tables=[("Verdicts at each look", table)])


#: The most settings a sentence lists by name (as the rate figure's legend: 7 marker shapes).
MAX_LISTED = 7


def _rate_coverage(a: Analysis) -> str | None:
    """What the rate section's lines cover, when some configurations sit off them: the setting
    of the other parameters on the line, and those off it."""
    on = set(a.runs.loc[a.rate_on_line, "config"].astype(str)) if len(a.rate_on_line) else set()
    off = [c for c in a.configs if c.config not in on]
    if not off or not on:
        return None
    others = [p for p in a.varied if p != a.rate_key]

    def where(config: str) -> str:
        return ", ".join(setting(p, a.config(config).params.get(p)) for p in others)

    fixed = where(next(iter(on)))
    ways = list(dict.fromkeys(where(c.config) for c in off))
    if len(ways) > MAX_LISTED:  # the figure draws them as grey dots (plots.accuracy_vs_rate)
        return (f"The lines cover only the configurations at {fixed} ({len(on)} of {len(a.configs)}). The other "
                f"{len(off)}, at {len(ways)} other settings of {and_list(others)}, are the grey dots at their own "
                f"{a.rate_key}, and the rows with 'on the rate line' = no in the table.")  # fmt: skip
    listed = "; ".join(ways) if any("," in w for w in ways) else and_list(ways)
    if len(off) == 1:
        rest = (f"The other one, at {listed}, is the white marker at its own {a.rate_key}, and the row with "
                "'on the rate line' = no in the table.")  # fmt: skip
    else:
        rest = (f"The other {len(off)}, at {listed}, are the white markers at their own {a.rate_key}, one "
                "shape for each setting, and the rows with 'on the rate line' = no in the table.")  # fmt: skip
    return f"The lines cover only the configurations at {fixed} ({len(on)} of {len(a.configs)}). {rest}"


def _rate(a: Analysis) -> Section:
    key = a.rate_key
    figures, notes = _figures(a, ("rate_accuracy", "rate_gap"))
    tables = []
    try:
        numbers = _with_labels(a, plots.rate_table(a))
        if numbers["on_line"].all():
            numbers = numbers.drop(columns="on_line")
        stats = ("mean", "ci_low", "ci_high")
        lead = [c for c in ("rate", "config", "on_line", "n") if c in numbers]
        more = numbers[["rate", "config", *(f"{m}_{s}" for m in ("train_acc", "train_eval_acc", "val_acc")
                                             for s in stats)]].dropna(axis=1, how="all")  # fmt: skip
        more.attrs["details"] = True
        tables += [("Numbers behind the plots", numbers[[*lead, *(f"{m}_{s}" for m in ("test_acc", "gap_acc")
                                                                  for s in stats)]]),
                   ("Train and validation accuracy behind the plots", more)]  # fmt: skip
    except DropoutlabError as error:
        notes.append(unavailable_line("The table behind the plots", str(error)))
    if "gap_trend" in a.unavailable:
        notes.append(unavailable_line("The gap trend", a.unavailable["gap_trend"]))
    text = (
        f"How train and test accuracy move as {key} grows. Bands are {level(a.confidence)} intervals of "
        "the mean over seeds (on the logit scale for accuracies; none below 3 seeds); dots are single seeds."
    )
    coverage = _rate_coverage(a)
    return Section("Accuracy against the dropout rate", [text, *([coverage] if coverage else []), *notes],
                   figures=figures, tables=tables)  # fmt: skip


def _grid(a: Analysis) -> Section:
    x_key, y_key = a.grid
    figures, notes = _figures(a, ("heatmap",))
    tables = []
    try:
        tables.append(
            ("Numbers behind the heatmap",
             _with_labels(a, plots.heatmap_table(a)))
        )  # fmt: skip
    except DropoutlabError as error:
        notes.append(unavailable_line("The table behind the heatmap", str(error)))
    if "interaction" in a.unavailable:
        notes.append(unavailable_line("The interaction test", a.unavailable["interaction"]))
    elif a.interaction is not None:
        r = a.interaction
        notes.append(
            f"Interaction test (two-way ANOVA{', seed as a block' if r.blocked_by_seed else ''}): "
            f"F({r.df_num}, {r.df_den}) = {r.F:.2f}, unadjusted {p_text(r.p_value)}, "
            f"{p_text(r.p_adjusted, 'Holm p')} in the report's family."
        )
        left = {k: [v for v in sorted_levels(a.summary[k].dropna()) if v not in set(values)]
                for k, values in zip(r.factors, r.levels, strict=True)}  # fmt: skip
        if any(left.values()):
            covered = " and ".join(f"{k} = {and_list([value_text(v) for v in values])}"
                                   for k, values in zip(r.factors, r.levels, strict=True))  # fmt: skip
            out = "; ".join(f"{k} = {and_list([value_text(v) for v in vs])}" for k, vs in left.items() if vs)
            notes.append(f"The interaction test covers {covered}, the values run at every value of the other "
                         f"parameter; not {out}, which the study did not cross with them.")  # fmt: skip
    text = f"Mean test accuracy in each cell of the two-dimensional grid, with its {level(a.confidence)} interval."
    return Section(f"{y_key} x {x_key}", [text, *notes], figures=figures, tables=tables)


FACTORS_TITLE = "Effect of each parameter, averaged over the others"


def _factors(a: Analysis) -> Section:
    if "factors" in a.unavailable:
        line = unavailable_line("The effects averaged over the other parameters", a.unavailable["factors"])
        return Section(FACTORS_TITLE, [line])
    fx = a.factors
    refs = ", ".join(setting(f, fx.reference[f]) for f in fx.factors)
    text = [
        f"The grid crosses {len(fx.factors)} parameters ({and_list(fx.factors)}) in {fx.cells} configurations. "
        "For each value of a parameter, the mean test accuracy over every configuration with that value, "
        "each combination of the other parameters counted once: first within each seed, then over the "
        f"seeds, with a {level(a.confidence)} t interval on the logit scale.",
        f"Effects: within each seed, the mean at a value minus the mean at the reference value ({refs}); "
        "then a t-test and interval over the seeds (a paired t: each seed ran every configuration, so the "
        "seed is the unit). Interactions: within each seed, how much the effect of one parameter changes "
        "between the reference value of another and one of its other values (a difference of differences, "
        "averaged over the remaining parameters), tested the same way; an interaction far from 0 means the "
        "parameters must be read together. These tests belong to the report's one Holm family (alpha = "
        f"{a.alpha:g}); their intervals are simultaneous {level(a.confidence)} intervals over it, 'seeds "
        "needed' as in the comparisons above. Three-way interactions are not tested.",
        "A seed that did not complete every configuration a number averages over (a run failed or "
        "diverged) is left out of that number and named.",
    ]
    if fx.empty_cells:
        cells = "; ".join(", ".join(setting(k, v) for k, v in c.items()) for c in fx.empty_cells)
        text.append(f"No completed run for {cells}: the numbers that average over it cannot be computed.")
    figures, notes = _figures(a, ("factor_means",))
    return Section(FACTORS_TITLE, text + notes, figures=figures, tables=_factor_tables(a))


def _factor_tables(a: Analysis) -> list:
    fx = a.factors
    means = pd.DataFrame([{"parameter": m.factor, "value": value_text(m.level), "seeds": m.test_acc.n,
                           "test acc": m.test_acc.mean, "test acc ci_low": m.test_acc.low,
                           "test acc ci_high": m.test_acc.high,
                           "test acc interval": INTERVAL_WORDS.get(m.test_acc.method, m.test_acc.method),
                           "seeds left out": ", ".join(map(str, m.seeds_left_out))} for m in fx.means])  # fmt: skip
    if (means["test acc interval"] == INTERVAL_WORDS["logit t"]).all():
        means = means.drop(columns="test acc interval")
    effects, effect_details = _split_tests(
        a, [{"parameter": e.factor, "value": value_text(e.level), "against": value_text(e.reference)}
            for e in fx.effects], [{"parameter": e.factor, "value": value_text(e.level)} for e in fx.effects],
        fx.effects)  # fmt: skip
    interactions, interaction_details = _split_tests(
        a, [{"effect of": f"{i.factor}={value_text(i.level)} vs {value_text(i.reference)}",
             "at value": setting(i.by, i.by_level), "effect at reference": i.effect_at_reference,
             "effect at value": i.effect_at_level} for i in fx.interactions],
        [{"effect of": f"{i.factor}={value_text(i.level)} vs {value_text(i.reference)}",
          "at value": setting(i.by, i.by_level)} for i in fx.interactions],
        fx.interactions, main=("diff", "ci_low", "ci_high", "p_adjusted", "significant"),
        detail=("seeds", *_DETAIL_TESTS))  # fmt: skip
    if not means["seeds left out"].astype(bool).any():
        means = means.drop(columns="seeds left out")
    return [
        ("Mean test accuracy at each value, averaged over the other parameters", means),
        ("Each value against the reference value, averaged over the other parameters", effects),
        ("Each effect on its own: the test, unadjusted interval and p, effect size", effect_details),
        (
            "Two-way interactions: the effect at a value of the other parameter minus at its reference",
            interactions,
        ),
        (
            "Each interaction on its own: the test, unadjusted interval and p, effect size",
            interaction_details,
        ),
    ]


#: The columns of a table of tests: the claim and its interval first, each test on its own after.
_MAIN_TESTS = ("seeds", "diff", "ci_low", "ci_high", "p_adjusted", "significant", "seeds_needed")
_DETAIL_TESTS = ("test", "diff", "unadjusted ci_low", "unadjusted ci_high", "p_value", "effect_size",
                 "seeds left out")  # fmt: skip


def _split_tests(a: Analysis, leads: list[dict], short: list[dict], tests, unit: str = "pp",
                 main=_MAIN_TESTS, detail=_DETAIL_TESTS) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """Two tables of ``tests`` that fit the page: ``leads`` with the estimate, its simultaneous
    interval, Holm p, significance and seeds needed; then (folded in the HTML) ``short`` with
    each test on its own: the test, the unadjusted interval and p, the effect size, seeds left out."""
    table = _tests_table(leads, tests, main, unit)
    table.attrs["ci"] = {"diff": f"simultaneous {level(a.confidence)} CI"}
    details = _tests_table(short, tests, detail, unit)
    details = details.rename(columns={"unadjusted ci_low": "ci_low", "unadjusted ci_high": "ci_high",
                                      "p_value": "unadjusted p"})  # fmt: skip
    units = {**details.attrs["units"], "unadjusted p": "p"}
    units.update({k: unit for k in ("ci_low", "ci_high") if k in details})
    details.attrs.update(units=units, ci={"diff": f"unadjusted {level(a.confidence)} CI"}, details=True)
    return table, details


def _tests_table(leads: list[dict], tests, columns, unit: str = "pp") -> pd.DataFrame:
    """One row per test: its ``leads`` columns, then ``columns`` of ``_TEST_COLUMNS``; differences
    in ``unit``; the column of seeds left out only when a seed was."""
    frame = pd.DataFrame([{**lead, **{k: _TEST_COLUMNS[k](c) for k in columns}}
                          for lead, c in zip(leads, tests, strict=True)])  # fmt: skip
    if "seeds left out" in frame and not frame["seeds left out"].astype(bool).any():
        frame = frame.drop(columns="seeds left out")
    frame.attrs["units"] = {
        **{k: unit for k in _DIFFERENCES if k in frame},
        **({"d_z": "float"} if "d_z" in frame else {}),
    }
    return frame


#: The columns a table of tests can show, each read from a ``model.TestResult``.
_TEST_COLUMNS = {
    "seeds": lambda c: c.n, "diff": lambda c: c.diff, "ci_low": lambda c: c.ci_low, "ci_high": lambda c: c.ci_high,
    "unadjusted ci_low": lambda c: c.ci_low_unadjusted, "unadjusted ci_high": lambda c: c.ci_high_unadjusted,
    "test": lambda c: c.test, "p_value": lambda c: c.p_value, "p_adjusted": lambda c: c.p_adjusted,
    "significant": lambda c: c.significant, "effect_size": lambda c: c.effect_size, "d_z": lambda c: c.effect_size,
    "seeds_needed": lambda c: c.seeds_needed, "seeds left out": lambda c: ", ".join(map(str, c.seeds_left_out)),
}  # fmt: skip
_DIFFERENCES = ("diff", "ci_low", "ci_high", "unadjusted ci_low", "unadjusted ci_high", "effect at reference",
                "effect at value")  # fmt: skip


MC_TITLE = "Monte Carlo dropout"


def _learned_rates(a: Analysis) -> Section:
    table = plots.learned_rate_table(a)
    last = table.loc[table.groupby(["config", "slot"], sort=False)["epoch"].idxmax()]
    shown = pd.DataFrame({"config": [a.label(c) for c in last["config"]], "slot": last["slot"],
                          "epoch": last["epoch"], "seeds": last["n"], "learned rate": last["rate_mean"],
                          "learned rate ci_low": last["rate_ci_low"],
                          "learned rate ci_high": last["rate_ci_high"]})  # fmt: skip
    shown.attrs["units"] = {
        "learned rate": "pct",
        "learned rate ci_low": "pct",
        "learned rate ci_high": "pct",
    }
    text = [
        "Concrete dropout learns each slot's rate by gradient descent during training (Gal, Hron and "
        "Kendall 2017); the study's rate is only its starting value. The rate after each epoch, mean "
        f"over seeds with a {level(a.confidence)} t interval (none below 2 seeds); the table gives the "
        "last epoch each configuration trained."
    ]
    figures, notes = _figures(a, ("learned_rates",))
    return Section("Learned dropout rates", text + notes, figures=figures,
                   tables=[("Learned rate at the last epoch", shown)])  # fmt: skip


def _mc_dropout(a: Analysis) -> Section:
    mc = a.mc
    passes = ", ".join(str(t) for t in mc.samples if t)
    rows = []
    for _, r in mc.levels.iterrows():
        row = {"config": a.label(r["config"]), "passes": "deterministic" if r["samples"] == 0 else r["samples"],
               "seeds": r["n"]}  # fmt: skip
        for metric in MC_METRICS:
            interval = r[metric]
            name = "test acc" if metric == "acc" else metric.replace("_", " ")
            row[name] = interval.mean
            row[f"{name} ci_low"] = interval.low
            row[f"{name} ci_high"] = interval.high
        rows.append(row)
    levels = pd.DataFrame(rows)
    levels["passes"] = levels["passes"].astype(str)
    levels.attrs["units"] = {"nll": "loss", "nll ci_low": "loss", "nll ci_high": "loss"}
    shown = [
        "config",
        "passes",
        "seeds",
        *(f"{n}{s}" for n in ("test acc", "nll") for s in ("", " ci_low", " ci_high")),
    ]
    others = levels[["config", "passes", *(c for c in levels.columns if c not in shown)]]
    others.attrs["details"] = True
    levels = levels[shown]
    text = [
        f"Each run was tested again with dropout left on: T passes over the test set (T = {passes}), "
        "each with fresh masks, and the mean of their softmax probabilities as the prediction (Monte "
        "Carlo dropout, Gal and Ghahramani 2016). 'deterministic' is the usual test with dropout off "
        "(inverted dropout's weight scaling). The passes are nested: T uses the first T of the largest "
        "T's passes.",
        "NLL is the mean negative log-likelihood of the true class (nats, lower is better); Brier is the "
        "squared error of the probabilities summed over classes (0 to 2, lower is better); ECE is the "
        "expected calibration error over 15 confidence bins (0 is calibrated); entropy is the predictive "
        "entropy of the mean prediction (nats) and mutual information its part due to the sampled masks "
        "(0 without dropout). Means over seeds with a "
        f"{level(a.confidence)} interval (logit-scale t for accuracy, t for the others).",
    ]
    tables = [("Test accuracy and NLL per number of passes", levels),
              ("Brier score, ECE, entropy and mutual information per number of passes", others)]  # fmt: skip
    if mc.contrasts:
        text.append(
            f"The largest T ({mc.largest}) against the deterministic pass, paired over seeds, for test accuracy "
            "(pp) and NLL (nats): these tests belong to the report's one Holm family (alpha = "
            f"{a.alpha:g}), with simultaneous {level(a.confidence)} intervals, as in the comparisons above."
        )
        for metric, what, unit in (("mc_acc", "test accuracy", "pp"), ("mc_nll", "NLL", "loss")):
            chosen = [c for c in mc.contrasts if c.metric == metric]
            if not chosen:
                continue
            frame = _tests_table([{"config": a.label(c.config)} for c in chosen], chosen,
                                 ("seeds", "diff", "ci_low", "ci_high", "p_value", "p_adjusted", "significant"), unit)  # fmt: skip
            tables.append((f"{what}: MC dropout (T={mc.largest}) minus the deterministic pass", frame))
    if mc.no_dropout:
        names = and_list([a.label(c) for c in mc.no_dropout])
        text.append(f"Without a layer that draws at test time ({names}), every pass is the deterministic one: "
                    "nothing to test.")  # fmt: skip
    figures, notes = _figures(a, ("mc_acc", "mc_nll", "mc_ece", "reliability"))
    return Section(MC_TITLE, text + notes, figures=figures, tables=tables)


def _curves(a: Analysis) -> Section:
    figures, notes = _figures(a, ("comparison", "curves"))
    if "curves" in a.unavailable:
        notes.append(unavailable_line("The learning curves", a.unavailable["curves"]))
    text = (
        "Loss and accuracy per epoch, mean over seeds with a band from 3 seeds on: first every "
        "configuration on one figure, then one figure per configuration."
    )
    best = next((plan for plan in a.figures if plan.kind == "comparison" and plan.configs), None)
    if best is not None:
        shown = len(best.configs)
        base = " and the baseline" if a.baseline in best.configs else ""
        text = (
            f"Loss and accuracy per epoch, mean over seeds with a band from 3 seeds on, for the "
            f"{shown - bool(base)} configurations with the highest mean test accuracy{base} ({shown} of "
            f"{len(a.configs)}; curves of more would not be readable, and the tables above give every "
            "configuration): first on one figure, then one figure each."
        )
    return Section("Learning curves", [text, *notes], figures=figures)


# ----------------------------------------------------------------------------------------
# Methods


def _counted(counts: dict, unit: str = "runs") -> str:
    """``{"cpu": 21}`` -> ``"cpu"``; several values -> ``"cpu (12 runs), cuda (9 runs)"``."""
    if not counts:
        return NOT_RECORDED
    if len(counts) == 1:
        return str(next(iter(counts)))
    return ", ".join(f"{k} ({v} {unit})" for k, v in counts.items())


def device_text(device: str) -> str:
    """A stored device (``"type: name"``) in words: ``"cpu: cpu"`` -> ``"cpu"``, ``"cuda: NVIDIA
    H100"`` -> ``"cuda (NVIDIA H100)"``; anything else as it is."""
    kind, sep, name = str(device).partition(": ")
    if not sep:
        return str(device)
    return kind if name.strip() in ("", kind) else f"{kind} ({name.strip()})"


def _devices(counts: dict) -> dict:
    out: dict[str, int] = {}
    for device, n in counts.items():
        out[device_text(device)] = out.get(device_text(device), 0) + n
    return out


def _engine_text(m) -> str:
    parts = []
    for engine, n in m.engines.items():
        if engine == "stacked":
            sizes = ", ".join(str(s) for s in sorted(m.stack_sizes)) or NOT_RECORDED
            parts.append(f"{n} trained stacked, several runs as one batched model (stack sizes {sizes})")
        elif engine == "single":
            parts.append(f"{n} trained one by one")
        else:
            parts.append(f"{n} with engine {engine}")
    return "; ".join(parts) or NOT_RECORDED


def _training_text(training: dict) -> str:
    if not training:
        return f"Training settings: {NOT_RECORDED}."
    parts = []
    if "dataset" in training:
        parts.append(f"dataset {training['dataset']}")
    if "model" in training:
        parts.append(f"model {training['model']}")
    if "epochs" in training:
        parts.append(f"{training['epochs']} epochs")
    if "batch_size" in training:
        parts.append(f"batch size {training['batch_size']}")
    optimizer = training.get("optimizer")
    if isinstance(optimizer, dict):
        details = ", ".join(f"{k} {value_text(v)}" for k, v in optimizer.items() if k != "name")
        parts.append(f"optimizer {optimizer.get('name')} ({details})")
    if "validation" in training:
        parts.append(f"validation fraction {value_text(training['validation'])}")
    if "early_stopping" in training:
        stop = training["early_stopping"]
        parts.append("no early stopping" if not stop else f"early stopping ({stop})")
    return "Every run shares: " + ", ".join(parts) + "; the grid parameters vary as listed above."


def _methods(a: Analysis) -> Section:
    m = a.methods
    statuses = ", ".join(f"{n} {s}" for s, n in m.statuses.items()) or "none"
    versions = ", ".join(
        f"{name} {_counted(values)}" for name, values in m.versions.items() if name != "data"
    )
    lines = [
        f"{m.runs} runs ({statuses}).",
        _training_text(m.training),
        f"Data identity (the SHA-256 of the dataset's files or arrays, or the scikit-learn version of digits, "
        f"when each run trained): {_counted(m.versions.get('data', {}))}.",
        f"How they were trained: {_engine_text(m)}. Device: {_counted(_devices(m.devices))}; "
        f"precision: {_counted(m.dtypes)}; CPU threads: {_counted(m.threads)}; {versions}.",
        f"Statistics: tests at alpha = {a.alpha:g} over one Holm family of {a.family_size} tests; intervals at "
        f"{level(a.confidence)}; smallest difference worth detecting {pp(a.min_effect).lstrip('+')} with "
        f"{a.power:.0%} power. Method of each number: docs/report.md.",
    ]
    return Section("Methods", lines)
