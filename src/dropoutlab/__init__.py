"""dropoutlab: controlled dropout and regularization studies on PyTorch, read with statistics.

The data flows one way: study file → spec → runs → store → report::

    import dropoutlab as dl

    study = dl.load_study("examples/digits_dropout_comparison_mlp.toml")
    with dl.Store("dropoutlab.db") as store:
        dl.run_study(study, store)
    results = dl.open_store("dropoutlab.db")
    results.summary(); results.compare(); results.plot_comparison()
"""

from dropoutlab.data import load_dataset
from dropoutlab.errors import DropoutlabError
from dropoutlab.store import Store
from dropoutlab.study import expand_runs, load_study, run_study
from dropoutlab.version import __version__


def __getattr__(name: str):
    # the report (SciPy, matplotlib, jinja2) is imported when first asked for, so that
    # `dropoutlab run`, which trains before it reports, starts a second sooner
    if name in ("StudyResults", "open_store"):
        from dropoutlab.report import results

        return getattr(results, name)
    raise AttributeError(f"module 'dropoutlab' has no attribute {name!r}")


__all__ = [
    "DropoutlabError",
    "Store",
    "StudyResults",
    "__version__",
    "expand_runs",
    "load_dataset",
    "load_study",
    "open_store",
    "run_study",
]
