"""Variational dropout for recurrent networks: one mask per sequence, shared by every time step.

Gal and Ghahramani, "A Theoretically Grounded Application of Dropout in Recurrent Neural
Networks", NeurIPS 2016, https://arxiv.org/abs/1512.05287

Standard dropout on a sequence draws a new mask at every time step; variational dropout
draws one Bernoulli mask per sequence and feature and applies it at all ``T`` steps, to the
inputs and (inside the recurrence) to the previous hidden state fed to the gates. Survivors
are scaled by ``1 / (1 - p)`` ("inverted dropout"), so the layer is the identity in eval mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def variational_mask(
    shape: Sequence[int],
    p: float,
    training: bool,
    device: torch.device | str,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor | None:
    """A mask of ``shape`` whose elements are 0 with probability ``p`` and ``1 / (1 - p)`` otherwise.

    ``None`` (nothing to multiply, no random draw) when not ``training`` or when ``p == 0``.
    Multiply it into every time step of a sequence to drop the same units at all steps.
    """
    if not training or p == 0.0:
        return None
    keep = 1.0 - p
    mask = torch.empty(tuple(shape), dtype=dtype, device=device)
    return mask.bernoulli_(keep, generator=generator).div_(keep)


class VariationalDropout(nn.Module):
    """Variational (per-sequence) dropout at a named slot of a model.

    ``forward`` takes a sequence ``x`` of shape ``(B, T, F)`` (time on axis 1; any further
    axes are features too) and multiplies every time step by one ``(B, 1, F)`` mask.
    :meth:`sample_mask` draws a mask for a recurrent state, which the recurrent loop then
    multiplies into the state at every step (see ``dropoutlab.models.families``).

    Args:
        p: probability of dropping a unit for the whole sequence, in [0, 1).
        slot: the study-file name of this position, e.g. ``"input"`` or ``"recurrent"``.
    """

    kind = "variational"
    applies_to = frozenset({"sequence"})

    def __init__(self, p: float, slot: str | None = None) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"variational dropout rate must be in [0, 1), got {p}")
        self.p = float(p)
        self.slot = slot

    def sample_mask(self, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor | None:
        """A mask of ``shape`` on ``like``'s device and dtype, or ``None`` in eval mode or at ``p = 0``."""
        return variational_mask(shape, self.p, self.training, like.device, dtype=like.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 3:
            raise ValueError(f"variational dropout needs a sequence (B, T, F), got shape {tuple(x.shape)}")
        mask = self.sample_mask((x.shape[0], 1, *x.shape[2:]), x)
        return x if mask is None else x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}" + (f", slot={self.slot!r}" if self.slot else "")
