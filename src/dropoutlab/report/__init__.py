"""The report: one analysis of a study, rendered as HTML, Markdown, JSON or notebook tables.

Everything here reads only the store, so a store made on another machine can be reported.
``analyze`` computes an ``Analysis`` once (``analysis.py``); ``write_study_report`` writes
report.html, report.md and the PNGs from it; ``report_numbers`` gives it as JSON-ready data
(``write.py``); ``summary_table`` is the text table printed after a run (``summary.py``).
"""

import importlib

# Each name is imported from its module when first asked for (PEP 562): the table printed at
# the end of `dropoutlab run` then needs only the intervals of `stats.py`, not the analysis.
_LAZY = {
    "Analysis": "dropoutlab.report.analysis",
    "analyze": "dropoutlab.report.analysis",
    "findings": "dropoutlab.report.analysis",
    "analysis_to_json": "dropoutlab.report.numbers",
    "Finding": "dropoutlab.report.findings",
    "rate_axis": "dropoutlab.report.findings",
    "compare": "dropoutlab.report.stats",
    "summarize": "dropoutlab.report.stats",
    "summary_table": "dropoutlab.report.summary",
    "report_numbers": "dropoutlab.report.write",
    "write_analysis": "dropoutlab.report.write",
    "write_study_report": "dropoutlab.report.write",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dropoutlab.report' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
