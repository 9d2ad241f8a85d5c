"""Monte Carlo dropout: predictive probabilities with dropout kept on, and how good they are.

Gal & Ghahramani, "Dropout as a Bayesian Approximation: Representing Model Uncertainty in
Deep Learning", ICML 2016, https://proceedings.mlr.press/v48/gal16.html: a network trained
with dropout, run ``T`` times with dropout still on, draws ``T`` samples of an approximate
posterior predictive; their mean is the MC dropout prediction. Srivastava et al., JMLR 15
(2014), §7.5 (https://jmlr.org/papers/v15/srivastava14a.html), compare that average with
the usual deterministic pass ("weight scaling": every unit kept, which inverted dropout
makes the plain eval-mode pass) and find the two close at about 50 samples.

One sampler, :func:`mc_predict`, for a run's own ``nn.Module``: dropout layers in training
mode, every other module (batch norm above all) in eval mode. Whichever engine trained a run,
MC dropout rebuilds the run's own model with the weights it kept (``mc_test`` in
``train/loop.py``), so one sampler serves both. It gives softmax probabilities (fractions,
float32) with a sample axis; ``samples = 0`` is the deterministic pass. The metrics below
are pure functions of such probabilities and the labels; every scalar comes back as a
Python float, computed in float64. Log-probabilities and entropies are in nats.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
from torch import nn

from dropoutlab.layers import Dropout

#: Probabilities are clamped to at least this before a logarithm in :func:`nll`, so that a
#: confident wrong prediction costs at most ``-log(1e-12) = 27.6`` nats instead of infinity.
PROB_FLOOR = 1e-12

#: Samples per forward pass of the sampler (rows of ``x``).
MC_BATCH = 1000

#: PyTorch's own dropout layers (public classes), treated as dropout along with ours.
TORCH_DROPOUTS = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)


# ----------------------------------------------------------------------------------------
# Metrics


def _check(probs: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if probs.dim() != 2 or y.shape != probs.shape[:1]:
        raise ValueError(
            f"need probabilities (N, C) and labels (N,), got {tuple(probs.shape)} and {tuple(y.shape)}"
        )
    if len(y) == 0:
        raise ValueError("no samples to score")
    return probs.double(), y.long()


def accuracy(probs: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of samples whose most probable class (the first of tied maxima) is the label.

    ``probs`` ``(N, C)`` (rows sum to 1), ``y`` ``(N,)`` class indices.
    """
    probs, y = _check(probs, y)
    return (probs.argmax(1) == y).double().mean().item()


def nll(probs: torch.Tensor, y: torch.Tensor) -> float:
    """Mean negative log-likelihood of the labels, in nats: ``-mean_n log p[n, y_n]``.

    The label's probability is clamped to at least :data:`PROB_FLOOR` (1e-12) first. For
    MC dropout ``probs`` is the mean of the samples' probabilities (the predictive), not a
    mean of per-sample log-likelihoods.
    """
    probs, y = _check(probs, y)
    return -probs.gather(1, y[:, None]).clamp_min(PROB_FLOOR).log().mean().item()


def brier(probs: torch.Tensor, y: torch.Tensor) -> float:
    """Multiclass Brier score: ``mean_n sum_c (p[n, c] - onehot(y_n)[c])^2``, in [0, 2].

    Brier's (1950) original form, summed over all classes (0 is perfect; always predicting
    the uniform distribution over ``C`` classes scores ``1 - 1/C``). For two classes it is
    twice scikit-learn's binary ``brier_score_loss``, which scores the positive class only.
    """
    probs, y = _check(probs, y)
    onehot = torch.nn.functional.one_hot(y, probs.shape[1]).double()
    return (probs - onehot).square().sum(1).mean().item()


def _bins(probs: torch.Tensor, y: torch.Tensor, bins: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per bin: (count, summed confidence, summed correctness), float64 tensors of ``bins``."""
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    probs, y = _check(probs, y)
    confidence, predicted = probs.max(1)
    correct = (predicted == y).double()
    inner_edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)[1:-1]
    index = torch.bucketize(confidence, inner_edges)  # bin m holds (edge[m], edge[m + 1]]
    zeros = torch.zeros(bins, dtype=torch.float64)
    return (
        zeros.index_add(0, index, torch.ones_like(confidence)),
        zeros.index_add(0, index, confidence),
        zeros.index_add(0, index, correct),
    )


def expected_calibration_error(probs: torch.Tensor, y: torch.Tensor, bins: int = 15) -> float:
    """Expected calibration error (ECE), a fraction in [0, 1].

    Guo et al., "On Calibration of Modern Neural Networks", ICML 2017
    (https://proceedings.mlr.press/v70/guo17a.html), §2: the samples are put in ``bins``
    equal-width bins of their confidence (the largest probability), bin ``m`` holding
    confidences in ``((m - 1)/bins, m/bins]`` (a confidence of 0 goes in the first);
    ``ECE = sum_m |B_m| / N * |accuracy(B_m) - mean confidence(B_m)|``.
    """
    count, confidence, correct = _bins(probs, y, bins)
    return ((correct - confidence).abs().sum() / count.sum()).item()


def reliability(probs: torch.Tensor, y: torch.Tensor, bins: int = 15) -> list[tuple[int, float, float]]:
    """The points of a reliability diagram: per confidence bin, ``(count, mean confidence, accuracy)``.

    Bins as in :func:`expected_calibration_error` (Guo et al. 2017, §2), lowest first;
    confidence and accuracy are fractions, ``nan`` for an empty bin. A calibrated model has
    accuracy equal to confidence in every bin.
    """
    count, confidence, correct = _bins(probs, y, bins)
    return [
        (int(n), s / n if n else math.nan, c / n if n else math.nan)
        for n, s, c in zip(count.tolist(), confidence.tolist(), correct.tolist(), strict=True)
    ]


def predictive_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy of each sample's predictive distribution ``(N, C)`` -> ``(N,)``, in nats.

    ``H[p] = -sum_c p_c log p_c`` (``0 log 0 = 0``); in [0, log C], ``log C`` for the uniform
    distribution. For MC dropout, pass the mean of the samples' probabilities: the total
    uncertainty, of which :func:`mutual_information` is the part due to the weights.
    """
    return -torch.special.xlogy(probs.double(), probs.double()).sum(-1)


def mutual_information(sample_probs: torch.Tensor) -> torch.Tensor:
    """Mutual information between the prediction and the weights, per sample, in nats (BALD).

    ``sample_probs`` ``(T, N, C)``: ``T`` stochastic passes. ``I = H[mean_t p_t] - mean_t H[p_t]``,
    the entropy of the mean minus the mean entropy: 0 when all passes agree, large when
    each pass is confident but they disagree ("epistemic" uncertainty). Houlsby et al.,
    "Bayesian Active Learning for Classification and Preference Learning", 2011
    (https://arxiv.org/abs/1112.5745); Gal, Islam & Ghahramani, "Deep Bayesian Active
    Learning with Image Data", ICML 2017. Float rounding below 0 is clamped to 0. Returns ``(N,)``.
    """
    if sample_probs.dim() != 3:
        raise ValueError(f"need sample probabilities (T, N, C), got {tuple(sample_probs.shape)}")
    total = predictive_entropy(sample_probs.double().mean(0))
    expected = predictive_entropy(sample_probs).mean(0)
    return (total - expected).clamp_min(0.0)


def uncertainty_metrics(sample_probs: torch.Tensor, y: torch.Tensor, bins: int = 15) -> dict[str, float]:
    """All the metrics of the MC prediction of ``sample_probs`` ``(T, N, C)`` for labels ``y`` ``(N,)``.

    The prediction is the mean over the ``T`` passes (Gal & Ghahramani 2016, §3). Keys:
    ``acc`` (fraction), ``nll`` (nats per sample), ``brier`` (in [0, 2]), ``ece`` (fraction,
    ``bins`` bins), ``entropy`` (mean predictive entropy, nats) and ``mutual_information``
    (mean, nats; 0 for a single pass).
    """
    if sample_probs.dim() != 3:
        raise ValueError(f"need sample probabilities (T, N, C), got {tuple(sample_probs.shape)}")
    probs = sample_probs.double().mean(0)
    return {
        "acc": accuracy(probs, y),
        "nll": nll(probs, y),
        "brier": brier(probs, y),
        "ece": expected_calibration_error(probs, y, bins),
        "entropy": predictive_entropy(probs).mean().item(),
        "mutual_information": mutual_information(sample_probs).mean().item(),
    }


# ----------------------------------------------------------------------------------------
# Sampling


def is_dropout(module: nn.Module) -> bool:
    """Whether MC dropout keeps ``module`` in training mode: our :class:`~dropoutlab.layers.Dropout`,
    any layer whose class declares a dropout ``kind`` (``layers/kinds.py``), or one of
    PyTorch's public dropout layers (:data:`TORCH_DROPOUTS`)."""
    return isinstance(module, (Dropout, *TORCH_DROPOUTS)) or hasattr(type(module), "kind")


@contextlib.contextmanager
def _modes(model: nn.Module, random: Callable[[nn.Module], bool]) -> Iterator[None]:
    """Everything in eval mode but the modules where ``random(module)``; every mode restored after."""
    before = [(module, module.training) for module in model.modules()]
    try:
        for module, _ in before:
            module.training = bool(random(module))
        yield
    finally:
        for module, training in before:
            module.training = training


def _never(module: nn.Module) -> bool:
    return False


def _check_samples(samples: int) -> None:
    if samples < 0:
        raise ValueError(f"samples must be 0 (the deterministic pass) or more, got {samples}")


@torch.no_grad()
def mc_predict(
    model: nn.Module, x: torch.Tensor, samples: int, batch_size: int = MC_BATCH, seed: int | None = None
) -> torch.Tensor:
    """Softmax probabilities of ``samples`` passes of a run's ``model`` over ``x`` with dropout on.

    Returns ``(T, N, C)`` float32 probabilities, ``T = samples``: the MC dropout samples of
    Gal & Ghahramani (2016). Dropout layers (:func:`is_dropout`) run in training mode, every
    other module in eval mode, so batch norm uses and keeps its running statistics; each
    module's mode is restored afterwards. ``samples = 0`` is the deterministic pass (all eval,
    weight scaling in Srivastava et al. 2014, §7.5), returned as ``(1, N, C)``. ``x`` is
    read ``batch_size`` rows at a time. Masks come from PyTorch's global generator; with
    ``seed`` they come from it seeded so, and the caller's generator state is left as it was.
    """
    _check_samples(samples)
    passes = max(samples, 1)
    out = None
    rng = _seeded(x.device, seed) if seed is not None else contextlib.nullcontext()
    with rng, _modes(model, is_dropout if samples else _never):
        start = 0
        for chunk in x.split(batch_size):
            for t in range(passes):
                probs = model(chunk).float().softmax(-1)
                if out is None:
                    out = probs.new_empty(passes, len(x), probs.shape[-1])
                out[t, start : start + len(chunk)] = probs
            start += len(chunk)
    if out is None:
        raise ValueError("x holds no samples")
    return out


@contextlib.contextmanager
def _seeded(device: torch.device, seed: int) -> Iterator[None]:
    """The global generators seeded with ``seed`` inside, as they were outside."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


@torch.no_grad()
def mc_sweep(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, samples: tuple[int, ...], seed: int, bins: int = 15
) -> list[dict]:
    """The MC dropout metrics of ``model`` on ``(x, y)`` for each number of passes in ``samples``.

    One entry per value ``T`` of ``samples``, in order: ``{"samples": T, **metrics,
    "reliability": [(count, confidence, accuracy), ...]}`` with the keys of
    :func:`uncertainty_metrics`; ``T = 0`` is the deterministic pass. The passes are drawn
    once, ``max(samples)`` of them with masks seeded by ``seed``, and ``T`` uses the first
    ``T``: so the entries of one run are nested, as a user adding passes would see them.
    Memory stays at two ``(N, C)`` sums, whatever ``T`` (the passes are not kept).
    """
    out: dict[int, dict] = {}
    if 0 in samples:
        probs = mc_predict(model, x, 0)[0].double()
        out[0] = _entry(0, probs, torch.zeros(len(x), dtype=torch.float64), y, bins)
    wanted = {t for t in samples if t > 0}
    if wanted:
        total = None
        entropy_sum = torch.zeros(len(x), dtype=torch.float64)
        with _seeded(x.device, seed):
            for t in range(1, max(wanted) + 1):
                probs = mc_predict(model, x, 1)[0].double().cpu()
                total = probs if total is None else total + probs
                entropy_sum += predictive_entropy(probs)
                if t in wanted:
                    mean = total / t
                    information = (predictive_entropy(mean) - entropy_sum / t).clamp_min(0.0)
                    out[t] = _entry(t, mean, information, y.cpu(), bins)
    return [out[t] for t in samples]


def _entry(samples: int, probs: torch.Tensor, information: torch.Tensor, y: torch.Tensor, bins: int) -> dict:
    """One :func:`mc_sweep` entry from the mean probabilities and each sample's mutual information."""
    y = y.cpu()
    probs = probs.cpu()
    return {
        "samples": samples,
        "acc": accuracy(probs, y),
        "nll": nll(probs, y),
        "brier": brier(probs, y),
        "ece": expected_calibration_error(probs, y, bins),
        "entropy": predictive_entropy(probs).mean().item(),
        "mutual_information": information.mean().item(),
        "reliability": reliability(probs, y, bins),
    }
