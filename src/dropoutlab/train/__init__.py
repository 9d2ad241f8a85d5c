"""Training: the loop of one run and early stopping."""

from dropoutlab.train.early_stopping import EarlyStopping
from dropoutlab.train.loop import RunResult, evaluate, make_optimizer, train_run

__all__ = ["EarlyStopping", "RunResult", "evaluate", "make_optimizer", "train_run"]
