"""The report: one analysis of a study, rendered as HTML, Markdown, JSON or notebook tables.

The entry points a user needs: ``analyze(store, study)`` computes the ``Analysis``
(``model.py``) once; ``StudyResults`` (``open_store(path)``) gives a study's runs, the
report's tables and figures in a notebook and writes the report files. Everything here reads
only the store, so a store made on another machine can be reported. The command line reaches
the rest through ``write.py`` (report files, JSON) and ``summary.py`` (the table printed after
a run).
"""

import importlib

# Each name is imported from its module when first asked for (PEP 562): the table printed at
# the end of `dropoutlab run` then needs only the intervals of `stats.py`, not the analysis.
_LAZY = {
    "Analysis": "dropoutlab.report.model",
    "Finding": "dropoutlab.report.model",
    "analyze": "dropoutlab.report.analysis",
    "StudyResults": "dropoutlab.report.results",
    "open_store": "dropoutlab.report.results",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dropoutlab.report' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
