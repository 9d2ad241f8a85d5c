"""Stacked networks: M networks of one shape run as a single network, each with its own weights.

A dropout study trains many small networks that differ only in weights, dropout rates and
data order. Run one by one, each step is a handful of small matrix products and a lot of
Python; run as a stack, each layer becomes one batched operation over a leading member axis.
Each layer kind of a per-run model has a stacked form, an ``nn.Module`` registered with
:func:`register_stacked` for that kind (``layers/standard.py`` for PyTorch's layers,
``layers/dropout.py`` for dropout, ``layers/stacked_kinds.py`` for the other dropout kinds);
:class:`StackedNet` builds a stack from the members' own models by looking each of their
layers up in that registry.

Activations travel between stacked layers as :class:`Activations`, in one of five layouts,
converted only where a layer needs it:

``shared``  ``(B, ...)``: one input for all members (evaluation); no member axis yet;
``grouped`` ``(G, B, ...)``: one input per group of consecutive members (training: runs with
            the same seed draw the same batches); the group sizes travel with it;
``member``  ``(M, B, C, H, W)``: each member's own images (training);
``image``   ``(B, M*C, H, W)``: members folded into channels, member-major;
``flat``    ``(M, B, F)``: each member's feature vectors.

Members never mix: every operation acts on each member's slice alone, so a member whose
weights went to NaN does not touch the others.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn


def ungroup(x: torch.Tensor, group_sizes: Sequence[int]) -> torch.Tensor:
    """``grouped`` ``x`` ``(G, B, ...)`` as ``member`` ``(M, B, ...)``: each group's input copied
    to each of its members."""
    sizes = torch.tensor(group_sizes, device=x.device)
    return x.repeat_interleave(sizes, dim=0, output_size=sum(group_sizes))


@dataclass(frozen=True)
class Activations:
    """A stack's activations ``x`` in ``layout`` (see the module docstring) for ``members`` members."""

    x: torch.Tensor
    layout: str
    members: int
    group_sizes: tuple[int, ...] | None = None

    def to(self, x: torch.Tensor, layout: str | None = None) -> Activations:
        """New activations ``x``, in ``layout`` (default: this one's)."""
        layout = layout or self.layout
        return replace(
            self, x=x, layout=layout, group_sizes=self.group_sizes if layout == "grouped" else None
        )

    def per_member(self) -> Activations:
        """Grouped activations copied out to each member (``member`` layout); others as they are."""
        if self.layout != "grouped":
            return self
        return self.to(ungroup(self.x, self.group_sizes), "member")

    def image(self) -> torch.Tensor:
        """``x`` as ``(B, M*C, H, W)``, members folded into channels."""
        a, m = self.per_member(), self.members
        if a.layout == "image":
            return a.x
        if a.layout == "member":
            b, c = a.x.shape[1:3]
            return a.x.transpose(0, 1).reshape(b, m * c, *a.x.shape[3:])
        if a.layout == "shared":
            return a.x.repeat(1, m, 1, 1)
        raise ValueError(f"cannot read layout {a.layout!r} as images")

    def flat(self) -> torch.Tensor:
        """``x`` as ``(M, B, F)``, each member's samples flattened."""
        a, m = self.per_member(), self.members
        if a.layout == "flat":
            return a.x
        if a.layout == "member":
            return a.x.reshape(a.x.shape[0], a.x.shape[1], -1)
        if a.layout == "image":
            return a.x.reshape(a.x.shape[0], m, -1).transpose(0, 1)
        if a.layout == "shared":
            x = a.x.reshape(a.x.shape[0], -1)
            return x.unsqueeze(0).expand(m, *x.shape)
        raise ValueError(f"unknown layout {a.layout!r}")


class StackedLayer(nn.Module):
    """A layer of a stack: the same layer of M members, their tensors stacked on a first axis.

    Subclasses build themselves in :meth:`from_members` from the template's layer and each
    member's own (``None`` where a member has no such layer: a dropout slot at rate 0), map
    :class:`Activations` to :class:`Activations` in ``forward``, and give a member's tensors
    back keyed as in its own module's ``state_dict()`` (:meth:`member_state`). Every
    parameter and buffer has the member axis first, so :meth:`select` needs no override.
    """

    random = False  # draws random numbers: gets one generator per member (``generators``)
    # holds no weights and leaves a member without this layer exactly as it is, drawing nothing
    # for it: members with other kinds of layer here may share the position (:class:`StackedMixed`)
    mixable = False
    any_layout = False  # reads any layout as it comes (activations, dropout)
    reads_images = False  # wants image activations (convolution, pooling, 2-D batch norm)

    @classmethod
    def from_members(cls, template: nn.Module, members: list[nn.Module | None], **options) -> StackedLayer:
        """The stacked form of ``members``' layers; ``options``: ``channels_last``, ``conv_loop``."""
        raise NotImplementedError

    @torch.no_grad()
    def select(self, index: torch.Tensor) -> None:
        """Keep only the members at ``index`` (a 1-D tensor of positions)."""
        for name, param in list(self.named_parameters(recurse=False)):
            setattr(self, name, nn.Parameter(param.index_select(0, index)))
        for name, buf in list(self.named_buffers(recurse=False)):
            self.register_buffer(name, buf.index_select(0, index))

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        """A copy of member ``i``'s tensors, keyed as in its own module's ``state_dict()``."""
        tensors = {**dict(self.named_parameters(recurse=False)), **dict(self.named_buffers(recurse=False))}
        return {name: t[i].detach().clone() for name, t in tensors.items()}


def drawing_members(keep: torch.Tensor) -> list[int]:
    """The members of a stacked dropout layer that draw noise: those whose keep probability
    ``keep[m]`` is below 1 (the others have no such layer and are left exactly as they are)."""
    return [m for m, k in enumerate(keep.tolist()) if k < 1.0]


STACKED_FORMS: dict[type[nn.Module], type[StackedLayer]] = {}


def register_stacked(*kinds: type[nn.Module]):
    """Class decorator: the decorated :class:`StackedLayer` is the stacked form of ``kinds``."""

    def register(cls: type[StackedLayer]) -> type[StackedLayer]:
        for kind in kinds:
            STACKED_FORMS[kind] = cls
        return cls

    return register


def stacked_form(module: nn.Module) -> type[StackedLayer]:
    """The registered stacked form of ``module``'s kind."""
    try:
        return STACKED_FORMS[type(module)]
    except KeyError:
        raise TypeError(
            f"no stacked form is registered for {type(module).__name__}; train with --stack off"
        ) from None


class StackedMixed(StackedLayer):
    """One position where members have layers of different kinds (dropout kinds in a sweep).

    Each kind's stacked form covers all M members, those with another kind as absent (the
    identity, drawing nothing), and the forms apply one after the other: each member passes
    through its own kind's layer alone, with its own generator, as in a stack of its kind.
    Only :attr:`StackedLayer.mixable` forms may mix.
    """

    def __init__(self, parts: list[StackedLayer]) -> None:
        super().__init__()
        self.parts = nn.ModuleList(parts)
        self.random = any(part.random for part in parts)
        self.any_layout = all(part.any_layout for part in parts)
        self.reads_images = any(part.reads_images for part in parts)

    @classmethod
    def from_members(cls, template: nn.Module, members: list[nn.Module | None], **options) -> StackedMixed:
        kinds = list(dict.fromkeys(type(m) for m in [template, *members] if m is not None))
        forms = [STACKED_FORMS.get(kind) for kind in kinds]
        if not all(form is not None and form.mixable for form in forms):
            names = ", ".join(kind.__name__ for kind in kinds)
            raise TypeError(f"members with {names} at one position cannot share a stack")
        parts = []
        for kind, form in zip(kinds, forms, strict=True):
            own = [m if type(m) is kind else None for m in members]
            first = next((m for m in own if m is not None), template)
            parts.append(form.from_members(first, own, **options))
        return cls(parts)

    @property
    def generators(self) -> list[torch.Generator | None]:
        """Each member's generator, the same list for every part (each draws for its own members)."""
        return self.parts[0].generators

    @generators.setter
    def generators(self, generators: list[torch.Generator | None]) -> None:
        for part in self.parts:
            part.generators = list(generators)

    def select(self, index: torch.Tensor) -> None:
        for part in self.parts:
            part.select(index)

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        return {}  # mixable forms hold no weights

    def forward(self, a: Activations) -> Activations:
        for part in self.parts:
            a = part(a)
        return a


def stacked_position(template: nn.Module, members: list[nn.Module | None], **options) -> StackedLayer:
    """The stacked form of one position of a stack: the template's kind's, or
    :class:`StackedMixed` where the members have mixable layers of different kinds.

    A form that is not mixable reads its members as they come (a plain ``nn.Linear`` is
    DropConnect at rate 0)."""
    form = stacked_form(template)
    if form.mixable and any(m is not None and type(m) is not type(template) for m in members):
        return StackedMixed.from_members(template, members, **options)
    return form.from_members(template, members, **options)


class StackedNet(nn.Module):
    """A stack of same-shaped networks, built from each member's own ``nn.Sequential``.

    ``template`` is the members' layer list with every dropout slot present (its weights are
    not used), so that all members share one structure; a member whose model lacks one of
    its layers (a dropout slot at rate 0) gets that layer's identity. ``channels_last``
    stores image activations channels-last (faster convolutions on CUDA). ``conv_loop``
    runs the convolutions of a training step one member at a time on ``(M, B, C, H, W)``
    activations instead of one grouped convolution (measured faster on the CPU, whose
    grouped convolution backward is slow); evaluation always uses the grouped form.
    Printing a StackedNet shows each layer with its members' rates.
    """

    def __init__(
        self,
        layers: OrderedDict[str, StackedLayer],
        size: int,
        channels_last: bool = False,
        conv_loop: bool = False,
    ) -> None:
        super().__init__()
        self.layers = nn.Sequential(layers)
        self.size = size
        self.channels_last = channels_last
        self.conv_loop = conv_loop
        first = next((layer for layer in layers.values() if not layer.any_layout), None)
        self.starts_with_image = first is not None and first.reads_images
        # training input arrives (B, M*C, H, W) when the first layers want it so, else (M, B, ...)
        self.image_input = self.starts_with_image and not conv_loop

    @classmethod
    def from_members(
        cls,
        template: nn.Sequential,
        members: list[nn.Sequential],
        device: torch.device,
        channels_last: bool = False,
        conv_loop: bool = False,
    ) -> StackedNet:
        """Stack ``members`` (each run's own model) layer by layer, on ``device``."""
        children = [dict(member.named_children()) for member in members]
        layers = OrderedDict(
            (name, stacked_position(module, [c.get(name) for c in children],
                                    channels_last=channels_last, conv_loop=conv_loop))
            for name, module in template.named_children()
        )  # fmt: skip
        return cls(layers, len(members), channels_last, conv_loop).to(device)

    def select(self, positions: list[int]) -> None:
        """Keep only the members at ``positions`` (members that stopped leave)."""
        index = torch.tensor(positions, device=next(self.parameters()).device)
        for layer in self.layers:
            layer.select(index)
        self.size = len(positions)

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        """A copy of member ``i``'s weights, keyed as in its own ``nn.Sequential.state_dict()``."""
        return {
            f"{name}.{key}": value
            for name, layer in self.layers.named_children()
            for key, value in layer.member_state(i).items()
        }

    def forward(self, x: torch.Tensor, layout: str = "shared", group_sizes: Sequence[int] | None = None):
        """Logits ``(M, B, classes)`` for ``x`` in ``layout`` (``shared``, ``member``, ``image``
        or ``grouped``, whose ``group_sizes`` sum to ``M``).

        A ``grouped`` input stays grouped through activations, flattening and the first
        dense layer, and is copied out to each member before any layer that treats members
        apart (:meth:`Activations.per_member`).
        """
        a = Activations(x, layout, self.size, tuple(group_sizes) if group_sizes else None)
        if layout == "member" and self.starts_with_image and not self.conv_loop:
            a = a.to(a.image(), "image")
        if a.layout == "image" and self.channels_last:
            a = a.to(a.x.contiguous(memory_format=torch.channels_last))
        for layer in self.layers:
            a = layer(a)
        return a.flat()
