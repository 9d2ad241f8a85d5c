"""Data augmentation on whole batches, on the device: random crop with padding, horizontal flip.

As airbench does it: one batch of images at a time, no per-sample Python, never on the
validation or test sets. A run's augmentation is drawn from a generator of its own, seeded
by its seed, so the same run sees the same augmented batches with either engine; runs with
the same seed (which draw the same batches) share it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch.nn import functional as F

AUGMENT_SALT = 0x5EED_A06  # keeps a run's augmentation stream apart from its data order's


def crop_padding(height: int) -> int:
    """Pixels of zero padding before a random crop: an eighth of the side, at least 1
    (4 for CIFAR-10's 32x32, 3 for 28x28, 1 for digits' 8x8)."""
    return max(1, height // 8)


@dataclass(frozen=True)
class Augmentation:
    """One batch's draws: ``flip`` ``(B,)`` booleans, ``shift`` ``(B, 2)`` crop offsets in
    ``[0, 2 * pad]`` (row, column); ``None`` where that augmentation is off."""

    flip: torch.Tensor | None
    shift: torch.Tensor | None
    pad: int

    def repeat(self, times: int) -> Augmentation:
        """The same draws for ``times`` copies of the batch, one after the other."""
        return Augmentation(
            None if self.flip is None else self.flip.repeat(times),
            None if self.shift is None else self.shift.repeat(times, 1),
            self.pad,
        )


def augmentation_generator(seed: int, device: torch.device) -> torch.Generator:
    """The generator of a run's augmentation draws."""
    return torch.Generator(device=device).manual_seed((seed ^ AUGMENT_SALT) % 2**63)


def draw_augmentation(
    ops: tuple[str, ...], batch: int, height: int, generator: torch.Generator
) -> Augmentation:
    """Draw ``ops`` (``crop``, ``flip``) for a batch of ``batch`` images of side ``height``."""
    device = generator.device
    pad = crop_padding(height)
    flip = torch.rand(batch, generator=generator, device=device) < 0.5 if "flip" in ops else None
    shift = (
        torch.randint(0, 2 * pad + 1, (batch, 2), generator=generator, device=device)
        if "crop" in ops
        else None
    )
    return Augmentation(flip, shift, pad)


def apply_augmentation(x: torch.Tensor, aug: Augmentation) -> torch.Tensor:
    """``x`` ``(N, C, H, W)`` augmented by ``aug`` (drawn for N images): each image shifted
    within its zero-padded frame (a random crop of the original size), then flipped."""
    if aug.shift is not None:
        n, c, h, w = x.shape
        padded = F.pad(x, (aug.pad,) * 4)
        arange = partial(torch.arange, device=x.device)
        rows = (aug.shift[:, :1] + arange(h))[:, None, :, None]  # (N, 1, H, 1)
        cols = (aug.shift[:, 1:] + arange(w))[:, None, None, :]  # (N, 1, 1, W)
        x = padded[arange(n)[:, None, None, None], arange(c)[None, :, None, None], rows, cols]
    if aug.flip is not None:
        x = torch.where(aug.flip[:, None, None, None], x.flip(3), x)
    # a fresh tensor in PyTorch's default strides, whatever the indexing made: a convolution's
    # algorithm (and its rounding) depends on them, and a run must compute alike in either engine
    return torch.empty(x.shape, dtype=x.dtype, device=x.device).copy_(x)
