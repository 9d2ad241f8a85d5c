"""Training: the one run lifecycle (``loop``) and the engines that train K >= 1 runs at once."""

from dropoutlab.train.early_stopping import EarlyStopping
from dropoutlab.train.loop import ENGINES, Engine, environment, train_run, train_runs
from dropoutlab.train.plan import plan_stacks, stack_key
from dropoutlab.train.single import SingleEngine, evaluate, make_optimizer
from dropoutlab.train.stacked import StackedEngine

__all__ = [
    "ENGINES",
    "EarlyStopping",
    "Engine",
    "SingleEngine",
    "StackedEngine",
    "environment",
    "evaluate",
    "make_optimizer",
    "plan_stacks",
    "stack_key",
    "train_run",
    "train_runs",
]
