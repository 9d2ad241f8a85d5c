"""Standard (Bernoulli) dropout with a named slot.

Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks from Overfitting",
JMLR 15 (2014), https://jmlr.org/papers/v15/srivastava14a.html

During training each activation is zeroed with probability ``p`` and the survivors are
scaled by ``1 / (1 - p)`` ("inverted dropout", as PyTorch and Keras do), so evaluation
needs no rescaling and the layer is the identity in eval mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from dropoutlab.layers.stacked import Activations, StackedLayer, drawing_members, register_stacked


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

    kind = "standard"
    applies_to = frozenset({"dense", "image"})

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


def dropout_constants(keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(threshold, scale)`` of :func:`stacked_dropout` for keep probabilities ``keep`` ``(M,)``.

    A random int16 ``r`` passes ``r <= threshold`` for ``round(keep * 2^16)`` of its 2^16
    values, all of them when ``keep = 1``; ``scale`` is ``1 / keep``.
    """
    threshold = (torch.round(keep.double() * 65536) - 32769).clamp_(min=-32768).to(torch.int16)
    return threshold, 1.0 / keep


def stacked_dropout(
    x: torch.Tensor,
    layout: str,
    keep: torch.Tensor,
    generators: Sequence[torch.Generator | None],
    constants: tuple[torch.Tensor, torch.Tensor] | None = None,
    group_sizes: Sequence[int] | None = None,
    rows: Sequence[int] | None = None,
) -> torch.Tensor:
    """Inverted dropout with one keep probability per member (``keep`` has shape ``(M,)``).

    Each element of member ``m`` survives with probability ``keep[m]`` and is then scaled by
    ``1 / keep[m]``; a member with ``keep = 1`` is left exactly as it was. Member ``m``'s mask
    is drawn from ``generators[m]`` alone, in its own sample order, so it does not depend on
    which other members share the stack. The draw uses 16 random bits per element (four per
    64-bit draw, a third of the cost of ``torch.rand``), so the keep probability is rounded to
    a multiple of 2^-16 (rates off by at most 8e-6). ``constants`` are
    :func:`dropout_constants` of ``keep``, when the caller keeps them. A ``grouped`` ``x``
    ``(G, B, ...)`` (``group_sizes`` members read each group's input) gives the members'
    ``(M, B, ...)`` outputs without first copying the input out to each member. ``rows``
    (default: all) are the members that draw; the others must have ``keep = 1``, and their
    generators are left untouched.
    """
    members = keep.shape[0]
    if len(generators) != members:
        raise ValueError(f"stacked_dropout needs one generator per member: {members}, got {len(generators)}")
    threshold, scale = constants if constants is not None else dropout_constants(keep)
    per_member = x[0].numel() if layout == "grouped" else x.numel() // members
    bits = torch.empty((members, (per_member + 3) // 4), dtype=torch.int64, device=x.device)
    for m in range(members) if rows is None else rows:  # a row not drawn never passes the threshold
        bits[m].random_(-(2**63), None, generator=generators[m])
    mask = keep_mask(bits.view(torch.int16)[:, :per_member], threshold, scale.to(x.dtype))
    if layout == "grouped":  # (G, B, ...): each group's one input, masked for each of its members
        mask = mask.reshape(members, *x.shape[1:])
    elif layout in ("flat", "member"):
        mask = mask.reshape(x.shape)
    elif layout == "image":  # (B, M*C, H, W): each member's draws laid out as its own (B, C, H, W)
        b, channels = x.shape[0], x.shape[1] // members
        mask = mask.reshape(members, b, channels, *x.shape[2:]).transpose(0, 1).reshape(x.shape)
    else:
        raise ValueError(f"dropout needs a member axis, got layout {layout!r}")
    if layout != "grouped":
        return x * mask
    out = x.new_empty(mask.shape)  # written straight into each member's rows: no copy of the input per member
    start = 0
    for x_group, size in zip(x, group_sizes, strict=True):
        torch.mul(x_group, mask[start : start + size], out=out[start : start + size])
        start += size
    return out


def keep_mask(r: torch.Tensor, threshold: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Each member's mask from its random int16 row of ``r`` ``(M, N)``: ``scale[m]`` (1/keep)
    where ``r <= threshold[m]``, 0 where the element is dropped, in ``scale``'s dtype.

    One multiply by this mask is the whole dropout: on the CPU about twice as fast as scaling
    and then ``masked_fill_``, whose backward pass is a masked fill too. On the CPU each row is
    compared with its threshold as a scalar and written as floats at once, two to three times as fast
    as one broadcast comparison over the stack (``benchmarks/RESULTS.md``).
    """
    if r.device.type != "cpu":
        return (r <= threshold.view(-1, 1)) * scale.view(-1, 1)
    mask = torch.empty(r.shape, dtype=scale.dtype)
    for m in range(r.shape[0]):
        torch.le(r[m], threshold[m], out=mask[m])
    return mask.mul_(scale.view(-1, 1))


@register_stacked(Dropout)
class StackedDropout(StackedLayer):
    """Dropout of M members, each with its own rate and its own mask generator.

    ``keep`` holds each member's keep probability (1 - rate; 1 for a member whose model has
    no layer here, i.e. rate 0). The layer is the identity in eval mode, and in training
    when every member keeps everything (no mask is drawn). ``generators`` (one per member,
    set by the training engine) make each member's masks its own: see :func:`stacked_dropout`.
    """

    random = True
    any_layout = True
    mixable = True

    def __init__(self, keep: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("keep", keep)
        self.generators: list[torch.Generator | None] = [None] * len(keep)
        self._constants_of_keep()

    def _constants_of_keep(self) -> None:
        threshold, scale = dropout_constants(self.keep)
        self.register_buffer("threshold", threshold, persistent=False)
        self.register_buffer("scale", scale, persistent=False)
        self.rows = drawing_members(self.keep)
        self.identity = not self.rows  # read once, not at every step

    @classmethod
    def from_members(cls, template, members, **options):
        return cls(torch.tensor([1.0 - m.p if m is not None else 1.0 for m in members], dtype=torch.float32))

    def select(self, index: torch.Tensor) -> None:
        self.generators = [self.generators[i] for i in index.tolist()]
        self.register_buffer("keep", self.keep.index_select(0, index))
        self._constants_of_keep()

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        return {}  # a member's rate is a setting of its run, not a weight

    def forward(self, a: Activations) -> Activations:
        if not self.training or self.identity:
            return a
        if a.layout == "grouped" and not a.x.requires_grad:  # input data: masked group by group
            x = stacked_dropout(a.x, "grouped", self.keep, self.generators, (self.threshold, self.scale),
                                a.group_sizes, self.rows)  # fmt: skip
            return a.to(x, "member")
        a = a.per_member()
        if a.layout == "shared":  # the members' masks differ: give each its own copy
            a = a.to(a.image(), "image") if a.x.dim() == 4 else a.to(a.flat(), "flat")
        constants = (self.threshold, self.scale)
        return a.to(stacked_dropout(a.x, a.layout, self.keep, self.generators, constants, rows=self.rows))

    def extra_repr(self) -> str:
        return "rates=[" + ", ".join(f"{1 - k:g}" for k in self.keep.tolist()) + "]"
