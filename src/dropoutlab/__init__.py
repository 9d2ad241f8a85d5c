"""dropoutlab: controlled dropout and regularization studies on PyTorch, read with statistics.

The data flows one way: study file → spec → runs → store → report::

    import dropoutlab as dl

    study = dl.load_study("examples/digits_dropout_comparison_mlp.toml")
    with dl.Store("dropoutlab.db") as store:
        dl.run_study(study, store)
        # or seeds added until decided (docs/decisions.md): the design, and the decision to apply
        # dl.run_until_decided(study, store, dl.Design(baseline, study.min_effect, start=3), dl.decide)
    results = dl.open_store("dropoutlab.db")
    results.summary(); results.compare(); results.plot_comparison()
"""

import importlib

from dropoutlab.errors import DropoutlabError
from dropoutlab.version import __version__

# Each name is imported from its module when first asked for (PEP 562): `dropoutlab --help`
# then answers without importing torch, and `dropoutlab run` does not import the report.
_LAZY = {
    "load_dataset": "dropoutlab.data",
    "Data": "dropoutlab.data",
    "Store": "dropoutlab.store",
    "define_study": "dropoutlab.study",
    "expand_runs": "dropoutlab.study",
    "load_study": "dropoutlab.study",
    "run_study": "dropoutlab.study",
    "run_until_decided": "dropoutlab.study",
    "Design": "dropoutlab.report.decide",
    "decide": "dropoutlab.report.decide",
    "StudyResults": "dropoutlab.report.results",
    "open_store": "dropoutlab.report.results",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dropoutlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "Data",
    "Design",
    "DropoutlabError",
    "Store",
    "StudyResults",
    "__version__",
    "decide",
    "define_study",
    "expand_runs",
    "load_dataset",
    "load_study",
    "open_store",
    "run_study",
    "run_until_decided",
]
