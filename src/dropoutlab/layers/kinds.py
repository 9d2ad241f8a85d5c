"""Dropout kinds beyond standard dropout (issue #10): a plain function, a thin ``nn.Module`` and a
stacked form each.

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

:data:`DROPOUT_KINDS` names every kind a study may use (``standard`` is
:class:`~dropoutlab.layers.dropout.Dropout`); :func:`kind_applies` says whether a kind makes
sense on dense or image activations.

Randomness: each function draws from ``generator`` (PyTorch's global generator when None).
Each stacked form draws member ``m``'s noise from ``generators[m]`` alone, in the member's own
shape and sample order, so member ``m`` gets exactly the noise its own function would draw
from that generator, whatever its neighbours in the stack. Masks are drawn as float32
uniforms compared with the keep probability, whatever the activations' dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from dropoutlab.errors import DropoutlabError
from dropoutlab.layers.dropout import Dropout
from dropoutlab.layers.stacked import Activations, StackedLayer, drawing_members, register_stacked
from dropoutlab.layers.standard import StackedLinear, stacked_linear

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


def _block_keep(seeds: torch.Tensor, size: int) -> torch.Tensor:
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
    keep = _block_keep((u < block_gamma(p, size, h, w)).float(), size)
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


def _concrete_keep(u: torch.Tensor, p_logit: torch.Tensor, temperature: float | torch.Tensor) -> torch.Tensor:
    """Relaxed inverted keep factor ``(1 - z) / (1 - p)`` of uniforms ``u``, where ``z`` is the
    Concrete relaxation of a Bernoulli(p) drop at ``temperature`` (``p = sigmoid(p_logit)``)."""
    logit = p_logit + torch.log(u + CONCRETE_EPS) - torch.log(1.0 - u + CONCRETE_EPS)
    return (1.0 - torch.sigmoid(logit / temperature)) / torch.sigmoid(-p_logit)


def _negative_entropy(p_logit: torch.Tensor) -> torch.Tensor:
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
    return x * _concrete_keep(u, p_logit, temperature).to(x.dtype)


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
        return self.dropout_regularizer * self.features * _negative_entropy(self.p_logit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.features = x[0].numel()
        return concrete_dropout(x, self.p_logit, self.training, self.temperature)

    def extra_repr(self) -> str:
        return f"{_rate_repr(self.current_rate(), self.slot)}, temperature={self.temperature:g}"


# ---------------------------------------------------------------------------------------------
# stacked forms


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


class _StackedRate(StackedLayer):
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
        self.register_buffer("keep", torch.tensor([1.0 - r for r in rates], dtype=torch.float32))
        self.register_buffer("scale", torch.tensor([1.0 / (1.0 - r) for r in rates], dtype=torch.float32))
        self.generators: list[torch.Generator | None] = [None] * len(rates)
        self._rows_of_keep()

    def _rows_of_keep(self) -> None:
        self.rows = drawing_members(self.keep)
        self.identity = not self.rows

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
            keep[rows] = _block_keep(seeds, size).unflatten(0, (len(rows), b))
        kept = keep.flatten(1).sum(1).clamp(min=1.0)
        factor = keep * _per_member(keep[0].numel() / kept, keep)
        return _together(a, layout, x * factor.to(x.dtype))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, block_sizes={self.block_sizes}"


@register_stacked(DropConnectLinear)
class StackedDropConnectLinear(StackedLinear):
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
        rates = list(rates) or [0.0] * weight.shape[0]
        self.register_buffer("keep", torch.tensor([1.0 - r for r in rates], dtype=torch.float32))
        self.register_buffer("scale", torch.tensor([1.0 / (1.0 - r) for r in rates], dtype=torch.float32))
        self.generators: list[torch.Generator | None] = [None] * len(rates)
        self._rows_of_keep()

    def _rows_of_keep(self) -> None:
        self.rows = drawing_members(self.keep)
        self.identity = not self.rows

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
        terms = self.dropout_regularizer * self.features * _negative_entropy(self.p_logit)
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
        factor = _concrete_keep(u, _per_member(self.p_logit, u), _per_member(self.temperature, u))
        if len(self.rows) < len(self.generators):  # members without the layer: exactly the identity
            factor = torch.where(_per_member(self.active, u, torch.bool), factor, 1.0)
        return _together(a, layout, x * factor.to(x.dtype))

    def extra_repr(self) -> str:
        return "rates=[" + ", ".join(f"{r:.4g}" for r in self.current_rates()) + "]"


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


def kind_applies(kind: str, where: str) -> bool:
    """Whether dropout ``kind`` (a key of :data:`DROPOUT_KINDS`) makes sense on ``where``
    activations (``"dense"``: feature vectors, ``"image"``: feature maps)."""
    if kind not in DROPOUT_KINDS:
        raise DropoutlabError(f"unknown dropout kind {kind!r}; choose one of {', '.join(DROPOUT_KINDS)}")
    if where not in DENSE_AND_IMAGE:
        raise DropoutlabError(f"dropout can sit on 'dense' or 'image' activations, not {where!r}")
    return where in getattr(DROPOUT_KINDS[kind], "applies_to", DENSE_AND_IMAGE)  # Dropout: everywhere


__all__ = [
    "DROPOUT_KINDS",
    "AlphaDropout",
    "ConcreteDropout",
    "DropBlock",
    "DropConnectLinear",
    "GaussianDropout",
    "ScaledDropout",
    "SpatialDropout",
    "StackedAlphaDropout",
    "StackedConcreteDropout",
    "StackedDropBlock",
    "StackedDropConnectLinear",
    "StackedGaussianDropout",
    "StackedScaledDropout",
    "StackedSpatialDropout",
    "alpha_constants",
    "alpha_dropout",
    "block_gamma",
    "concrete_dropout",
    "drop_block",
    "dropconnect_linear",
    "gaussian_dropout",
    "kind_applies",
    "scaled_dropout",
    "spatial_dropout",
]
