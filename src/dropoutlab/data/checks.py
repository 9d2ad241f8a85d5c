"""The checks every dataset given from Python gets, and its conversion into tensors.

Arrays (NumPy, torch, anything ``numpy.asarray`` reads) are checked before anything is copied,
one line each: shapes (``(N, F)``, ``(N, H, W)`` or ``(N, C, H, W)``, the same sample shape in
every split), lengths (one label per sample), finite values, labels that are class indices
(checked in their own dtype), at least two classes in the training labels, no empty split, and
the size bound. ``uint8`` images are 8-bit pixels; everything else becomes ``float32`` values.
Used by :class:`~dropoutlab.data.memory.Data` and the CSV reader (:mod:`dropoutlab.data.tabular`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from dropoutlab.data.base import ImageDataset
from dropoutlab.data.limits import MAX_CLASSES, MAX_DATASET_BYTES
from dropoutlab.errors import DropoutlabError

_SPLITS = ("train", "val", "test")
_NUMPY = {torch.uint8: np.uint8, torch.float32: np.float32, torch.int64: np.int64}


def as_array(value: Any, where: str) -> np.ndarray | torch.Tensor:
    """``value`` as a tensor (torch tensors, detached, on the CPU) or a NumPy array of numbers."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.is_complex():
            raise DropoutlabError(f"{where} holds complex numbers; data are real numbers")
        return value
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise DropoutlabError(f"{where} cannot be read as an array of numbers ({exc})") from None
    if array.dtype.kind not in "biuf":
        raise DropoutlabError(
            f"{where} holds {array.dtype} values; data are numbers (integers, floats, booleans)"
        )
    return array


def _kind(a: np.ndarray | torch.Tensor) -> str:
    """NumPy's dtype kind of ``a`` (``b``, ``i``, ``u``, ``f``)."""
    if isinstance(a, torch.Tensor):
        if a.dtype == torch.bool:
            return "b"
        if a.dtype.is_floating_point:
            return "f"
        return "u" if a.dtype == torch.uint8 else "i"
    return a.dtype.kind


def _is_uint8(a: np.ndarray | torch.Tensor) -> bool:
    return a.dtype == torch.uint8 if isinstance(a, torch.Tensor) else a.dtype == np.uint8


def _tensor(a: np.ndarray | torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``a`` as a contiguous tensor of ``dtype``, always a copy: the data stay ours, whatever
    the caller does to its arrays afterwards."""
    if isinstance(a, torch.Tensor):
        return a.to(dtype, copy=True).contiguous()
    return torch.from_numpy(np.array(a, dtype=_NUMPY[dtype], order="C", copy=True))


def check_samples(x: np.ndarray | torch.Tensor, where: str) -> tuple[int, ...]:
    """The shape of one sample of ``x`` (``(F,)`` or ``(C, H, W)``), shape and values checked."""
    shape = tuple(int(d) for d in x.shape)
    if len(shape) not in (2, 3, 4):
        raise DropoutlabError(
            f"{where} has shape {shape}; expected feature vectors (N, F), images (N, H, W) or (N, C, H, W)"
        )
    if shape[0] == 0:
        raise DropoutlabError(f"{where} holds no samples")
    if 0 in shape[1:]:
        raise DropoutlabError(f"{where} has shape {shape}; a sample needs at least one value")
    if _kind(x) == "f":
        finite = torch.isfinite(x) if isinstance(x, torch.Tensor) else torch.from_numpy(np.isfinite(x))
        if not bool(finite.all()):  # counted only when some are not
            bad = int(finite.numel() - finite.sum())
            first = int((~finite).reshape(shape[0], -1).any(dim=1).nonzero()[0])
            raise DropoutlabError(
                f"{where} has {bad:,} values that are not finite (NaN or infinity), the first in sample {first}; "
                "fill or drop them"
            )
    return (1, *shape[1:]) if len(shape) == 3 else shape[1:]


def labels(y: np.ndarray | torch.Tensor, n: int, where: str) -> torch.Tensor:
    """``int64 (N,)`` class indices of ``y``, checked in its own dtype before any conversion
    (so a uint64 label of 2**64 - 1 is refused, not wrapped to -1)."""
    shape = tuple(int(d) for d in y.shape)
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise DropoutlabError(f"{where} has shape {shape}; expected labels of shape (N,) or (N, 1)")
    if shape[0] != n:
        raise DropoutlabError(f"{where} has {shape[0]:,} labels for {n:,} samples; give one label per sample")
    values = y.reshape(-1)
    kind = _kind(values)
    if kind == "f":
        whole = values == values.round() if isinstance(values, torch.Tensor) else values == np.round(values)
        finite = torch.isfinite(values) if isinstance(values, torch.Tensor) else np.isfinite(values)
        if not bool((whole & finite).all()):
            raise DropoutlabError(
                f"{where} holds numbers that are not whole (or not finite); labels are class indices 0, 1, 2, ..."
            )
    if n:
        check_label_range(values.min().item(), values.max().item(), where)  # Python numbers: exact
    return _tensor(values, torch.int64)


def check_label_range(low: float, high: float, where: str) -> None:
    """Refuse labels below 0, or a largest label that would make more classes than
    ``DROPOUTLAB_MAX_CLASSES``, from the smallest and largest labels (exact Python numbers,
    taken in the labels' own dtype)."""
    if low < 0:
        raise DropoutlabError(f"{where} has negative labels; labels are class indices 0, 1, 2, ...")
    MAX_CLASSES.check(f"{where} has labels up to {int(high)}, so the dataset would have", int(high) + 1)


def build_dataset(name: str, splits: dict[str, tuple[Any, Any]]) -> ImageDataset:
    """An :class:`ImageDataset` from ``{"train": (x, y), "test": (x, y)[, "val": (x, y)]}``,
    every check made before the tensors are copied (one line each)."""
    arrays: dict[str, tuple[Any, Any]] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    total = 0
    for split in _SPLITS:
        if split not in splits:
            continue
        x, y = (as_array(v, f"data {name!r}: {k}_{split}") for k, v in zip("xy", splits[split], strict=True))
        shapes[split] = check_samples(x, f"data {name!r}: x_{split}")
        arrays[split] = (x, y)
        total += math.prod(x.shape) * (1 if _is_uint8(x) else 4)
    train_shape = shapes["train"]
    for split, shape in shapes.items():
        if shape != train_shape:
            raise DropoutlabError(
                f"data {name!r}: a sample of x_{split} has shape {shape}, one of x_train {train_shape}; they must match"
            )
    pixels = {split: _is_uint8(x) and len(shapes[split]) == 3 for split, (x, _) in arrays.items()}
    if len(set(pixels.values())) > 1:
        raise DropoutlabError(
            f"data {name!r}: some splits are uint8 images and others are not; give every split the same dtype"
        )
    MAX_DATASET_BYTES.check(f"data {name!r} would hold", total)
    ys = {split: labels(y, int(x.shape[0]), f"data {name!r}: y_{split}") for split, (x, y) in arrays.items()}
    num_classes = int(torch.cat(list(ys.values())).max()) + 1
    low, high = int(ys["train"].min()), int(ys["train"].max())
    if low == high:
        raise DropoutlabError(
            f"data {name!r}: y_train holds a single class ({low}); a classifier needs at least 2"
        )
    pixel = pixels["train"]
    xs = {}
    for split, (x, _) in arrays.items():
        t = _tensor(x, torch.uint8 if pixel else torch.float32)
        xs[split] = t[:, None] if t.dim() == 3 else t
    return ImageDataset(
        name,
        xs["train"],
        ys["train"],
        xs["test"],
        ys["test"],
        num_classes=num_classes,
        pixel_max=255.0 if pixel else None,
        x_val=xs.get("val"),
        y_val=ys.get("val"),
    )


def read_items(dataset: Any, split: str, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs and labels of a map-style torch ``Dataset``'s items, read once, in order."""
    where = f"data {name!r}: the {split} Dataset"
    if isinstance(dataset, torch.utils.data.IterableDataset) or not hasattr(dataset, "__getitem__"):
        raise DropoutlabError(
            f"{where} is not map-style (len(ds) and ds[i]); give a torch.utils.data.Dataset"
        )
    try:
        n = len(dataset)
    except TypeError:
        raise DropoutlabError(
            f"{where} has no length; give a map-style Dataset (len(ds) and ds[i])"
        ) from None
    if n == 0:
        raise DropoutlabError(f"{where} holds no items")
    first = _item(dataset, 0, where)
    shape, dtype = tuple(first[0].shape), first[0].dtype
    MAX_DATASET_BYTES.check(f"{where} would hold", n * math.prod(shape) * dtype.itemsize)
    inputs = torch.empty((n, *shape), dtype=dtype)
    targets = torch.empty(n, dtype=torch.float64)  # checked as labels by build_dataset
    for i in range(n):
        x, y = first if i == 0 else _item(dataset, i, where)
        if tuple(x.shape) != shape:
            raise DropoutlabError(f"{where}: item {i} has an input of shape {tuple(x.shape)}, item 0 {shape}")
        inputs[i] = x
        targets[i] = y
    return inputs, targets


def _item(dataset: Any, i: int, where: str) -> tuple[torch.Tensor, float]:
    item = dataset[i]
    if not isinstance(item, Sequence) or isinstance(item, str) or len(item) != 2:
        raise DropoutlabError(
            f"{where}: item {i} is {type(item).__name__}, not (input, label); return a pair from __getitem__"
        )
    x, y = item
    x = as_array(x, f"{where}: the input of item {i}")
    x = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x))
    if isinstance(y, torch.Tensor | np.ndarray) and math.prod(y.shape) != 1:
        raise DropoutlabError(
            f"{where}: the label of item {i} has shape {tuple(y.shape)}; a label is one number"
        )
    try:
        label = float(y.item() if hasattr(y, "item") else y)
    except (TypeError, ValueError):
        raise DropoutlabError(
            f"{where}: the label of item {i} is {y!r}; a label is a class index 0, 1, 2, ..."
        ) from None
    return x, label


def tensor_identity(dataset: ImageDataset) -> str:
    """``"sha256:<hex>"`` of every split's dtype, shape and bytes (labels as int64)."""
    digest = hashlib.sha256()
    for part in _parts(dataset):
        digest.update(f"{part.dtype}{tuple(part.shape)}".encode())
        digest.update(part.contiguous().numpy().reshape(-1).view(np.uint8))
    return f"sha256:{digest.hexdigest()}"


def _parts(dataset: ImageDataset) -> Iterable[torch.Tensor]:
    for part in (
        dataset.x_train,
        dataset.y_train,
        dataset.x_val,
        dataset.y_val,
        dataset.x_test,
        dataset.y_test,
    ):
        if part is not None:
            yield part
