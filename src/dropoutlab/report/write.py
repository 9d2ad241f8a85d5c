"""What the command line writes: a study's analysis as files, or as JSON-ready data."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from dropoutlab.report.analysis import analyze
from dropoutlab.report.model import Analysis
from dropoutlab.report.numbers import analysis_to_json

log = logging.getLogger(__name__)


def report_numbers(store, study: str, baseline=None, **levels) -> dict[str, Any]:
    """``dropoutlab report --format json``: ``numbers.analysis_to_json`` of ``analyze`` (same arguments)."""
    log.info("%s: analysing study %r", store.name, study)
    return analysis_to_json(analyze(store, study, baseline, **levels))


def write_analysis(analysis: Analysis, out: str | Path) -> dict[str, Path]:
    """Write report.html (self-contained), report.md and the PNG figures of ``analysis`` into ``out``.

    Each file is written into a fresh private folder inside ``out`` first, then renamed over
    its name in ``out``: a rename replaces whatever had that name, a symlink included, and
    never writes through it, so a ``report.html`` link planted in ``out`` is replaced, not
    followed to the file it names. A reader of ``out`` sees each file whole or not at all.
    """
    # imported here: matplotlib and jinja2 take a second that report_numbers (JSON) does not need
    from dropoutlab.report.html import write_report
    from dropoutlab.report.sections import report_sections

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".dropoutlab-report-", dir=out) as staging:
        written = write_report(staging, f"dropoutlab report: {analysis.study}", [f.text for f in analysis.headline],
                               report_sections(analysis), exploratory=[f.text for f in analysis.exploratory])  # fmt: skip
        paths = {}
        for key, path in written.items():
            paths[key] = out / Path(path).name
            os.replace(path, paths[key])
    log.info("%s: wrote report.html, report.md and %d figures", out, len(paths) - 2)
    return paths


def write_study_report(store, study: str, out: str | Path, baseline=None, **levels) -> dict[str, Path]:
    """``dropoutlab report --out DIR``: ``write_analysis`` of ``analyze`` (same arguments). A bad
    ``baseline``, ``alpha``, ``confidence`` or ``min_effect`` raises ``DropoutlabError`` before
    any file is written."""
    log.info("%s: analysing study %r", store.name, study)
    analysis = analyze(store, study, baseline, **levels)
    log.info("%s: analysed; writing the report into %s", study, out)
    return write_analysis(analysis, out)
