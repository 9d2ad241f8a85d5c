"""Standard (Bernoulli) dropout with a named slot.

Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks from Overfitting",
JMLR 15 (2014), https://jmlr.org/papers/v15/srivastava14a.html

During training each activation is zeroed with probability ``p`` and the survivors are
scaled by ``1 / (1 - p)`` ("inverted dropout", as PyTorch and Keras do), so evaluation
needs no rescaling and the layer is the identity in eval mode.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Zero each element of ``x`` with probability ``p`` when ``training``; identity otherwise."""
    if not training or p == 0.0:
        return x
    return F.dropout(x, p=p, training=True)


class Dropout(nn.Module):
    """Dropout at a named slot of a model (``slot`` is ``None`` for a fixed-rate layer).

    Args:
        p: probability of zeroing an element, in [0, 1).
        slot: the study-file name of this position, e.g. ``"hidden1"`` or ``"conv"``.
    """

    def __init__(self, p: float, slot: str | None = None) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {p}")
        self.p = float(p)
        self.slot = slot

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}" + (f", slot={self.slot!r}" if self.slot else "")
