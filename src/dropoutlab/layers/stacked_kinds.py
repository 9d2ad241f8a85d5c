"""The stacked forms of the dropout kinds of :mod:`dropoutlab.layers.kinds`: each a
:class:`~dropoutlab.layers.stacked.StackedLayer` registered for its module, so that
:class:`~dropoutlab.layers.stacked.StackedNet` trains M runs' layers of that kind as one.

Randomness: each stacked form draws member ``m``'s noise from ``generators[m]`` alone, in the
member's own shape and sample order, so member ``m`` gets exactly the noise its own function
(:mod:`~dropoutlab.layers.kinds`) would draw from that generator, whatever its neighbours in
the stack. Masks are drawn as float32 uniforms compared with the keep probability, whatever
the activations' dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from dropoutlab.layers.kinds import (
    AlphaDropout,
    ConcreteDropout,
    DropBlock,
    DropConnectLinear,
    GaussianDropout,
    ScaledDropout,
    SpatialDropout,
    alpha_constants,
    block_gamma,
    block_keep,
    concrete_keep,
    negative_entropy,
)
from dropoutlab.layers.stacked import Activations, StackedLayer, drawing_members, register_stacked
from dropoutlab.layers.standard import StackedLinear, stacked_linear


def _apart(a: Activations) -> tuple[str, torch.Tensor]:
    """``a``'s members apart: the output layout and a member-major view ``(M, B, ...)`` of
    ``a.x``, in which member ``m``'s slice has the shape of its own activations.

    A grouped input is copied out to each member; a shared one is given to each member as a
    stride-0 view (a batch of images comes out ``member``, anything else ``flat``, as
    :class:`~dropoutlab.layers.dropout.StackedDropout` does); ``image`` ``(B, M*C, H, W)`` is
    viewed as ``(M, B, C, H, W)`` without a copy.
    """
    a = a.per_member()
    if a.layout == "shared":
        if a.x.dim() == 4:
            return "member", a.x.unsqueeze(0).expand(a.members, *a.x.shape)
        return "flat", a.flat()
    if a.layout == "image":
        return "image", a.x.unflatten(1, (a.members, -1)).transpose(0, 1)
    if a.layout in ("member", "flat"):
        return a.layout, a.x
    raise ValueError(f"unknown layout {a.layout!r}")


def _together(a: Activations, layout: str, out: torch.Tensor) -> Activations:
    """Member-major ``out`` ``(M, B, ...)`` back in ``layout`` (the first result of :func:`_apart`)."""
    if layout == "image":
        out = out.transpose(0, 1).flatten(1, 2)
    return a.to(out, layout)


def _per_member(values: torch.Tensor, like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Per-member ``values`` ``(M,)`` shaped to broadcast over member-major ``like`` ``(M, ...)``."""
    return values.to(dtype or like.dtype).view(-1, *[1] * (like.dim() - 1))


def _draw(
    shape: Sequence[int],
    generators: Sequence[torch.Generator | None],
    device: torch.device,
    fill: Callable[[torch.Tensor, torch.Generator | None], object],
    rows: Sequence[int] | None = None,
) -> torch.Tensor:
    """Noise ``(len(generators), *shape)`` (float32): row ``m`` filled by ``fill(row, generators[m])``
    for ``m`` in ``rows`` (all rows when None), zeros elsewhere.

    Each row is a contiguous tensor of one member's own shape, so its draws are exactly those
    of the member's own function with the same generator.
    """
    rows = range(len(generators)) if rows is None else rows
    full = len(rows) == len(generators)
    out = (torch.empty if full else torch.zeros)(
        (len(generators), *shape), dtype=torch.float32, device=device
    )
    for m in rows:
        fill(out[m], generators[m])
    return out


def _fill_uniform(row: torch.Tensor, generator: torch.Generator | None) -> None:
    row.uniform_(generator=generator)


def _fill_normal(row: torch.Tensor, generator: torch.Generator | None) -> None:
    row.normal_(generator=generator)


class _MemberRates:
    """Each member's drop rate held by a stacked layer: ``keep`` (1 - rate) and ``scale``
    (1 / keep) as buffers, a generator per member, and which members draw (``rows``; none:
    ``identity``). Mixed into stacked layers, which are ``nn.Module``s."""

    def _set_rates(self, rates: Sequence[float]) -> None:
        self.register_buffer("keep", torch.tensor([1.0 - r for r in rates], dtype=torch.float32))
        self.register_buffer("scale", torch.tensor([1.0 / (1.0 - r) for r in rates], dtype=torch.float32))
        self.generators: list[torch.Generator | None] = [None] * len(rates)
        self._rows_of_keep()

    def _rows_of_keep(self) -> None:
        self.rows = drawing_members(self.keep)
        self.identity = not self.rows


class _StackedRate(_MemberRates, StackedLayer):
    """The stacked form of a fixed-rate kind: member ``m``'s rate ``1 - keep[m]`` (0, the
    identity, for a member without this layer) and its own generator ``generators[m]``.

    Members at rate 0 draw nothing and are left exactly as they are. A rate is a setting
    of its run, not a weight: :meth:`member_state` gives nothing back.
    """

    random = True
    any_layout = True
    mixable = True

    def __init__(self, rates: Sequence[float]) -> None:
        super().__init__()
        self.rates = [float(r) for r in rates]  # as given, for constants computed at each step
        self._set_rates(rates)

    @classmethod
    def from_members(cls, template, members, **options):
        return cls([m.p if m is not None else 0.0 for m in members])

    def select(self, index: torch.Tensor) -> None:
        self.generators = [self.generators[i] for i in index.tolist()]
        self.rates = [self.rates[i] for i in index.tolist()]
        super().select(index)
        self._rows_of_keep()

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        return {}

    def extra_repr(self) -> str:
        return "rates=[" + ", ".join(f"{r:g}" for r in self.rates) + "]"


@register_stacked(ScaledDropout)
class StackedScaledDropout(_StackedRate):
    """:class:`ScaledDropout` of M members. Not the identity in eval mode: each member is
    multiplied by its keep probability, so a ``shared`` input becomes one per member."""

    def forward(self, a: Activations) -> Activations:
        if self.identity:
            return a
        layout, x = _apart(a)
        if not self.training:
            return _together(a, layout, x * _per_member(self.keep, x))
        u = _draw(x.shape[1:], self.generators, x.device, _fill_uniform, self.rows)
        return _together(a, layout, x * (u < _per_member(self.keep, u)))


@register_stacked(GaussianDropout)
class StackedGaussianDropout(_StackedRate):
    """:class:`GaussianDropout` of M members, each with its own noise variance ``p / (1 - p)``."""

    def __init__(self, rates: Sequence[float]) -> None:
        super().__init__(rates)
        self.register_buffer("sigma", torch.tensor([math.sqrt(r / (1.0 - r)) for r in rates]))

    def forward(self, a: Activations) -> Activations:
        if not self.training or self.identity:
            return a
        layout, x = _apart(a)
        noise = _draw(x.shape[1:], self.generators, x.device, _fill_normal, self.rows)
        return _together(a, layout, x * (noise * _per_member(self.sigma, noise) + 1.0).to(x.dtype))


@register_stacked(AlphaDropout)
class StackedAlphaDropout(_StackedRate):
    """:class:`AlphaDropout` of M members, each with its own constants (:func:`alpha_constants`)."""

    def __init__(self, rates: Sequence[float]) -> None:
        super().__init__(rates)
        a, offset, dropped = zip(*[alpha_constants(r) for r in rates], strict=True)
        self.register_buffer("a", torch.tensor(a, dtype=torch.float32))
        self.register_buffer("offset", torch.tensor(offset, dtype=torch.float32))
        self.register_buffer("dropped", torch.tensor(dropped, dtype=torch.float32))

    def forward(self, a: Activations) -> Activations:
        if not self.training or self.identity:
            return a
        layout, x = _apart(a)
        u = _draw(x.shape[1:], self.generators, x.device, _fill_uniform, self.rows)
        kept = u < _per_member(self.keep, u)
        out = torch.where(
            kept, x * _per_member(self.a, x) + _per_member(self.offset, x), _per_member(self.dropped, x)
        )
        return _together(a, layout, out)


@register_stacked(SpatialDropout)
class StackedSpatialDropout(_StackedRate):
    """:class:`SpatialDropout` of M members: a mask ``(B, C)`` per member, over each map."""

    def forward(self, a: Activations) -> Activations:
        if not self.training or self.identity:
            return a
        layout, x = _apart(a)
        if x.dim() < 4:
            raise ValueError(f"spatial dropout needs channels, got activations of shape {tuple(a.x.shape)}")
        u = _draw((*x.shape[1:3], *[1] * (x.dim() - 3)), self.generators, x.device, _fill_uniform, self.rows)
        factor = (u < _per_member(self.keep, u)).to(x.dtype) * _per_member(self.scale, x)
        return _together(a, layout, x * factor)


@register_stacked(DropBlock)
class StackedDropBlock(_StackedRate):
    """:class:`DropBlock` of M members, each with its own rate and block size.

    The members' block masks are computed together for each block size (usually one), and
    each member's kept units are scaled by its own kept fraction.
    """

    def __init__(self, rates: Sequence[float], block_sizes: Sequence[int]) -> None:
        super().__init__(rates)
        self.block_sizes = list(block_sizes)

    @classmethod
    def from_members(cls, template, members, **options):
        return cls([m.p if m is not None else 0.0 for m in members],
                   [m.block_size if m is not None else template.block_size for m in members])  # fmt: skip

    def select(self, index: torch.Tensor) -> None:
        self.block_sizes = [self.block_sizes[i] for i in index.tolist()]
        super().select(index)

    def forward(self, a: Activations) -> Activations:
        if not self.training or self.identity:
            return a
        layout, x = _apart(a)
        if x.dim() != 5:
            raise ValueError(f"dropblock needs image activations, got shape {tuple(a.x.shape)}")
        b, c, h, w = x.shape[1:]
        keep = torch.ones(x.shape, dtype=torch.float32, device=x.device)
        for block_size in sorted({self.block_sizes[m] for m in self.rows}):
            rows = [m for m in self.rows if self.block_sizes[m] == block_size]
            size = min(block_size, h, w)
            u = _draw((b, c, h - size + 1, w - size + 1), [self.generators[m] for m in rows], x.device,
                      _fill_uniform)  # fmt: skip
            gamma = torch.tensor([block_gamma(self.rates[m], size, h, w) for m in rows], device=x.device)
            seeds = (u < _per_member(gamma, u)).float().flatten(0, 1)
            keep[rows] = block_keep(seeds, size).unflatten(0, (len(rows), b))
        kept = keep.flatten(1).sum(1).clamp(min=1.0)
        factor = keep * _per_member(keep[0].numel() / kept, keep)
        return _together(a, layout, x * factor.to(x.dtype))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, block_sizes={self.block_sizes}"


@register_stacked(DropConnectLinear)
class StackedDropConnectLinear(_MemberRates, StackedLinear):
    """:class:`DropConnectLinear` of M members: :class:`~dropoutlab.layers.standard.StackedLinear`
    whose weights are masked in training, one mask per member and minibatch.

    A member whose model has a plain ``nn.Linear`` here (rate 0) keeps all its weights.
    Each member's mask is drawn in its own ``(out, in)`` layout from its own generator.
    ``member_state`` gives ``weight`` and ``bias`` back in ``nn.Linear``'s layout.
    """

    random = True

    def __init__(
        self, weight: torch.Tensor, bias: torch.Tensor, in_out: bool, rates: Sequence[float] = ()
    ) -> None:
        super().__init__(weight, bias, in_out)
        self._set_rates(list(rates) or [0.0] * weight.shape[0])

    @classmethod
    def from_members(cls, template, members, **options):
        if any(m is None for m in members):
            raise ValueError(
                "dropconnect replaces a dense layer: every member needs one (nn.Linear at rate 0)"
            )
        layer = StackedLinear.from_members(
            template, members, **options
        )  # the weights, stacked as for nn.Linear
        rates = [m.p if isinstance(m, DropConnectLinear) else 0.0 for m in members]
        return cls(layer.weight.data, layer.bias.data, layer.in_out, rates)

    def select(self, index: torch.Tensor) -> None:
        self.generators = [self.generators[i] for i in index.tolist()]
        super().select(index)
        self._rows_of_keep()

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        state = super().member_state(i)
        return {"weight": state["weight"], "bias": state["bias"]}

    def forward(self, a: Activations) -> Activations:
        if not self.training or self.identity:
            return super().forward(a)
        w = self.weight
        out_in = w.shape[1:][::-1] if self.in_out else w.shape[1:]
        u = _draw(out_in, self.generators, w.device, _fill_uniform, self.rows)
        factor = (u < _per_member(self.keep, u)).to(w.dtype) * _per_member(self.scale, u, w.dtype)
        w = w * (factor.transpose(1, 2) if self.in_out else factor)
        if a.layout == "grouped":
            return a.to(stacked_linear(a.x.flatten(2), w, self.bias, self.in_out, a.group_sizes), "flat")
        return a.to(stacked_linear(a.flat(), w, self.bias, self.in_out), "flat")

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rates=[" + ", ".join(f"{1 - k:g}" for k in self.keep.tolist()) + "]"


@register_stacked(ConcreteDropout)
class StackedConcreteDropout(StackedLayer):
    """:class:`ConcreteDropout` of M members: ``p_logit`` is a parameter ``(M,)``, one learned
    rate per member.

    A member without this layer (``active`` false) is left exactly as it is; its entry of
    ``p_logit`` is unused (no gradient reaches it) and gives nothing back in
    :meth:`member_state`. :meth:`penalty` sums the members' own penalties
    (:meth:`penalties`): since each member's loss depends on its own weights only, adding the
    sum to the summed loss adds each member's penalty to its own loss.
    """

    random = True
    any_layout = True

    def __init__(
        self,
        p_logit: torch.Tensor,
        active: torch.Tensor,
        temperature: torch.Tensor,
        dropout_regularizer: torch.Tensor,
    ) -> None:
        super().__init__()
        self.p_logit = nn.Parameter(p_logit)
        self.register_buffer("active", active)
        self.register_buffer("temperature", temperature)
        self.register_buffer("dropout_regularizer", dropout_regularizer)
        self.generators: list[torch.Generator | None] = [None] * len(p_logit)
        self.features = 0  # elements of one sample of the last input, as each member's own module counts
        self._rows_of_active()

    def _rows_of_active(self) -> None:
        self.rows = [m for m, on in enumerate(self.active.tolist()) if on]
        self.identity = not self.rows

    @classmethod
    def from_members(cls, template, members, **options):
        own = [m if m is not None else template for m in members]
        return cls(
            torch.stack([m.p_logit.detach().clone() if m is not None else torch.zeros(()) for m in members]),
            torch.tensor([m is not None for m in members]),
            torch.tensor([m.temperature for m in own], dtype=torch.float32),
            torch.tensor([m.dropout_regularizer for m in own], dtype=torch.float32),
        )

    def select(self, index: torch.Tensor) -> None:
        self.generators = [self.generators[i] for i in index.tolist()]
        super().select(index)
        self._rows_of_active()

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        return {"p_logit": self.p_logit[i].detach().clone()} if self.active[i] else {}

    def current_rates(self) -> list[float]:
        """Each member's learned rate (0.0 for a member without this layer)."""
        rates = torch.sigmoid(self.p_logit.detach()) * self.active
        return rates.tolist()

    def penalties(self) -> torch.Tensor:
        """Each member's :meth:`ConcreteDropout.penalty` ``(M,)`` (0 for a member without this layer)."""
        terms = self.dropout_regularizer * self.features * negative_entropy(self.p_logit)
        return torch.where(self.active, terms, torch.zeros_like(terms))

    def penalty(self) -> torch.Tensor:
        """The sum of the members' penalties, a scalar tensor."""
        return self.penalties().sum()

    def forward(self, a: Activations) -> Activations:
        if self.identity:
            return a
        x = a.x
        per_sample = x[0].numel() if a.layout in ("shared", "image") else x[0, 0].numel()
        self.features = per_sample // a.members if a.layout == "image" else per_sample
        if not self.training:
            return a
        layout, x = _apart(a)
        u = _draw(x.shape[1:], self.generators, x.device, _fill_uniform, self.rows)
        factor = concrete_keep(u, _per_member(self.p_logit, u), _per_member(self.temperature, u))
        if len(self.rows) < len(self.generators):  # members without the layer: exactly the identity
            factor = torch.where(_per_member(self.active, u, torch.bool), factor, 1.0)
        return _together(a, layout, x * factor.to(x.dtype))

    def extra_repr(self) -> str:
        return "rates=[" + ", ".join(f"{r:.4g}" for r in self.current_rates()) + "]"


__all__ = [
    "StackedAlphaDropout",
    "StackedConcreteDropout",
    "StackedDropBlock",
    "StackedDropConnectLinear",
    "StackedGaussianDropout",
    "StackedScaledDropout",
    "StackedSpatialDropout",
]
