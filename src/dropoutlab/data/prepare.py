"""From a decoded dataset to the tensors a run trains on: split, scaled, on the device."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from dropoutlab.data.base import ImageDataset
from dropoutlab.errors import DropoutlabError

NORMALIZATIONS = ("unit", "symmetric", "standard")
# samples of training data evaluated in eval mode each epoch (eval_train): a fixed random
# subset, the same for every run of a split. 2,000 costs one forward pass over 2,000 images
# per epoch (1% of a Fashion-MNIST epoch's training, 7% of a 10k-image CIFAR epoch's) and
# measures an accuracy of 90% to about +-0.7 points (one standard error).
TRAIN_EVAL_MAX = 2_000
# the fewest images a split may hold: a validation loss of one image is that image's loss, and
# batch norm cannot train on a batch of one
MIN_SPLIT = 2


@dataclass(frozen=True)
class Split:
    """Images (normalised, in torch's default float dtype: float32 unless a caller set another)
    and labels (int64) of one split, on the training device."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class PreparedData:
    """The splits of one study setting, shared by all of its runs.

    ``train`` is what the optimiser sees, ``val`` the held-out part of the training set
    (empty when ``validation = 0``), ``train_eval`` a fixed subset of ``train`` (at most
    ``TRAIN_EVAL_MAX`` samples, at random) evaluated in eval mode, and ``test`` is used once, at the end of a run.
    """

    train: Split
    val: Split
    train_eval: Split
    test: Split
    input_shape: tuple[int, ...]
    num_classes: int

    def to(self, device: torch.device | str) -> PreparedData:
        """The same splits on ``device`` (itself when they are there already)."""
        if self.train.x.device == torch.device(device):
            return self
        move = {name: Split(split.x.to(device), split.y.to(device))
                for name, split in (("train", self.train), ("val", self.val), ("train_eval", self.train_eval),
                                    ("test", self.test))}  # fmt: skip
        return PreparedData(**move, input_shape=self.input_shape, num_classes=self.num_classes)


def scaling(
    dataset: ImageDataset, normalize: str, train_x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (per-feature for feature vectors) ``(shift, scale)`` such that
    ``(x - shift) / scale`` is the normalised sample.

    ``"unit"`` maps pixels to [0, 1] (the CIFAR-10 notebook's division by 255), ``"symmetric"``
    to [-1, 1] (the Fashion-MNIST notebook's ``Normalize(0.5, 0.5)``), ``"standard"`` to zero
    mean and unit variance per channel, measured on the training split only. Values that are
    not pixels (``pixel_max`` None: feature vectors, arrays from Python) have no white value:
    ``"unit"`` and ``"symmetric"`` map the training split's range of each channel or feature to
    [0, 1] and [-1, 1], and a constant one is only shifted.
    """
    channels = dataset.input_shape[0]
    dims = (0, *range(2, train_x.dim()))  # every dimension but the channel (or feature)
    if normalize in ("unit", "symmetric") and dataset.pixel_max is None:
        low = train_x.amin(dim=dims).double()
        high = train_x.amax(dim=dims).double()
        span = torch.where(high > low, high - low, torch.ones_like(high))
        if normalize == "unit":
            return low.float(), span.float()
        return ((low + high) / 2).float(), (span / 2).float()
    if normalize == "unit":
        return torch.zeros(channels), torch.full((channels,), dataset.pixel_max)
    if normalize == "symmetric":
        half = dataset.pixel_max / 2
        return torch.full((channels,), half), torch.full((channels,), half)
    if normalize == "standard":
        total = torch.zeros(channels, dtype=torch.float64)
        total_sq = torch.zeros(channels, dtype=torch.float64)
        for chunk in train_x.split(4096):  # chunks keep the float64 copy small
            c = chunk.to(torch.float64)
            total += c.sum(dim=dims)
            total_sq += (c * c).sum(dim=dims)
        count = train_x.numel() // channels
        mean = total / count
        var = total_sq / count - mean * mean
        if dataset.pixel_max is None:
            # a constant feature (its variance float32 rounding, under a millionth of its mean)
            # is only shifted, not blown up; a feature in tiny units keeps its scale
            return mean.float(), torch.where(
                var > 1e-12 * mean * mean, var, torch.ones_like(var)
            ).sqrt().float()
        std = var.clamp_min(1e-12).sqrt()
        return mean.float(), std.float()
    raise ValueError(f"unknown normalization {normalize!r}")


def check_split(n: int, validation: float, dataset: str) -> None:
    """Refuse a split of ``n`` training images that leaves either part degenerate.

    The training part must keep at least ``MIN_SPLIT`` images, and so must the validation
    part unless ``validation`` is 0 (no validation split). Called where a study is validated
    (with the dataset's declared size, so ``--dry-run`` refuses it) and again by
    :func:`prepare_data` (with the size of the files actually read), before anything trains.
    """
    n_val = round(n * validation)
    if n - n_val >= MIN_SPLIT and (validation == 0 or n_val >= MIN_SPLIT):
        return
    if n < 2 * MIN_SPLIT:
        allowed = (
            "set validation = 0"
            if n >= MIN_SPLIT
            else f"use a dataset of at least {MIN_SPLIT} training images"
        )
    else:
        # four decimals, rounded inwards, so that both ends of the advice are themselves allowed
        low, high = math.ceil(MIN_SPLIT / n * 1e4) / 1e4, math.floor((n - MIN_SPLIT) / n * 1e4) / 1e4
        span = f"{low:g}" if low == high else f"between {low:g} and {high:g}"
        allowed = f"set validation = 0 (no split) or {span}"
    raise DropoutlabError(
        f"validation: {validation:g} of the {n:,} training images of {dataset} leaves {n - n_val:,} to train on "
        f"and {n_val:,} to validate on; each part needs at least {MIN_SPLIT} images: {allowed}"
    )


def split_indices(n: int, validation: float, split_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the training and validation parts of ``n`` samples, fixed by ``split_seed``."""
    n_val = round(n * validation)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    return order[n_val:], order[:n_val]


def prepare_data(
    dataset: ImageDataset, validation: float, split_seed: int, normalize: str, device: torch.device | str
) -> PreparedData:
    """Split off validation, normalise once and move every split to ``device``.

    The uint8 images go to the device first and are converted there, so a GPU run never
    copies float32 images over the bus. A dataset that brings its own validation split
    (``x_val``, arrays from Python) uses it, and ``validation`` carves nothing. Raises
    :class:`DropoutlabError` for a degenerate split (:func:`check_split`).
    """
    if dataset.y_val is None:
        check_split(len(dataset.y_train), validation, dataset.name)
        train_idx, val_idx = split_indices(len(dataset.y_train), validation, split_seed)
        x_fit, y_fit = dataset.x_train[train_idx], dataset.y_train[train_idx]
        x_val, y_val = dataset.x_train[val_idx], dataset.y_train[val_idx]
    else:
        x_fit, y_fit, x_val, y_val = dataset.x_train, dataset.y_train, dataset.x_val, dataset.y_val
    shift, scale = scaling(dataset, normalize, x_fit)
    view = (1, -1, *[1] * (x_fit.dim() - 2))  # (1, C, 1, 1) for images, (1, F) for feature vectors
    shift = shift.to(device).view(view)
    scale = scale.to(device).view(view)

    def split(x: torch.Tensor, y: torch.Tensor) -> Split:
        moved = x.to(device)
        # in place: one float copy, not three; torch's default dtype, as nn.Linear's weights, so that
        # the tests can train both engines in float64. A copy even where the dtype is that already
        # (float32 values), so that the dataset's own tensors are never normalised in place.
        x = moved.to(torch.get_default_dtype(), copy=moved is x)
        return Split(x.sub_(shift).div_(scale), y.to(device))

    train = split(x_fit, y_fit)
    n_eval = min(len(train), TRAIN_EVAL_MAX)
    return PreparedData(
        train=train,
        val=split(x_val, y_val),
        train_eval=Split(train.x[:n_eval], train.y[:n_eval]),
        test=split(dataset.x_test, dataset.y_test),
        input_shape=dataset.input_shape,
        num_classes=dataset.num_classes,
    )
