"""Early stopping: the placeholder ``pass`` of seed 001, filled in."""

from __future__ import annotations

import copy

from torch import nn


class EarlyStopping:
    """Track a monitored metric and keep the best weights seen so far.

    Losses are minimised and accuracies maximised. An epoch improves when it beats the
    best value by more than ``min_delta``; after ``patience`` epochs in a row without improvement
    (at least one), :attr:`should_stop` turns true, as in Keras' ``EarlyStopping``.
    """

    def __init__(self, monitor: str, patience: int, min_delta: float = 0.0) -> None:
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.sign = 1.0 if monitor.endswith("loss") else -1.0
        self.best_value = float("inf")
        self.best_epoch: int | None = None
        self.best_state: dict | None = None
        self.waited = 0

    def update(self, epoch: int, metrics: dict[str, float], model: nn.Module) -> None:
        """Record the metrics of ``epoch`` (1-based); snapshot the weights when they improve."""
        value = self.sign * metrics[self.monitor]
        if value < self.best_value - self.min_delta:
            self.best_value, self.best_epoch, self.waited = value, epoch, 0
            self.best_state = copy.deepcopy(model.state_dict())
        else:
            self.waited += 1

    @property
    def should_stop(self) -> bool:
        """True once ``patience`` epochs in a row have not improved."""
        return self.waited >= max(self.patience, 1)
