"""The text table printed after ``dropoutlab run``, and the names every page gives a configuration.

Kept apart from the analysis so that the end of a run imports only the intervals it prints
(no ``scipy.stats``). ``config_labels`` is the one naming of configurations: the analysis
(``Analysis.label``), the pages, the figures' legends and this table all say "no dropout" and
"dropout.hidden1=0.5" alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from dropoutlab.report.model import CONFIDENCE, plain
from dropoutlab.report.stats import (
    is_off,
    no_dropout_configs,
    param_columns,
    resolve_baseline,
    summarize,
    varied_params,
)
from dropoutlab.report.text import level, setting


def baseline_name(runs: pd.DataFrame, base: str | None, varied: Sequence[str]) -> str | None:
    """How the report names the baseline ``base``: ``"no dropout"``; ``"no regularization"`` when
    the other varied parameters are off there too (no weight decay, no batch norm); else
    ``"no dropout (optimizer.lr=0.01)"``; the ``config`` label itself for a baseline with dropout."""
    if base is None:
        return None
    if base not in no_dropout_configs(runs):
        return base
    row = runs[runs["config"] == base].iloc[0]
    others = {p: row[p] for p in varied if not p.startswith("dropout.")}
    if not others:
        return "no dropout"
    if all(is_off(v) for v in others.values()):
        return "no regularization"
    return f"no dropout ({', '.join(setting(p, v) for p, v in others.items())})"


def config_labels(
    runs: pd.DataFrame, params: Sequence[str] | None = None, base: str | None = None, baseline=None
) -> dict[str, str]:
    """Short, unique names for the configurations of ``runs`` (``config`` -> name): the
    parameters where each differs from the baseline (``"dropout.hidden1=0.5"``), the baseline's
    ``baseline_name`` (``"no dropout"``); every varied parameter when there is no baseline; the
    full ``config`` labels when the short names would not be unique.

    ``base``: the baseline's ``config`` label, already resolved; else ``baseline`` is resolved as
    the report does (``stats.resolve_baseline``: None finds the configuration without dropout).
    """
    params = param_columns(runs, params)
    if runs.empty:
        return {}
    varied = varied_params(runs, params)
    if base is None:
        base = resolve_baseline(runs, baseline, params)
    name = baseline_name(runs, base, varied)
    first = runs.drop_duplicates("config")
    values = {str(row["config"]): {p: plain(row[p]) for p in params} for _, row in first.iterrows()}
    ref = values.get(str(base)) if base is not None else None
    out: dict[str, str] = {}
    for config, mine in values.items():
        if config == base:
            out[config] = name or config
            continue
        keys = [p for p in varied if ref is None or mine.get(p) != ref.get(p)]
        out[config] = ", ".join(setting(p, mine.get(p)) for p in keys) or config
    if len(set(out.values())) < len(out):
        return {config: config for config in values}  # ambiguous: keep the full labels
    return out


def summary_table(runs: pd.DataFrame, confidence: float = CONFIDENCE) -> str:
    """A plain-text table: per configuration (named as the report names it, ``config_labels``),
    runs and test accuracy mean with its interval.

    From 3 seeds the interval is a t interval on the logit scale; below, the seeds' range.
    """
    if runs.empty:
        return "(no runs)"
    table = summarize(runs, confidence=confidence)
    names = config_labels(runs)
    labels = [names.get(str(c), str(c)) for c in table["config"]]
    width = max(14, *map(len, labels)) + 2
    head = f"test accuracy ({level(confidence)} CI)"
    lines = [f"{'configuration':<{width}}{'runs':>6}  {head:<30}{'train - test':>13}"]
    for label, row in zip(labels, table.itertuples(), strict=True):
        runs_text = (
            f"{row.n}"
            + (f"+{row.n_diverged}d" if row.n_diverged else "")
            + (f"+{row.n_failed}f" if row.n_failed else "")
        )
        acc = _accuracy_cell(row)
        gap = "" if pd.isna(row.gap_acc_mean) else f"{row.gap_acc_mean * 100:+.1f} pp"
        lines.append(f"{label:<{width}}{runs_text:>6}  {acc:<30}{gap:>13}")
    return "\n".join(lines)


def _accuracy_cell(row) -> str:
    if pd.isna(row.test_acc_mean):
        return "-"
    mean = f"{row.test_acc_mean:.1%}"
    method = row.test_acc_interval
    if method == "logit t":
        return f"{mean} ({row.test_acc_ci_low:.1%} to {row.test_acc_ci_high:.1%})"
    if method == "same":
        return f"{mean} (all seeds equal; no interval)"
    if row.n >= 2:
        return f"{mean} (range {row.test_acc_min:.1%} to {row.test_acc_max:.1%})"
    return mean
