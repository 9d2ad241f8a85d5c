"""Dropout kinds beyond standard dropout (issue #10): a plain function and a thin ``nn.Module``
each, the paper in the docstring. Their stacked forms are in :mod:`dropoutlab.layers.stacked_kinds`.

==============  ==========================  ============================================================
kind            module                      a training step
==============  ==========================  ============================================================
``scaled``      :class:`ScaledDropout`      zero each unit with probability p, no rescaling; eval x(1-p)
``gaussian``    :class:`GaussianDropout`    multiply each unit by noise N(1, p/(1-p))
``alpha``       :class:`AlphaDropout`       SELU-aware dropout keeping mean 0 and variance 1
``spatial``     :class:`SpatialDropout`     zero whole channels of each sample
``dropblock``   :class:`DropBlock`          zero square blocks of each feature map
``dropconnect`` :class:`DropConnectLinear`  zero weights of the dense layer (one mask per minibatch)
``concrete``    :class:`ConcreteDropout`    relaxed Bernoulli mask whose rate is learned
==============  ==========================  ============================================================

:data:`DROPOUT_KINDS` names every kind a study may use on a layer list (``standard`` is
:class:`~dropoutlab.layers.dropout.Dropout`); each class says where it makes sense in
``applies_to`` (``dense``: feature vectors, ``image``: feature maps), and the model builder
decides from it where a slot may take the kind (:func:`dropoutlab.models.builder.kind_fits`).

Randomness: each function draws from ``generator`` (PyTorch's global generator when None).
Masks are drawn as float32 uniforms compared with the keep probability, whatever the
activations' dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from dropoutlab.layers.dropout import Dropout

DENSE = frozenset({"dense"})
IMAGE = frozenset({"image"})
DENSE_AND_IMAGE = DENSE | IMAGE

# SELU's lambda * alpha (Klambauer et al. 2017): alpha dropout sets dropped units to -SELU_LAMBDA_ALPHA,
# SELU's limit for large negative inputs (the paper's alpha')
SELU_LAMBDA_ALPHA = 1.7580993408473766
CONCRETE_EPS = 1e-7  # keeps log(u) and log(1 - u) finite, as in the paper's code


def _check_rate(p: float, kind: str, zero: bool = True) -> float:
    p = float(p)
    if not (0.0 <= p < 1.0 if zero else 0.0 < p < 1.0):
        interval = "[0, 1)" if zero else "(0, 1)"
        raise ValueError(f"{kind} dropout rate must be in {interval}, got {p}")
    return p


def _uniform(shape: Sequence[int], device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    return torch.empty(tuple(shape), dtype=torch.float32, device=device).uniform_(generator=generator)


def _normal(shape: Sequence[int], device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    return torch.empty(tuple(shape), dtype=torch.float32, device=device).normal_(generator=generator)


def _rate_repr(p: float, slot: str | None) -> str:
    return f"p={p:g}" + (f", slot={slot!r}" if slot else "")


class _RateModule(nn.Module):
    """The thin module of a kind: a fixed rate ``p`` in [0, 1) at a named ``slot``."""

    kind = ""
    applies_to: frozenset[str] = DENSE_AND_IMAGE

    def __init__(self, p: float, slot: str | None = None) -> None:
        super().__init__()
        self.p = _check_rate(p, self.kind)
        self.slot = slot

    def extra_repr(self) -> str:
        return _rate_repr(self.p, self.slot)


# ---------------------------------------------------------------------------------------------
# scaled: the 2014 paper's own form


def scaled_dropout(
    x: torch.Tensor, p: float, training: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Dropout as the 2014 paper wrote it: in training each element of ``x`` is zeroed with
    probability ``p`` and the survivors are left as they are; in evaluation ``x`` is
    multiplied by the keep probability ``1 - p``, the training output's expectation."""
    if p == 0.0:
        return x
    if not training:
        return x * (1.0 - p)
    return x * (_uniform(x.shape, x.device, generator) < 1.0 - p)


class ScaledDropout(_RateModule):
    """Dropout without rescaling in training; evaluation scales by the keep probability.

    Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks from Overfitting",
    JMLR 15 (2014), https://jmlr.org/papers/v15/srivastava14a.html (section 2: at test time
    the weights are scaled by the retention probability). Predicts, in expectation, as
    :class:`~dropoutlab.layers.dropout.Dropout` (inverted dropout) does.

    Args:
        p: probability of zeroing an element, in [0, 1).
        slot: the study-file name of this position.
    """

    kind = "scaled"
    applies_to = DENSE_AND_IMAGE

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return scaled_dropout(x, self.p, self.training)


# ---------------------------------------------------------------------------------------------
# gaussian


def gaussian_dropout(
    x: torch.Tensor, p: float, training: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``x`` times independent noise ``N(1, p / (1 - p))`` per element in training; identity
    otherwise. The noise has the mean and variance of inverted Bernoulli dropout's factor."""
    if not training or p == 0.0:
        return x
    noise = _normal(x.shape, x.device, generator)
    return x * (noise * math.sqrt(p / (1.0 - p)) + 1.0).to(x.dtype)


class GaussianDropout(_RateModule):
    """Multiplicative Gaussian noise with the variance of dropout at rate ``p``.

    Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks from Overfitting",
    JMLR 15 (2014), section 10, https://jmlr.org/papers/v15/srivastava14a.html: each unit is
    multiplied by ``N(1, sigma^2)`` with ``sigma^2 = p / (1 - p)``. Identity in eval mode.

    Args:
        p: the Bernoulli dropout rate whose variance the noise has, in [0, 1).
        slot: the study-file name of this position.
    """

    kind = "gaussian"
    applies_to = DENSE_AND_IMAGE

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gaussian_dropout(x, self.p, self.training)


# ---------------------------------------------------------------------------------------------
# alpha


def alpha_constants(p: float) -> tuple[float, float, float]:
    """``(a, offset, dropped)`` of alpha dropout at rate ``p``: a kept unit ``x`` becomes
    ``a * x + offset``, a dropped one ``dropped`` (the paper's ``a`` and ``b``, section 5)."""
    q = 1.0 - p
    a = (q * (1.0 + p * SELU_LAMBDA_ALPHA**2)) ** -0.5
    return a, a * SELU_LAMBDA_ALPHA * p, -a * SELU_LAMBDA_ALPHA * q


def alpha_dropout(
    x: torch.Tensor, p: float, training: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Alpha dropout of ``x`` in training (the formula of ``torch.nn.functional.alpha_dropout``);
    identity otherwise."""
    if not training or p == 0.0:
        return x
    a, offset, dropped = alpha_constants(p)
    kept = _uniform(x.shape, x.device, generator) < 1.0 - p
    return torch.where(kept, x * a + offset, dropped)


class AlphaDropout(_RateModule):
    """Dropout for self-normalizing (SELU) networks: inputs of mean 0 and variance 1 keep them.

    Klambauer et al., "Self-Normalizing Neural Networks", NeurIPS 2017,
    https://arxiv.org/abs/1706.02515 (section 5): a dropped unit is set to SELU's negative
    saturation ``-lambda * alpha`` instead of 0, then an affine map ``a x + b`` restores mean 0
    and variance 1. Identity in eval mode. Made for the dense layers of SELU networks.

    Args:
        p: probability of dropping an element, in [0, 1).
        slot: the study-file name of this position.
    """

    kind = "alpha"
    applies_to = DENSE

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return alpha_dropout(x, self.p, self.training)


# ---------------------------------------------------------------------------------------------
# spatial


def spatial_dropout(
    x: torch.Tensor, p: float, training: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Zero whole channels of ``x`` ``(B, C, ...)`` (each sample's own) with probability ``p``
    in training, scaling the kept ones by ``1 / (1 - p)``; identity otherwise."""
    if not training or p == 0.0:
        return x
    if x.dim() < 3:
        raise ValueError(
            f"spatial dropout needs (batch, channels, ...) activations, got shape {tuple(x.shape)}"
        )
    keep = 1.0 - p
    kept = _uniform((*x.shape[:2], *[1] * (x.dim() - 2)), x.device, generator) < keep
    return x * (kept.to(x.dtype) * (1.0 / keep))


class SpatialDropout(_RateModule):
    """Dropout of whole feature maps ("SpatialDropout"), inverted scaling.

    Tompson et al., "Efficient Object Localization Using Convolutional Networks", CVPR 2015,
    https://arxiv.org/abs/1411.4280 (section 3.2): neighbouring pixels of a feature map are
    strongly correlated, so dropping single pixels barely regularizes; each channel of each
    sample is dropped as a whole. Identity in eval mode.

    Args:
        p: probability of dropping a channel, in [0, 1).
        slot: the study-file name of this position.
    """

    kind = "spatial"
    applies_to = IMAGE

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return spatial_dropout(x, self.p, self.training)


# ---------------------------------------------------------------------------------------------
# dropblock


def block_gamma(p: float, size: int, height: int, width: int) -> float:
    """DropBlock's seed probability (the paper's eq. 1, for an ``height`` x ``width`` map):
    blocks of ``size`` x ``size`` seeded with it cover a fraction ``p`` of the map if they
    did not overlap (they may, so slightly fewer units are dropped)."""
    valid = (height - size + 1) * (width - size + 1)
    return min(1.0, p / size**2 * (height * width) / valid)


def block_keep(seeds: torch.Tensor, size: int) -> torch.Tensor:
    """Keep mask ``(N, C, H, W)`` of block ``seeds`` ``(N, C, H - size + 1, W - size + 1)`` (0/1):
    each seed drops the ``size`` x ``size`` block whose top-left corner it marks."""
    return 1.0 - F.max_pool2d(F.pad(seeds, [size - 1] * 4), size, stride=1)


def drop_block(
    x: torch.Tensor,
    p: float,
    training: bool,
    block_size: int = 3,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """DropBlock of ``x`` ``(B, C, H, W)`` in training; identity otherwise.

    Block seeds are drawn with :func:`block_gamma`'s probability, independently for each
    sample and channel, only where a whole block fits in the map (the paper's valid
    region); each seed zeroes its block. The kept units are scaled by
    ``count(mask) / count_ones(mask)``, over the whole batch as in the paper's algorithm 1.
    A block larger than the map is clipped to the map's smaller side.
    """
    if not training or p == 0.0:
        return x
    if x.dim() != 4:
        raise ValueError(
            f"dropblock needs (batch, channels, height, width) activations, got {tuple(x.shape)}"
        )
    b, c, h, w = x.shape
    size = min(block_size, h, w)
    u = _uniform((b, c, h - size + 1, w - size + 1), x.device, generator)
    keep = block_keep((u < block_gamma(p, size, h, w)).float(), size)
    return x * (keep * (keep.numel() / keep.sum().clamp(min=1.0))).to(x.dtype)


class DropBlock(_RateModule):
    """Dropout of contiguous square regions of each feature map.

    Ghiasi, Lin and Le, "DropBlock: A regularization method for convolutional networks",
    NeurIPS 2018, https://arxiv.org/abs/1810.12890: units of a feature map are correlated,
    so whole ``block_size`` x ``block_size`` blocks are dropped (see :func:`drop_block`).
    Identity in eval mode. The paper's linear schedule of the rate is not applied here.

    Args:
        p: the fraction of units to drop (the paper's ``1 - keep_prob``), in [0, 1).
        slot: the study-file name of this position.
        block_size: the side of a dropped block in units, an int >= 1 (1 is spatially
            independent dropout of single units).
    """

    kind = "dropblock"
    applies_to = IMAGE

    def __init__(self, p: float, slot: str | None = None, *, block_size: int = 3) -> None:
        super().__init__(p, slot)
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise ValueError(f"dropblock block_size must be an int >= 1, got {block_size!r}")
        self.block_size = block_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_block(x, self.p, self.training, self.block_size)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, block_size={self.block_size}"


# ---------------------------------------------------------------------------------------------
# dropconnect


def dropconnect_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    p: float,
    training: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Dense layer ``x @ weight^T + bias`` whose weights are each zeroed with probability ``p``
    in training (one mask for the whole minibatch), kept ones scaled by ``1 / (1 - p)``;
    the plain dense layer otherwise. The bias is not masked."""
    if not training or p == 0.0:
        return F.linear(x, weight, bias)
    keep = 1.0 - p
    kept = _uniform(weight.shape, weight.device, generator) < keep
    return F.linear(x, weight * (kept.to(weight.dtype) * (1.0 / keep)), bias)


class DropConnectLinear(nn.Linear):
    """A dense layer with DropConnect: random weights dropped instead of activations.

    Wan et al., "Regularization of Neural Networks using DropConnect", ICML 2013,
    https://proceedings.mlr.press/v28/wan13.html. The paper draws a weight mask per sample;
    as most implementations do, one mask per minibatch approximates it (one dense product
    instead of one per sample). Kept weights are scaled by ``1 / (1 - p)`` so evaluation is
    the plain layer; the paper's Gaussian moment-matching inference is not used. Its
    ``state_dict`` is exactly ``nn.Linear``'s (``weight``, ``bias``).

    Args:
        in_features, out_features: as ``nn.Linear``.
        p: probability of dropping a weight, in [0, 1).
        slot: the study-file name of the dropout slot this layer stands for.
    """

    kind = "dropconnect"
    applies_to = DENSE

    def __init__(self, in_features: int, out_features: int, p: float, slot: str | None = None) -> None:
        super().__init__(in_features, out_features)
        self.p = _check_rate(p, self.kind)
        self.slot = slot

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropconnect_linear(x, self.weight, self.bias, self.p, self.training)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {_rate_repr(self.p, self.slot)}"


# ---------------------------------------------------------------------------------------------
# concrete


def concrete_keep(u: torch.Tensor, p_logit: torch.Tensor, temperature: float | torch.Tensor) -> torch.Tensor:
    """Relaxed inverted keep factor ``(1 - z) / (1 - p)`` of uniforms ``u``, where ``z`` is the
    Concrete relaxation of a Bernoulli(p) drop at ``temperature`` (``p = sigmoid(p_logit)``)."""
    logit = p_logit + torch.log(u + CONCRETE_EPS) - torch.log(1.0 - u + CONCRETE_EPS)
    return (1.0 - torch.sigmoid(logit / temperature)) / torch.sigmoid(-p_logit)


def negative_entropy(p_logit: torch.Tensor) -> torch.Tensor:
    """``p log p + (1 - p) log(1 - p)`` of ``p = sigmoid(p_logit)``, computed stably."""
    p = torch.sigmoid(p_logit)
    return p * F.logsigmoid(p_logit) + (1.0 - p) * F.logsigmoid(-p_logit)


def concrete_dropout(
    x: torch.Tensor,
    p_logit: torch.Tensor,
    training: bool,
    temperature: float = 0.1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Concrete dropout of ``x`` at rate ``sigmoid(p_logit)`` in training; identity otherwise.

    Each element is multiplied by ``(1 - z) / (1 - p)`` with ``z`` a relaxed Bernoulli(p)
    drop (``z = sigmoid((logit p + log u - log(1 - u)) / temperature)``, ``u`` uniform), which
    is differentiable in ``p_logit``.
    """
    if not training:
        return x
    u = _uniform(x.shape, x.device, generator)
    return x * concrete_keep(u, p_logit, temperature).to(x.dtype)


class ConcreteDropout(nn.Module):
    """Dropout whose rate is learned by gradient descent, through a relaxed Bernoulli mask.

    Gal, Hron and Kendall, "Concrete Dropout", NeurIPS 2017, https://arxiv.org/abs/1705.07832.
    The rate is ``sigmoid(p_logit)``, ``p_logit`` an ``nn.Parameter`` initialised from ``p``.
    Training multiplies by a relaxed mask (:func:`concrete_dropout`, temperature 0.1 as in
    the paper); eval mode is the identity. The paper's regulariser has a weight term,
    ``weight_regularizer * ||W||^2 / (1 - p)``, and a dropout term; only the dropout term is
    here (:meth:`penalty`, to be added to the loss): the weight term is left to the
    optimizer's ``weight_decay``.

    Args:
        p: the initial rate, in (0, 1).
        slot: the study-file name of this position.
        temperature: the relaxation's temperature (> 0).
        dropout_regularizer: the coefficient of the dropout term of :meth:`penalty` (default
            1e-5; the paper's code sets it to ``2 / (tau N)``, ``tau`` the model precision
            and ``N`` the number of training samples).
    """

    kind = "concrete"
    applies_to = DENSE_AND_IMAGE

    def __init__(
        self,
        p: float,
        slot: str | None = None,
        *,
        temperature: float = 0.1,
        dropout_regularizer: float = 1e-5,
    ) -> None:
        super().__init__()
        p = _check_rate(p, self.kind, zero=False)
        if not temperature > 0.0:
            raise ValueError(f"concrete dropout temperature must be > 0, got {temperature}")
        self.p_logit = nn.Parameter(torch.tensor(math.log(p) - math.log1p(-p)))
        self.slot = slot
        self.temperature = float(temperature)
        self.dropout_regularizer = float(dropout_regularizer)
        self.features = 0  # elements of one sample of the last input (the paper's input_dim)

    @property
    def p(self) -> float:
        """The current (learned) rate."""
        return self.current_rate()

    def current_rate(self) -> float:
        """The learned rate ``sigmoid(p_logit)``, a fraction in (0, 1)."""
        return torch.sigmoid(self.p_logit.detach()).item()

    def penalty(self) -> torch.Tensor:
        """The paper's dropout term, ``dropout_regularizer * features * (p log p + (1-p) log(1-p))``
        (minus the scaled entropy of the rate; 0 before any input was seen), a scalar tensor
        differentiable in ``p_logit``; ``features`` counts the elements of one sample of the
        last input."""
        return self.dropout_regularizer * self.features * negative_entropy(self.p_logit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.features = x[0].numel()
        return concrete_dropout(x, self.p_logit, self.training, self.temperature)

    def extra_repr(self) -> str:
        return f"{_rate_repr(self.current_rate(), self.slot)}, temperature={self.temperature:g}"


# ---------------------------------------------------------------------------------------------
# registry

DROPOUT_KINDS: dict[str, type[nn.Module]] = {
    "standard": Dropout,
    **{
        cls.kind: cls
        for cls in (
            ScaledDropout,
            GaussianDropout,
            AlphaDropout,
            SpatialDropout,
            DropBlock,
            DropConnectLinear,
            ConcreteDropout,
        )
    },
}
"""Every dropout kind of this module by name; ``standard`` is inverted Bernoulli dropout."""


__all__ = [
    "DROPOUT_KINDS",
    "AlphaDropout",
    "ConcreteDropout",
    "DropBlock",
    "DropConnectLinear",
    "GaussianDropout",
    "ScaledDropout",
    "SpatialDropout",
    "alpha_constants",
    "alpha_dropout",
    "block_gamma",
    "block_keep",
    "concrete_dropout",
    "concrete_keep",
    "drop_block",
    "dropconnect_linear",
    "gaussian_dropout",
    "negative_entropy",
    "scaled_dropout",
    "spatial_dropout",
]
