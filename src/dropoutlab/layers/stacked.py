"""Stacked networks: M networks of one shape run as a single network, each with its own weights.

A dropout study trains many small networks that differ only in weights, dropout rates and
data order. Run one by one, each step is a handful of small matrix products and a lot of
Python; run as a stack, each layer becomes one batched operation over a leading member axis:

* dense layers: one batched matrix product (``baddbmm``), weights ``(M, out, in)``;
* convolutions: one grouped convolution, members folded into the channel axis;
* batch norm: per-member statistics, members folded into the channel axis;
* dropout: one mask for the whole stack with the keep probability a per-member tensor, so a
  rate is data, not a Python constant, and rate 0 is exactly the identity; each member's
  part of the mask comes from its own generator. This is the
  inverted dropout of Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks
  from Overfitting", JMLR 15 (2014), https://jmlr.org/papers/v15/srivastava14a.html

Activations travel in one of four layouts, converted only where a layer needs it:

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

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from dropoutlab.layers.dropout import Dropout


def ungroup(x: torch.Tensor, group_sizes: Sequence[int]) -> torch.Tensor:
    """``grouped`` ``x`` ``(G, B, ...)`` as ``member`` ``(M, B, ...)``: each group's input copied
    to each of its members."""
    sizes = torch.tensor(group_sizes, device=x.device)
    return x.repeat_interleave(sizes, dim=0, output_size=sum(group_sizes))


def to_image(x: torch.Tensor, layout: str, members: int) -> torch.Tensor:
    """``x`` as ``(B, M*C, H, W)``, members folded into channels."""
    if layout == "image":
        return x
    if layout == "member":
        m, b, c = x.shape[:3]
        return x.transpose(0, 1).reshape(b, m * c, *x.shape[3:])
    if layout == "shared":
        return x.repeat(1, members, 1, 1)
    raise ValueError(f"cannot read layout {layout!r} as images")


def to_flat(x: torch.Tensor, layout: str, members: int) -> torch.Tensor:
    """``x`` as ``(M, B, F)``, each member's samples flattened."""
    if layout == "flat":
        return x
    if layout == "member":
        return x.reshape(x.shape[0], x.shape[1], -1)
    if layout == "image":
        return x.reshape(x.shape[0], members, -1).transpose(0, 1)
    if layout == "shared":
        x = x.reshape(x.shape[0], -1)
        return x.unsqueeze(0).expand(members, *x.shape)
    raise ValueError(f"unknown layout {layout!r}")


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
) -> torch.Tensor:
    """Inverted dropout with one keep probability per member (``keep`` has shape ``(M,)``).

    Each element of member ``m`` survives with probability ``keep[m]`` and is then scaled by
    ``1 / keep[m]``; a member with ``keep = 1`` is left exactly as it was. Member ``m``'s mask
    is drawn from ``generators[m]`` alone, in its own sample order, so it does not depend on
    which other members share the stack. The draw uses 16 random bits per element (four per
    64-bit draw, a third of the cost of ``torch.rand``), so the keep probability is rounded to
    a multiple of 2^-16 (rates off by at most 8e-6). ``constants`` are
    :func:`dropout_constants` of ``keep``, when the caller keeps them.
    """
    members = keep.shape[0]
    if len(generators) != members:
        raise ValueError(f"stacked_dropout needs one generator per member: {members}, got {len(generators)}")
    threshold, scale = constants if constants is not None else dropout_constants(keep)
    per_member = x.numel() // members
    bits = torch.empty((members, (per_member + 3) // 4), dtype=torch.int64, device=x.device)
    for row, generator in zip(bits, generators, strict=True):
        row.random_(-(2**63), None, generator=generator)
    r = bits.view(torch.int16)[:, :per_member]
    if layout == "flat":
        r, shape = r.reshape(x.shape), (members, 1, 1)
    elif layout == "member":
        r, shape = r.reshape(x.shape), (members, *[1] * (x.dim() - 1))
    elif layout == "image":  # (B, M*C, H, W): each member's draws laid out as its own (B, C, H, W)
        b, channels = x.shape[0], x.shape[1] // members
        r = r.reshape(members, b, channels, *x.shape[2:]).transpose(0, 1).reshape(x.shape)
        threshold, scale = threshold.repeat_interleave(channels), scale.repeat_interleave(channels)
        shape = (1, -1, *[1] * (x.dim() - 2))
    else:
        raise ValueError(f"dropout needs a member axis, got layout {layout!r}")
    return x * ((r <= threshold.view(shape)) * scale.to(x.dtype).view(shape))


class _StackedLinear(torch.autograd.Function):
    """``x @ w^T + b`` per member, with a backward pass that writes the weight gradient in
    the weight's own layout (autograd's would be a transposed view, which the fused
    optimizers would have to copy). ``w`` is ``(M, out, in)``, or ``(M, in, out)`` when
    ``in_out``: which is faster depends on the shape (see :data:`IN_OUT_ABOVE`).

    With ``group_sizes``, ``x`` is ``grouped`` ``(G, B, in)``: each group's one input is read
    by all its members (a stride-0 view, never copied), so a stack gathers one batch per
    group instead of one per member.
    """

    @staticmethod
    def forward(ctx, x, w, b, in_out, group_sizes):
        ctx.save_for_backward(x, w)
        ctx.in_out, ctx.group_sizes = in_out, group_sizes
        w_in_out = w if in_out else w.transpose(1, 2)
        if group_sizes is None:
            return torch.baddbmm(b.unsqueeze(1), x, w_in_out)
        out = x.new_empty(w.shape[0], x.shape[1], w_in_out.shape[2])
        for members, x_group in _member_inputs(x, group_sizes):
            torch.baddbmm(b[members].unsqueeze(1), x_group, w_in_out[members], out=out[members])
        return out

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        w_out_in = w.transpose(1, 2) if ctx.in_out else w
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.bmm(grad, w_out_in)
            if ctx.group_sizes is not None:  # a group's input gradient sums its members'
                grad_x = torch.stack(
                    [grad_x[members].sum(0) for members, _ in _member_inputs(x, ctx.group_sizes)]
                )
        if ctx.needs_input_grad[1]:
            grad_w = torch.empty_like(w)
            for members, x_group in _member_inputs(x, ctx.group_sizes):
                if ctx.in_out:
                    torch.bmm(x_group.transpose(1, 2), grad[members], out=grad_w[members])
                else:
                    torch.bmm(grad[members].transpose(1, 2), x_group, out=grad_w[members])
        if ctx.needs_input_grad[2]:
            grad_b = grad.sum(1)
        return grad_x, grad_w, grad_b, None, None


def _member_inputs(x: torch.Tensor, group_sizes: Sequence[int] | None):
    """``(member slice, input (k, B, in))`` of each group; one group of all members when
    ``group_sizes`` is None (``x`` already has one input per member)."""
    if group_sizes is None:
        yield slice(None), x
        return
    start = 0
    for x_one, size in zip(x, group_sizes, strict=True):
        yield slice(start, start + size), x_one.expand(size, *x_one.shape)
        start += size


# Dense weights with more elements than this are stored (M, in, out): measured on a 2-core
# AMD EPYC, the weight gradient of seed 000's 25088x300 layer is 30% faster as x^T g than
# as g^T x, while seed 001's 784x120 layer is 10% faster stored (M, out, in).
IN_OUT_ABOVE = 1 << 20


def stacked_linear(
    x: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor,
    in_out: bool = False,
    group_sizes: Sequence[int] | None = None,
) -> torch.Tensor:
    """Dense layer of every member: ``x`` ``(M, B, in)``, ``w`` ``(M, out, in)`` (or
    ``(M, in, out)`` with ``in_out``), ``b`` ``(M, out)``; returns ``(M, B, out)``.

    With ``group_sizes``, ``x`` is ``(G, B, in)``, one input per group of consecutive members.
    """
    if torch.is_autocast_enabled() or not torch.is_grad_enabled():  # autocast casts operands
        if group_sizes is not None:
            x = ungroup(x, group_sizes)
        return torch.baddbmm(b.unsqueeze(1), x, w if in_out else w.transpose(1, 2))
    return _StackedLinear.apply(x, w, b, in_out, group_sizes)


class StackedNet:
    """A stack of same-shaped networks, from the ``state_dict()`` of each member's model.

    ``template`` is the members' layer list built with every dropout slot present (its
    weights are not used), so that all members share one structure; ``keeps`` gives, for each
    dropout module name of the template, the keep probability (1 - rate) of every member.
    Parameters are stacked along a leading member axis: a dense weight is ``(M, out, in)``
    (``(M, in, out)`` for the large ones named in ``in_out``), a convolution weight
    ``(M, out, in, kh, kw)``. ``channels_last`` stores image
    activations channels-last (faster convolutions on CUDA). ``conv_loop`` runs the
    convolutions of a training step one member at a time on ``(M, B, C, H, W)`` activations
    instead of one grouped convolution (measured faster on the CPU, whose grouped
    convolution backward is slow); evaluation always uses the grouped form.
    """

    def __init__(
        self,
        template: nn.Sequential,
        states: list[dict[str, torch.Tensor]],
        keeps: dict[str, list[float]],
        device: torch.device,
        channels_last: bool = False,
        conv_loop: bool = False,
    ) -> None:
        self.size = len(states)
        self.channels_last = channels_last
        self.conv_loop = conv_loop
        self.layers: list[tuple[str, str, nn.Module]] = []  # (name, kind, template module)
        self.tensors: dict[str, torch.Tensor] = {}  # "name.attr" -> stacked tensor, member axis 0
        self.param_names: list[str] = []
        self.in_out: set[str] = set()  # dense weights stored (M, in, out)
        for name, module in template.named_children():
            if isinstance(module, nn.Linear | nn.Conv2d):
                kind = "linear" if isinstance(module, nn.Linear) else "conv2d"
                if kind == "linear" and module.weight.numel() > IN_OUT_ABOVE:
                    self.in_out.add(f"{name}.weight")
                self._stack(name, ("weight", "bias"), states, device)
                self.param_names += [f"{name}.weight", f"{name}.bias"]
            elif isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
                kind = "batchnorm"
                attrs = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
                self._stack(name, attrs, states, device)
                self.param_names += [f"{name}.weight", f"{name}.bias"]
            elif isinstance(module, Dropout):
                kind = "dropout"
                self.tensors[f"{name}.keep"] = torch.tensor(keeps[name], dtype=torch.float32, device=device)
            elif isinstance(module, nn.Flatten):
                kind = "flatten"
            elif isinstance(module, nn.MaxPool2d):
                kind = "pool"
            else:
                kind = "elementwise"  # activations: no weights, any layout
            self.layers.append((name, kind, module))
        for key in self.param_names:
            self.tensors[key].requires_grad_(True)
        self._find_identities()
        first = next((k for _, k, _ in self.layers if k not in ("elementwise", "dropout")), "")
        self.starts_with_image = first in ("conv2d", "pool", "batchnorm")
        # training input arrives (B, M*C, H, W) when the first layers want it so, else (M, B, ...)
        self.image_input = self.starts_with_image and not conv_loop

    def _find_identities(self) -> None:
        # a dropout layer whose members all keep everything (rate 0) is skipped: no masks drawn
        self.identities = {name for name, kind, _ in self.layers
                           if kind == "dropout" and bool((self.tensors[f"{name}.keep"] == 1).all())}  # fmt: skip
        self.dropout_constants = {name: dropout_constants(self.tensors[f"{name}.keep"])
                                  for name, kind, _ in self.layers if kind == "dropout"}  # fmt: skip

    def _stack(self, name: str, attrs, states, device: torch.device) -> None:
        for attr in attrs:
            key = f"{name}.{attr}"
            values = [state[key].detach() for state in states]
            if key in self.in_out:
                values = [v.t() for v in values]
            self.tensors[key] = torch.stack(values).to(device)

    @property
    def params(self) -> list[torch.Tensor]:
        """The trainable stacked tensors, in a fixed order."""
        return [self.tensors[k] for k in self.param_names]

    def select(self, keep_idx: list[int]) -> None:
        """Keep only the members at positions ``keep_idx`` (members that stopped leave)."""
        index = torch.tensor(keep_idx, device=next(iter(self.tensors.values())).device)
        for key, t in self.tensors.items():
            t = t.detach().index_select(0, index)
            self.tensors[key] = t.requires_grad_(True) if key in self.param_names else t
        self.size = len(keep_idx)
        self._find_identities()

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        """A copy of member ``i``'s weights, keyed as in its own ``nn.Sequential.state_dict()``."""
        state = {}
        for key, t in self.tensors.items():
            if not key.endswith(".keep"):
                state[key] = (t[i].t() if key in self.in_out else t[i]).detach().clone()
        return state

    def forward(
        self,
        x: torch.Tensor,
        layout: str,
        training: bool,
        generators: Mapping[str, Sequence[torch.Generator]] | None = None,
        group_sizes: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Logits ``(M, B, classes)`` for ``x`` in ``layout`` (``member``, ``image``, ``shared``
        or ``grouped``, whose ``group_sizes`` sum to ``M``).

        ``generators`` maps each dropout layer's name to its members' mask generators (needed
        when ``training``; see :func:`stacked_dropout`). A ``grouped`` input stays grouped
        through activations, flattening and the first dense layer, and is copied out to
        each member (:func:`ungroup`) before any other layer that treats members apart.
        """
        m, t = self.size, self.tensors
        if layout == "member" and self.starts_with_image and not self.conv_loop:
            x, layout = to_image(x, layout, m), "image"
        if layout == "image" and self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        for name, kind, module in self.layers:
            masks = kind == "dropout" and training and name not in self.identities
            if layout == "grouped" and (kind in ("conv2d", "batchnorm", "pool") or masks):
                x, layout = ungroup(x, group_sizes), "member"
            if kind == "linear":
                w, b = t[f"{name}.weight"], t[f"{name}.bias"]
                in_out = f"{name}.weight" in self.in_out
                if layout == "grouped":
                    x = stacked_linear(x.flatten(2), w, b, in_out, group_sizes)
                elif layout == "shared":  # one input for all: a single wide matrix product
                    x = x.reshape(x.shape[0], -1)
                    wide = (
                        w.transpose(0, 1).reshape(w.shape[1], -1)
                        if in_out
                        else w.reshape(-1, w.shape[-1]).t()
                    )
                    x = torch.addmm(b.reshape(-1), x, wide).view(x.shape[0], m, -1).transpose(0, 1)
                else:
                    x = stacked_linear(to_flat(x, layout, m), w, b, in_out)
                layout = "flat"
            elif kind == "conv2d":
                w, b = t[f"{name}.weight"], t[f"{name}.bias"]
                if layout == "member" and self.conv_loop:  # one convolution per member
                    x = torch.stack(
                        [F.conv2d(x[i], w[i], b[i], module.stride, module.padding) for i in range(m)]
                    )
                    continue
                groups = 1 if layout == "shared" else m  # shared input: one convolution for all
                if layout != "shared":
                    x = to_image(x, layout, m)
                w = w.flatten(0, 1)
                if self.channels_last:
                    w = w.contiguous(memory_format=torch.channels_last)
                x = F.conv2d(x, w, b.reshape(-1), module.stride, module.padding, groups=groups)
                layout = "image"
            elif kind == "batchnorm":
                x, layout = self._batchnorm(name, module, x, layout, training)
            elif kind == "dropout":
                if masks:
                    if layout == "shared":  # the members' masks differ: give each its own copy
                        x, layout = (
                            (to_image(x, layout, m), "image")
                            if x.dim() == 4
                            else (to_flat(x, layout, m), "flat")
                        )
                    gens = generators[name] if generators else [None] * m
                    x = stacked_dropout(x, layout, t[f"{name}.keep"], gens, self.dropout_constants[name])
            elif kind == "flatten":
                if layout == "shared":
                    x = x.flatten(1)
                elif layout == "grouped":
                    x = x.flatten(2)
                else:
                    x, layout = to_flat(x, layout, m), "flat"
            elif kind == "pool":
                x = module(x.flatten(0, 1)).unflatten(0, x.shape[:2]) if layout == "member" else module(x)
            else:
                x = module(x)
        if layout == "grouped":  # a network without weights: each group's logits for its members
            x, layout = ungroup(x, group_sizes), "member"
        if layout in ("shared", "member"):
            x = to_flat(x, layout, m)
        return x

    def _batchnorm(self, name, module, x, layout, training) -> tuple[torch.Tensor, str]:
        m, t = self.size, self.tensors
        args = [t[f"{name}.{a}"].view(-1) for a in ("running_mean", "running_var", "weight", "bias")]
        if training:
            t[f"{name}.num_batches_tracked"].add_(1)
        if isinstance(module, nn.BatchNorm2d):
            x = to_image(x, layout, m)
            return F.batch_norm(x, *args, training, module.momentum, module.eps), "image"
        x = to_flat(x, layout, m)
        b = x.shape[1]
        y = F.batch_norm(x.transpose(0, 1).reshape(b, -1), *args, training, module.momentum, module.eps)
        return y.view(b, m, -1).transpose(0, 1), "flat"
