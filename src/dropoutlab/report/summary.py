"""The text table printed after ``dropoutlab run``: per configuration, runs and test accuracy.

Kept apart from the analysis so that the end of a run imports only the intervals it prints.
"""

from __future__ import annotations

import pandas as pd

from dropoutlab.report.model import CONFIDENCE
from dropoutlab.report.stats import summarize, varied_params
from dropoutlab.report.text import level


def summary_table(runs: pd.DataFrame, confidence: float = CONFIDENCE) -> str:
    """A plain-text table: per configuration, runs and test accuracy mean with its interval.

    From 3 seeds the interval is a t interval on the logit scale; below, the seeds' range.
    """
    if runs.empty:
        return "(no runs)"
    table = summarize(runs, confidence=confidence)
    varied = varied_params(runs)
    labels = [
        " ".join(f"{k.removeprefix('dropout.')}={row[k]}" for k in varied) or row["config"]
        for _, row in table.iterrows()
    ]
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
