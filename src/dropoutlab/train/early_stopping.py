"""Early stopping: the placeholder ``pass`` in the Fashion-MNIST notebook's ``train()``, filled in."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


class EarlyStopping:
    """Track a monitored metric: its best epoch, and (``keep_best``) the weights of that epoch.

    Losses are minimised and accuracies maximised. An epoch improves when it beats the
    best value by more than ``min_delta``; after ``patience`` epochs in a row without
    improvement (at least one), :attr:`should_stop` turns true, as in Keras'
    ``EarlyStopping``. ``patience=None`` never stops: every run tracks its best epoch this
    way (by ``val_loss`` without early stopping), so ``best_epoch`` has one meaning. A value
    that was not measured (``None``) or is not finite never improves.
    """

    def __init__(
        self, monitor: str, patience: int | None = None, min_delta: float = 0.0, keep_best: bool = False
    ) -> None:
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.keep_best = keep_best
        self.sign = 1.0 if monitor.endswith("loss") else -1.0
        self.best_value = math.inf
        self.best_epoch: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.waited = 0

    def update(self, epoch: int, value: float | None, weights: Callable[[], dict[str, torch.Tensor]]) -> None:
        """Record ``value`` of the monitored metric at ``epoch`` (1-based); ``weights()`` gives a
        copy of the current weights, taken only when they improve and ``keep_best``."""
        score = self.sign * value if value is not None else math.nan
        if score < self.best_value - self.min_delta:  # False for NaN
            self.best_value, self.best_epoch, self.waited = score, epoch, 0
            if self.keep_best:
                self.best_state = weights()
        else:
            self.waited += 1

    @property
    def should_stop(self) -> bool:
        """True once ``patience`` epochs in a row have not improved (never with ``patience=None``)."""
        return self.patience is not None and self.waited >= max(self.patience, 1)
