"""Stochastic depth ("drop path"): drop a whole sample's residual branch.

Huang, Sun, Liu, Sedra and Weinberger, "Deep Networks with Stochastic Depth", ECCV 2016,
https://arxiv.org/abs/1603.09382 ; the per-sample form of timm's ``drop_path``
(``timm/layers/drop.py``).

In training, each sample's residual branch output is zeroed with probability ``p`` (the
whole tensor of that sample: every channel and position together), and the branches that
survive are scaled by ``1 / (1 - p)``, so the block computes ``x + branch(x)`` in
expectation and evaluation needs no rescaling (Huang et al. scale at test time instead;
the two are equivalent in expectation). Put it on the branch, never on the shortcut:
``x + drop_path(branch(x), p, training)``.
"""

from __future__ import annotations

import torch
from torch import nn


def drop_path(
    x: torch.Tensor, p: float, training: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Zero each sample of ``x`` (axis 0) with probability ``p`` and scale the rest by ``1 / (1 - p)``.

    The identity (``x`` itself, no random draw) when not ``training`` or when ``p == 0``.
    ``generator`` draws the mask (the global generator when ``None``).
    """
    if not training or p == 0.0:
        return x
    keep = 1.0 - p
    mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)
    mask.bernoulli_(keep, generator=generator).div_(keep)
    return x * mask


class DropPath(nn.Module):
    """Stochastic depth on a residual branch, at a named slot of a model.

    Args:
        p: probability of dropping a sample's branch, in [0, 1).
        slot: the study-file name of this position, e.g. ``"block"``.
    """

    kind = "droppath"
    applies_to = frozenset({"residual"})

    def __init__(self, p: float, slot: str | None = None) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop-path rate must be in [0, 1), got {p}")
        self.p = float(p)
        self.slot = slot

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}" + (f", slot={self.slot!r}" if self.slot else "")
