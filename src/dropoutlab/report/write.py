"""The report's entry points: a study's analysis written as files, or given as JSON-ready data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dropoutlab.report.analysis import Analysis, analyze, analyze_records, study_min_effect
from dropoutlab.report.numbers import analysis_to_json
from dropoutlab.report.stats import ALPHA, CONFIDENCE, resolve_baseline
from dropoutlab.store import Store, runs_frame


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
    # imported here: matplotlib and jinja2 take a second that report_numbers (JSON) does not need
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
