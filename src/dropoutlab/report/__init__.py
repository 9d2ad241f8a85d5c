"""The report: one analysis of a study, rendered as HTML, Markdown, JSON or notebook tables.

Everything here reads only the store, so a store made on another machine can be reported.
``analyze`` computes an ``Analysis`` once (``analysis.py``); ``write_study_report`` writes
report.html, report.md and the PNGs from it; ``report_numbers`` gives it as JSON-ready data;
``summary_table`` is the text table printed after a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from dropoutlab.report.analysis import (
    ALPHA,
    CONFIDENCE,
    Analysis,
    analyze,
    analyze_records,
    findings,
    study_min_effect,
)
from dropoutlab.report.findings import Finding, rate_axis
from dropoutlab.report.numbers import analysis_to_json
from dropoutlab.report.stats import compare, resolve_baseline, summarize, varied_params
from dropoutlab.store import Store, runs_frame

__all__ = [
    "Analysis",
    "Finding",
    "analysis_to_json",
    "analyze",
    "compare",
    "findings",
    "rate_axis",
    "report_numbers",
    "summarize",
    "summary_table",
    "write_analysis",
    "write_study_report",
]


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
    head = f"test accuracy ({100 * confidence:.10g}% CI)"
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


def report_numbers(
    store: Store,
    study: str,
    baseline: str | None = None,
    alpha: float = ALPHA,
    confidence: float = CONFIDENCE,
    min_effect: float | None = None,
) -> dict[str, Any]:
    """The report's numbers as JSON-ready data (``numbers.analysis_to_json`` of ``analyze``).

    ``min_effect`` None: the study file's ``min_effect``, else 0.01 (see :func:`study_min_effect`)."""
    return analysis_to_json(analyze(store, study, baseline, alpha, confidence, min_effect))


def write_analysis(analysis: Analysis, out: str | Path) -> dict[str, Path]:
    """Write report.html (self-contained), report.md and the PNG figures of ``analysis`` into ``out``."""
    # imported here: matplotlib and jinja2 cost a second of `dropoutlab run`'s start-up otherwise
    from dropoutlab.report.html import write_report
    from dropoutlab.report.sections import report_sections

    title = f"dropoutlab report: {analysis.study}"
    return write_report(
        out,
        title,
        [f.text for f in analysis.headline],
        report_sections(analysis),
        exploratory=[f.text for f in analysis.exploratory],
    )


def write_study_report(
    store: Store,
    study: str,
    out: str | Path,
    baseline: str | None = None,
    alpha: float = ALPHA,
    confidence: float = CONFIDENCE,
    min_effect: float | None = None,
) -> dict[str, Path]:
    """Write report.html (self-contained), report.md and the PNG figures of ``study`` into ``out``.

    ``min_effect`` None: the study file's ``min_effect``, else 0.01 (see :func:`study_min_effect`).

    A bad ``baseline``, ``alpha``, ``confidence`` or ``min_effect`` raises ``DropoutlabError``
    before any file is written.
    """
    min_effect = study_min_effect(store, study) if min_effect is None else min_effect
    records = store.records(study)  # read once
    resolve_baseline(runs_frame(records), baseline)
    analysis = analyze_records(records, study, baseline, alpha, confidence, min_effect)
    return write_analysis(analysis, out)
