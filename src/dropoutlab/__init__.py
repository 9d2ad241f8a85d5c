"""dropoutlab: controlled dropout and regularization studies on PyTorch, read with statistics.

The data flows one way: study file → spec → runs → store → report::

    import dropoutlab as dl

    study = dl.load_study("examples/digits_dropout_comparison_mlp.toml")
    with dl.Store("dropoutlab.db") as store:
        dl.run_study(study, store)
    results = dl.open_store("dropoutlab.db")
    results.summary(); results.compare(); results.plot_comparison()
"""

from dropoutlab.data import load_dataset  # noqa: E402
from dropoutlab.errors import DropoutlabError  # noqa: E402
from dropoutlab.report.results import StudyResults, open_store  # noqa: E402
from dropoutlab.store import Store  # noqa: E402
from dropoutlab.study import expand_runs, load_study, run_study  # noqa: E402
from dropoutlab.version import __version__  # noqa: E402

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
