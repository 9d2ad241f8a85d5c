"""Plain-words findings: what a study says about dropout, with each figure and its interval.

``findings`` turns the runs DataFrame into short English sentences that answer the questions
the teaching notebooks ask ("which dropout rate?", "what happens to train and test accuracy
as the rate grows?", "where should dropout go?"), but over repeated seeds and with
intervals, so that seed-to-seed noise is not read as an effect. Inputs are fractions (as in
the store); the text speaks in percent and percentage points (pp).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from dropoutlab.report.stats import (
    COMPARE_COLUMNS,
    compare,
    compare_configs,
    interaction_test,
    mean_ci,
    no_dropout_configs,
    param_columns,
    resolve_baseline,
    run_metrics,
    summarize,
    varied_params,
)

CONFIDENCE = 0.95
_MINUS = "\u2212"


# ----------------------------------------------------------------------------------------
# Formatting: fractions in, percent / percentage points out


def _pct(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.1f}%"


def _signed(x: float) -> str:
    text = f"{100 * x:+.1f}"
    if text in ("+0.0", "-0.0"):
        text = "0.0"
    return text.replace("-", _MINUS)


def _pp(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{_signed(x)} pp"


def _ci_pp(low: float, high: float) -> str:
    if not (np.isfinite(low) and np.isfinite(high)):
        return "no interval"
    return f"{CONFIDENCE:.0%} CI {_signed(low)} to {_signed(high)}"


def _ci_pct(low: float, high: float) -> str:
    if not (np.isfinite(low) and np.isfinite(high)):
        return "no interval with one seed"
    return f"{CONFIDENCE:.0%} CI {100 * low:.1f} to {100 * high:.1f}%"


def _p(p: float) -> str:
    if not np.isfinite(p):
        return "p n/a"
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.2f}" if p >= 0.01 else f"p = {p:.3f}"


def _seeds(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def _value(x) -> str:
    if isinstance(x, float) and x.is_integer():
        return str(int(x)) if abs(x) >= 1 or x == 0 else str(x)
    return str(x)


# ----------------------------------------------------------------------------------------
# The rate axis (shared with plots)


def _mode(column: pd.Series):
    counts = column.value_counts(dropna=False)
    tied = list(counts[counts == counts.max()].index)
    try:
        return sorted(tied)[0]
    except TypeError:
        return tied[0]


def _equals(column: pd.Series, value) -> pd.Series:
    if isinstance(value, float) and math.isnan(value):
        return column.isna()
    return column == value


def rate_axis(runs: pd.DataFrame, params: Sequence[str] | None = None) -> tuple[str | None, pd.Series]:
    """The x axis and the line for an "accuracy vs dropout rate" plot.

    The key is the varied ``dropout.*`` parameter with the most distinct values (first in
    ``params`` order on ties). The line holds the runs whose other varied parameters sit at
    their most common value across configurations (the smallest on ties), so that each
    rate appears once; the other configurations are meant to be shown as separate labelled
    points. Returns ``(key, mask)`` with ``mask`` a boolean Series on ``runs.index``;
    ``(None, all False)`` when no dropout parameter varies.
    """
    params = param_columns(runs, params)
    mask = pd.Series(False, index=runs.index)
    if runs.empty:
        return None, mask
    configs = runs.drop_duplicates("config")
    varied = varied_params(runs, params)
    rates = [p for p in varied if p.startswith("dropout.")]
    if not rates:
        return None, mask
    key = max(rates, key=lambda p: configs[p].nunique(dropna=False))
    on_line = pd.Series(True, index=runs.index)
    for other in varied:
        if other != key:
            on_line &= _equals(runs[other], _mode(configs[other]))
    return key, on_line.astype(bool)


# ----------------------------------------------------------------------------------------
# Findings


def findings(
    runs: pd.DataFrame,
    params: Sequence[str] | None = None,
    baseline=None,
    alpha: float = 0.05,
) -> list[str]:
    """Short English sentences on test accuracy, each with its figure and 95% interval.

    ``runs`` is ``Store.runs()`` (accuracies as fractions); the sentences give accuracies in
    percent and differences in percentage points (pp). ``baseline`` is anything
    ``resolve_baseline`` accepts (None: the configuration without dropout). Comparisons use
    ``compare`` (paired t by seed when seeds match, else Welch; Holm-adjusted over all
    comparisons, significant when below ``alpha``).

    In order: a plain statement first when nothing is distinguishable from the baseline;
    what the statistics rest on (completed, diverged and failed runs); the best
    configuration, against the baseline and the runner-up; configurations that
    significantly help or hurt; which dropout slot helped most when slots are varied one at
    a time; whether two crossed parameters interact (two-way ANOVA); the configurations not
    distinguishable from the baseline, with the seeds a difference of that size would need;
    the train-test gap along the rate axis; and where train accuracy falls below test
    accuracy, whether that is dropout noise (running accuracy measured with dropout on) or
    underfitting (eval-mode train accuracy below test too).
    """
    params = param_columns(runs, params)
    if runs.empty:
        return ["No runs in this study yet: nothing to report."]
    summary = summarize(runs, params, CONFIDENCE)
    done = summary[summary["n"] > 0].dropna(subset=["test_acc_mean"])
    if done.empty:
        return ["No completed runs: nothing to report.", *_failures(summary)]

    base = resolve_baseline(runs, baseline, params)
    base_name = base
    if base is not None and base in no_dropout_configs(runs):
        base_name = "no dropout"
    if base is None:
        table = pd.DataFrame(columns=list(COMPARE_COLUMNS))
    else:
        table = compare(runs, params, base, alpha=alpha, confidence=CONFIDENCE)

    out: list[str] = []
    out += _headline(table, base_name, done, no_dropout_configs(runs))
    out += _basis(done, summary, base)
    out += _failures(summary)
    out += _best(runs, done, table, base, base_name)
    out += _significant(table, base_name, done)
    out += _placement(runs, params, table, base, base_name)
    out += _interaction(runs, params)
    out += _not_distinguishable(table, base_name, done)
    out += _gap_trend(runs, params, summary)
    out += _train_below_test(runs, done)
    return out


def _seed_phrase(done: pd.DataFrame) -> str:
    counts = sorted(set(done["n"].astype(int)))
    if len(counts) == 1:
        return _seeds(counts[0])
    return f"{counts[0]}{chr(0x2013)}{counts[-1]} seeds"


def _headline(table: pd.DataFrame, base_name, done: pd.DataFrame, zero: list[str]) -> list[str]:
    if base_name is None:
        why = (
            f"several configurations have no dropout ({', '.join(zero)})"
            if zero
            else "no configuration has every dropout rate at 0"
        )
        return [
            f"No baseline: {why}, so nothing is compared with a baseline; name one "
            "(e.g. 'dropout.conv=0,optimizer.lr=0.01') to get those comparisons."
        ]
    if table.empty:
        return [f"Only the baseline ({base_name}) has been run: nothing to compare it with."]
    if table["significant"].any():
        return []
    if table["p_value"].notna().sum() == 0:
        return [
            f"Nothing can be tested against {base_name} yet: every comparison lacks a second "
            "seed or any spread between seeds; run at least 3 seeds per configuration."
        ]
    return [
        f"No configuration is distinguishable from {base_name} on test accuracy with "
        f"{_seed_phrase(done)}: every difference is within seed-to-seed noise "
        f"(smallest Holm-adjusted {_p(table['p_adjusted'].min())})."
    ]


def _basis(done: pd.DataFrame, summary: pd.DataFrame, base) -> list[str]:
    n_runs = int(done["n"].sum())
    text = f"Based on {n_runs} completed runs: {len(done)} configurations with {_seed_phrase(done)} each"
    if len(done) < len(summary):
        missing = [str(c) for c in summary.loc[summary["n"] == 0, "config"]]
        text += f"; no completed run for {', '.join(missing)}"
    return [text + "."]


def _failures(summary: pd.DataFrame) -> list[str]:
    out = []
    for row in summary.itertuples():
        parts = []
        if row.n_diverged:
            parts.append(f"{row.n_diverged} diverged")
        if row.n_failed:
            parts.append(f"{row.n_failed} failed")
        if parts:
            out.append(
                f"{row.config}: {' and '.join(parts)} of "
                f"{row.n + row.n_diverged + row.n_failed} runs, left out of the statistics."
            )
    return out


def _vs(row, base_name) -> str:
    """``+1.3 pp vs no dropout (95% CI ..., paired t, Holm p = ...)``."""
    return (
        f"{_pp(row.diff)} vs {base_name} ({_ci_pp(row.ci_low, row.ci_high)}, {row.test}, "
        f"Holm {_p(row.p_adjusted)})"
    )


def _best(runs, done, table, base, base_name) -> list[str]:
    ranked = done.sort_values("test_acc_mean", ascending=False, kind="stable")
    best = ranked.iloc[0]
    level = f"{_pct(best.test_acc_mean)} ({_ci_pct(best.test_acc_ci_low, best.test_acc_ci_high)})"
    out = []
    if base is None:
        out.append(f"Highest mean test accuracy: {best.config} at {level}.")
    elif best.config == base:
        out.append(
            f"The highest mean test accuracy is the baseline itself ({base_name}): {level}; "
            "none of the dropout settings has a higher mean."
        )
    else:
        row = next(table[table["config"] == best.config].itertuples())
        if row.significant and row.diff > 0:
            out.append(
                f"Best: {best.config} with test accuracy {level}, {_vs(row, base_name)}: a real improvement."
            )
        else:
            m = int(table["p_value"].notna().sum())
            tail = _needed(row, m) if np.isfinite(row.p_value) else "."
            out.append(
                f"Highest mean test accuracy: {best.config} at {level}, {_vs(row, base_name)}: "
                f"not distinguishable from {base_name} with "
                f"{_seeds(min(row.n, row.n_baseline))}{tail}"
            )
    if len(ranked) > 1 and best.config != base:
        runner = ranked.iloc[1]
        if runner.config != base:
            pair = compare_configs(runs, best.config, runner.config, confidence=CONFIDENCE)
            if np.isfinite(pair["p_value"]):
                verdict = "distinguishable" if pair["p_value"] < 0.05 else "not distinguishable"
                out.append(
                    f"Its lead over the runner-up {runner.config} "
                    f"({_pct(runner.test_acc_mean)}) is {_pp(pair['diff'])} "
                    f"({_ci_pp(pair['ci_low'], pair['ci_high'])}, {pair['test']}, "
                    f"unadjusted {_p(pair['p_value'])}): {verdict}."
                )
            else:
                out.append(
                    f"Its lead over the runner-up {runner.config} "
                    f"({_pct(runner.test_acc_mean)}) is {_pp(pair['diff'])}, which cannot be "
                    "tested (one seed, or no spread between seeds)."
                )
    return out


def _significant(table: pd.DataFrame, base_name, done: pd.DataFrame) -> list[str]:
    if table.empty:
        return []
    best = done.sort_values("test_acc_mean", ascending=False, kind="stable").iloc[0].config
    out = []
    for row in table[table["significant"]].itertuples():
        if row.diff < 0:
            out.append(f"{row.config} hurts test accuracy: {_vs(row, base_name)}.")
        elif row.config != best:
            out.append(f"{row.config} also improves on {base_name}: {_vs(row, base_name)}.")
    return out


def _not_distinguishable(table: pd.DataFrame, base_name, done: pd.DataFrame) -> list[str]:
    if table.empty:
        return []
    best = done.sort_values("test_acc_mean", ascending=False, kind="stable").iloc[0].config
    m = int(table["p_value"].notna().sum())
    out = []
    for row in table[~table["significant"]].itertuples():
        if row.config == best and np.isfinite(row.p_value):
            continue  # said with the best configuration
        head = f"{row.config}: {_pp(row.diff)} vs {base_name}"
        if not np.isfinite(row.p_value):
            if min(row.n, row.n_baseline) < 2:
                out.append(
                    f"{head} with {_seeds(min(row.n, row.n_baseline))}: cannot be tested; "
                    "run at least 2 seeds (3 or more for a useful interval)."
                )
            elif np.isfinite(row.diff):
                out.append(f"{head}: identical across seeds, no spread to test against.")
            continue
        text = (
            f"{head} ({_ci_pp(row.ci_low, row.ci_high)}, Holm {_p(row.p_adjusted)}): not "
            f"distinguishable from {base_name} with {_seeds(min(row.n, row.n_baseline))}"
        )
        text += _needed(row, m)
        out.append(text)
    return out


def _needed(row, m: int) -> str:
    """The end of a not-distinguishable sentence: how many seeds would tell."""
    needed = row.seeds_needed
    if math.isinf(needed):
        return "; more than 1000 seeds per setting would be needed to see a difference this small."
    if not np.isfinite(needed):
        return "; the observed difference is zero." if row.diff == 0 else "."
    if needed <= min(row.n, row.n_baseline):
        return (
            f" after Holm correction for {m} comparisons (unadjusted {_p(row.p_value)}); "
            "a few more seeds would settle it."
        )
    return f"; about {int(needed)} seeds per setting would be needed to see a difference of this size."


def _one_at_a_time(runs: pd.DataFrame, params: list[str], base) -> dict[str, list[str]]:
    """Configs that differ from the baseline in exactly one varied dropout parameter."""
    varied = varied_params(runs, params)
    configs = runs.drop_duplicates("config").set_index("config")
    ref = configs.loc[base]
    by_slot: dict[str, list[str]] = {}
    for label, row in configs.iterrows():
        if label == base:
            continue
        differ = [p for p in varied if not (row[p] == ref[p] or (pd.isna(row[p]) and pd.isna(ref[p])))]
        if len(differ) == 1 and differ[0].startswith("dropout."):
            by_slot.setdefault(differ[0], []).append(label)
    return by_slot


def _slot(param: str) -> str:
    return f"the {param.removeprefix('dropout.')} slot"


def _placement(runs, params, table: pd.DataFrame, base, base_name) -> list[str]:
    if base is None or table.empty:
        return []
    by_slot = _one_at_a_time(runs, params, base)
    if len(by_slot) < 2:
        return []
    rows = table.set_index("config")
    best_per_slot = []
    for slot, labels in by_slot.items():
        diffs = rows.loc[labels, "diff"].dropna()
        if not diffs.empty:
            best_per_slot.append((float(diffs.max()), slot, str(diffs.idxmax())))
    if len(best_per_slot) < 2:
        return []
    best_per_slot.sort(key=lambda item: item[0], reverse=True)
    parts = []
    for _, slot, label in best_per_slot:
        row = rows.loc[label]
        mark = ", significant" if row["significant"] else ", not significant"
        parts.append(
            f"{_slot(slot)} at best {_pp(row['diff'])} with {label} "
            f"({_ci_pp(row['ci_low'], row['ci_high'])}{mark})"
        )
    (_, top_slot, top_label), (_, second_slot, second_label) = best_per_slot[:2]
    helped = [slot for _, slot, label in best_per_slot if _helps(rows.loc[label])]
    pair = compare_configs(runs, top_label, second_label, confidence=CONFIDENCE)
    apart = bool(np.isfinite(pair["p_value"]) and pair["p_value"] < 0.05)
    if not helped:
        lead = f"no single-slot dropout is distinguishable from {base_name}"
    elif helped[0] == top_slot and apart:
        lead = f"dropout in {_slot(top_slot)} helped most"
    elif helped[0] == top_slot:
        lead = (
            f"dropout in {_slot(top_slot)} has the highest mean, but not distinguishably "
            f"more than in {_slot(second_slot)}"
        )
    else:
        lead = (
            f"only dropout in {' and '.join(map(_slot, helped))} is distinguishably better than {base_name}"
        )
    text = f"Placement: {lead} ({'; '.join(parts)})."
    if np.isfinite(pair["p_value"]):
        text += (
            f" Best placements compared directly ({top_label} minus {second_label}): "
            f"{_pp(pair['diff'])} ({_ci_pp(pair['ci_low'], pair['ci_high'])}, {pair['test']}, "
            f"unadjusted {_p(pair['p_value'])})."
        )
    return [text]


def _helps(row) -> bool:
    return bool(row["significant"] and row["diff"] > 0)


def _interaction(runs, params) -> list[str]:
    result = interaction_test(runs, params)
    if result is None:
        return []
    fa, fb = result["factors"]
    how = "two-way ANOVA interaction F-test" + (", seed as a block" if result["blocked_by_seed"] else "")
    if not np.isfinite(result["p_value"]):
        return [f"Whether {fa} and {fb} interact cannot be tested: no spread between seeds."]
    figure = (
        f"F({result['df_num']}, {result['df_den']}) = {result['F']:.2f}, "
        f"{_p(result['p_value'])}, partial \u03b7\u00b2 = {result['partial_eta_sq']:.2f}; {how}"
    )
    if result["p_value"] < 0.05:
        return [
            f"{fa} and {fb} interact on test accuracy ({figure}): the best {fa} depends on "
            f"{fb}, so read them together, not one at a time."
        ]
    return [
        f"No detectable interaction between {fa} and {fb} on test accuracy ({figure}): "
        "within noise, their effects add up."
    ]


def _gap_trend(runs, params, summary: pd.DataFrame) -> list[str]:
    key, mask = rate_axis(runs, params)
    if key is None:
        return []
    on_line = set(runs.loc[mask, "config"])
    line = summary[summary["config"].isin(on_line) & (summary["n"] > 0)]
    line = line.dropna(subset=["gap_acc_mean"]).sort_values(key, kind="stable")
    if len(line) < 2:
        return []
    low, high = line.iloc[0], line.iloc[-1]
    pair = compare_configs(runs, high.config, low.config, metric="gap_acc", confidence=CONFIDENCE)
    change = f"a change of {_pp(pair['diff'])} ({_ci_pp(pair['ci_low'], pair['ci_high'])}"
    if not np.isfinite(pair["p_value"]):
        change += ", untestable)"
    elif pair["p_value"] >= 0.05:
        change += f", {_p(pair['p_value'])}): no distinguishable change"
    else:
        shape = "narrows" if pair["diff"] < 0 else "widens"
        change += f", {_p(pair['p_value'])}): the gap {shape} with more dropout"
    return [
        f"Along {key} from {_value(low[key])} to {_value(high[key])}, test accuracy goes from "
        f"{_pct(low.test_acc_mean)} to {_pct(high.test_acc_mean)} and the train-test accuracy "
        f"gap (eval-mode train accuracy where measured) from {_pp(low.gap_acc_mean)} "
        f"({_ci_pp(low.gap_acc_ci_low, low.gap_acc_ci_high)}) to {_pp(high.gap_acc_mean)} "
        f"({_ci_pp(high.gap_acc_ci_low, high.gap_acc_ci_high)}), {change}."
    ]


def _train_below_test(runs: pd.DataFrame, done: pd.DataFrame) -> list[str]:
    metrics = run_metrics(runs)
    metrics = metrics[metrics["status"] == "completed"]
    no_dropout = set(no_dropout_configs(runs))
    out = []
    for row in done.itertuples():
        test = row.test_acc_mean
        running, evaluated = row.train_acc_mean, row.train_eval_acc_mean
        mine = metrics[metrics["config"] == row.config]
        if np.isfinite(evaluated) and evaluated < test:
            _, low, high = mean_ci(mine["train_eval_acc"] - mine["test_acc"], CONFIDENCE)
            out.append(
                f"At {row.config}, train accuracy is below test accuracy even in eval mode "
                f"({_pct(evaluated)} vs {_pct(test)}, {_pp(evaluated - test)}, "
                f"{_ci_pp(low, high)}): a sign of underfitting at this setting."
            )
        elif np.isfinite(running) and running < test:
            _, low, high = mean_ci(mine["train_acc"] - mine["test_acc"], CONFIDENCE)
            below = (
                f"At {row.config}, train accuracy measured with dropout on ({_pct(running)}) is "
                f"below test accuracy ({_pct(test)}; {_pp(running - test)}, {_ci_pp(low, high)})"
            )
            if np.isfinite(evaluated) and row.config in no_dropout:
                # No dropout to blame: the running figure lags because it averages over an
                # epoch of still-improving weights.
                out.append(
                    f"{below}, but eval-mode train accuracy ({_pct(evaluated)}) is above it: "
                    "the running figure averages over an epoch of changing weights; this is "
                    "not underfitting."
                )
            elif np.isfinite(evaluated):
                out.append(
                    f"{below}, but eval-mode train accuracy ({_pct(evaluated)}) is above it: "
                    "this is dropout noise, not underfitting."
                )
            else:
                out.append(
                    f"{below}; eval-mode train accuracy was not measured, so this may be "
                    "dropout noise rather than underfitting."
                )
    return out
