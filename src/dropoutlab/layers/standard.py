"""Stacked forms of PyTorch's own layers: dense, convolution, batch norm, pooling, flatten, activations.

* dense layers: one batched matrix product (``baddbmm``), weights ``(M, out, in)``;
* convolutions: one grouped convolution, members folded into the channel axis;
* batch norm: per-member statistics, members folded into the channel axis;
* pooling, flattening and activations: the members' samples side by side.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from dropoutlab.layers.stacked import Activations, StackedLayer, register_stacked, ungroup

# Dense weights with more elements than this are stored (M, in, out): measured on a 2-core
# AMD EPYC, the weight gradient of the CIFAR-10 CNN's 25088x300 layer is 30% faster as
# x^T g than as g^T x, while the Fashion-MNIST MLP's 784x120 layer is 10% faster stored
# (M, out, in).
IN_OUT_ABOVE = 1 << 20


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([t.detach() for t in tensors])


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
    if torch.is_autocast_enabled(x.device.type) or not torch.is_grad_enabled():  # autocast casts operands
        if group_sizes is not None:
            x = ungroup(x, group_sizes)
        return torch.baddbmm(b.unsqueeze(1), x, w if in_out else w.transpose(1, 2))
    return _StackedLinear.apply(x, w, b, in_out, group_sizes)


@register_stacked(nn.Linear)
class StackedLinear(StackedLayer):
    """Dense layers of M members: weight ``(M, out, in)``, or ``(M, in, out)`` when ``in_out``."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, in_out: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)
        self.in_out = in_out

    @classmethod
    def from_members(cls, template, members, **options):
        in_out = template.weight.numel() > IN_OUT_ABOVE
        weights = [m.weight.t() if in_out else m.weight for m in members]
        return cls(_stack(weights), _stack([m.bias for m in members]), in_out)

    def forward(self, a: Activations) -> Activations:
        w, b = self.weight, self.bias
        if a.layout == "grouped":
            return a.to(stacked_linear(a.x.flatten(2), w, b, self.in_out, a.group_sizes), "flat")
        if a.layout == "shared":  # one input for all: a single wide matrix product
            x = a.x.reshape(a.x.shape[0], -1)
            wide = (
                w.transpose(0, 1).reshape(w.shape[1], -1) if self.in_out else w.reshape(-1, w.shape[-1]).t()
            )
            out = torch.addmm(b.reshape(-1), x, wide).view(x.shape[0], a.members, -1).transpose(0, 1)
            return a.to(out, "flat")
        return a.to(stacked_linear(a.flat(), w, b, self.in_out), "flat")

    def member_state(self, i):
        state = super().member_state(i)
        if self.in_out:
            state["weight"] = state["weight"].t().contiguous()
        return state

    def extra_repr(self) -> str:
        members, *shape = self.weight.shape
        out, inp = shape[::-1] if self.in_out else shape
        return f"members={members}, in_features={inp}, out_features={out}"


@register_stacked(nn.Conv2d)
class StackedConv2d(StackedLayer):
    """2-D convolutions of M members: weight ``(M, out, in, kh, kw)``."""

    reads_images = True

    def __init__(self, weight, bias, stride, padding, channels_last: bool, conv_loop: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)
        self.stride, self.padding = stride, padding
        self.channels_last, self.conv_loop = channels_last, conv_loop

    @classmethod
    def from_members(cls, template, members, channels_last=False, conv_loop=False, **options):
        return cls(_stack([m.weight for m in members]), _stack([m.bias for m in members]),
                   template.stride, template.padding, channels_last, conv_loop)  # fmt: skip

    def forward(self, a: Activations) -> Activations:
        a = a.per_member()
        w, b = self.weight, self.bias
        if a.layout == "member" and self.conv_loop:  # one convolution per member
            x = torch.stack(
                [F.conv2d(a.x[i], w[i], b[i], self.stride, self.padding) for i in range(a.members)]
            )
            return a.to(x)
        shared = a.layout == "shared"  # one input: one convolution for all members
        x = a.x if shared else a.image()
        w = w.flatten(0, 1)
        if self.channels_last:
            w = w.contiguous(memory_format=torch.channels_last)
        x = F.conv2d(x, w, b.reshape(-1), self.stride, self.padding, groups=1 if shared else a.members)
        return a.to(x, "image")

    def extra_repr(self) -> str:
        members, out, inp, kh, kw = self.weight.shape
        return f"members={members}, {inp}, {out}, kernel_size=({kh}, {kw}), stride={self.stride}"


@register_stacked(nn.BatchNorm1d, nn.BatchNorm2d)
class StackedBatchNorm(StackedLayer):
    """Batch norm of M members: each member's own statistics, members folded into channels."""

    def __init__(self, template: nn.Module, members: list[nn.Module]) -> None:
        super().__init__()
        self.images = isinstance(template, nn.BatchNorm2d)
        self.reads_images = self.images
        self.momentum, self.eps = template.momentum, template.eps
        self.weight = nn.Parameter(_stack([m.weight for m in members]))
        self.bias = nn.Parameter(_stack([m.bias for m in members]))
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            self.register_buffer(name, _stack([getattr(m, name) for m in members]))

    @classmethod
    def from_members(cls, template, members, **options):
        return cls(template, members)

    def forward(self, a: Activations) -> Activations:
        args = [t.view(-1) for t in (self.running_mean, self.running_var, self.weight, self.bias)]
        if self.training:
            self.num_batches_tracked.add_(1)
        if self.images:
            return a.to(F.batch_norm(a.image(), *args, self.training, self.momentum, self.eps), "image")
        x = a.flat()
        b = x.shape[1]
        y = F.batch_norm(x.transpose(0, 1).reshape(b, -1), *args, self.training, self.momentum, self.eps)
        return a.to(y.view(b, a.members, -1).transpose(0, 1), "flat")


@register_stacked(nn.MaxPool2d)
class StackedMaxPool2d(StackedLayer):
    """Max pooling of each member's images (no weights)."""

    reads_images = True

    def __init__(self, pool: nn.MaxPool2d) -> None:
        super().__init__()
        self.pool = pool

    @classmethod
    def from_members(cls, template, members, **options):
        return cls(template)

    def forward(self, a: Activations) -> Activations:
        a = a.per_member()
        if a.layout == "member":
            return a.to(self.pool(a.x.flatten(0, 1)).unflatten(0, a.x.shape[:2]))
        return a.to(self.pool(a.x))


@register_stacked(nn.Flatten)
class StackedFlatten(StackedLayer):
    """Each sample's features as one vector; a shared or grouped input stays so."""

    @classmethod
    def from_members(cls, template, members, **options):
        return cls()

    def forward(self, a: Activations) -> Activations:
        if a.layout == "shared":
            return a.to(a.x.flatten(1))
        if a.layout == "grouped":
            return a.to(a.x.flatten(2))
        return a.to(a.flat(), "flat")


@register_stacked(nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.LeakyReLU)
class StackedElementwise(StackedLayer):
    """An activation applied to every element, in whatever layout it comes."""

    any_layout = True

    def __init__(self, function: nn.Module) -> None:
        super().__init__()
        self.function = function

    @classmethod
    def from_members(cls, template, members, **options):
        return cls(template)

    def forward(self, a: Activations) -> Activations:
        return a.to(self.function(a.x))
