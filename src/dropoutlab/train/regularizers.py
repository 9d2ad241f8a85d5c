"""Regularizers that act outside the layers: the max-norm constraint and layers' own penalties.

Max-norm (Srivastava et al. 2014, §5.1): after each optimizer step, every unit's incoming
weight vector (a row of a dense layer's weight, one filter of a convolution) whose L2 norm
exceeds ``c`` is scaled back onto the ball of radius ``c``; the 2014 paper used c = 3 to 4.
"""

from __future__ import annotations

import torch
from torch import nn

from dropoutlab.layers import StackedNet
from dropoutlab.layers.standard import StackedConv2d, StackedLinear


@torch.no_grad()
def clip_norms(weight: torch.Tensor, c: torch.Tensor | float, dims: tuple[int, ...]) -> None:
    """Scale in place each slice of ``weight`` whose L2 norm over ``dims`` exceeds ``c`` down to ``c``."""
    norms = torch.linalg.vector_norm(weight, dim=dims, keepdim=True)
    weight.mul_((c / norms).clamp_(max=1.0))  # c = inf (no bound) and norm 0 both give 1


def apply_max_norm(model: nn.Module, c: float) -> None:
    """The max-norm constraint on every dense and convolution layer of one run's ``model``."""
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Conv2d):
            clip_norms(module.weight, c, tuple(range(1, module.weight.dim())))


def apply_stacked_max_norm(net: StackedNet, c: torch.Tensor) -> None:
    """The max-norm constraint on a stack: ``c`` ``(M,)`` each member's bound (``inf``: none)."""
    for layer in net.layers:
        if isinstance(layer, StackedLinear):  # (M, out, in), or (M, in, out) when in_out
            w = layer.weight
            clip_norms(w, c.view(-1, 1, 1), (1,) if layer.in_out else (2,))
        elif isinstance(layer, StackedConv2d):  # (M, out, in, kh, kw)
            clip_norms(layer.weight, c.view(-1, 1, 1, 1, 1), (2, 3, 4))


def penalized(model: nn.Module) -> list[nn.Module]:
    """The layers of ``model`` that add a penalty to the loss (concrete dropout), found once."""
    return [module for module in model.modules() if hasattr(module, "penalty")]


def penalty(layers: list[nn.Module]) -> torch.Tensor | float:
    """The sum of the penalties of ``layers`` (:func:`penalized`); a stack's sums its members'.

    Both engines add it to the objective they minimise, not to the ``train_loss`` they record
    (the data loss, comparable between runs with and without such layers).
    """
    return sum(layer.penalty() for layer in layers) if layers else 0.0


def undecayed(model: nn.Module) -> set[int]:
    """The ``id`` of each parameter of ``model`` that weight decay leaves alone: the learned rate
    of concrete dropout (``p_logit``), which its own entropy penalty regularizes (Gal, Hron and
    Kendall 2017); decayed toward 0, it would pull every learned rate toward 0.5."""
    return {id(param) for module in penalized(model) for param in module.parameters(recurse=False)}
