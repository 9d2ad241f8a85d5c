"""Your data from Python: NumPy arrays, torch tensors, a pandas DataFrame or a torch ``Dataset``.

:class:`Data` reads them once into tensors, with the checks every dataset gets (shapes,
lengths, finite values, label range, at least two classes; one line each), and makes them
known to studies by name: a study whose ``dataset`` is that name trains on them, and
``run_study(study, store, data=...)`` says so explicitly::

    import dropoutlab as dl

    data = dl.Data.from_arrays(x_train, y_train, x_test, y_test, name="my-data")
    study = dl.load_study("study.toml")  # dataset = "my-data"
    dl.run_study(study, store, data=data)

Samples are feature vectors ``(N, F)``, one-channel images ``(N, H, W)`` or images
``(N, C, H, W)`` (channels first, as PyTorch has them; transpose Keras' channels-last arrays).
``uint8`` images are 8-bit pixels (white = 255), as the registered datasets; every other array
is kept as ``float32`` values, which a study scales by the training split's range
(``normalize = "unit"`` or ``"symmetric"``) or standardises (``"standard"``), never checking
them against [0, 1]. Labels are class indices 0, 1, 2, ... (integers, or whole numbers).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dropoutlab.data.base import ImageDataset
from dropoutlab.data.limits import MAX_CLASSES, MAX_DATASET_BYTES
from dropoutlab.errors import DropoutlabError

log = logging.getLogger(__name__)

#: Prefixes of the dataset names that name files; a name given to data from Python cannot start so.
FILE_PREFIXES = ("npz:", "csv:")
MAX_NAME_CHARS = 200

_SPLITS = ("train", "val", "test")
_NUMPY = {torch.uint8: np.uint8, torch.float32: np.float32, torch.int64: np.int64}

# Data made in this process, by name: how a study's `dataset` finds them (see Data.__post_init__).
_KNOWN: dict[str, Data] = {}


def known(name: str) -> Data | None:
    """The :class:`Data` made in this process under ``name``, or None."""
    return _KNOWN.get(name)


def known_names() -> list[str]:
    """The names of the :class:`Data` made in this process, in the order they were made."""
    return list(_KNOWN)


@dataclass(frozen=True, eq=False)
class Data:
    """A dataset of your own, read once into tensors, that studies name by :attr:`name`.

    Make one with :meth:`from_arrays`, :meth:`from_frame` or :meth:`from_dataset`. From then
    on a study of this process whose ``dataset`` is ``name`` trains on it (a later ``Data`` of
    the same name replaces it), and :func:`~dropoutlab.study.run_study` accepts it as ``data=``.
    ``identity`` is the SHA-256 of its tensors' bytes: a study stored with other data under
    the same name is refused as a changed design (:mod:`dropoutlab.study.design`).

    Attributes:
        dataset: the tensors (``x_*`` ``uint8`` pixels or ``float32`` values, ``y_*`` ``int64``).
        identity: ``"sha256:<hex>"`` of the splits' dtypes, shapes and bytes.
        classes: the label of each class index when the labels were not numbers (a DataFrame's
            strings, sorted); None otherwise.
    """

    dataset: ImageDataset
    identity: str = ""
    classes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.identity:
            object.__setattr__(self, "identity", tensor_identity(self.dataset))
        if self.name in _KNOWN and _KNOWN[self.name].identity != self.identity:
            log.info("data %r: replaced by other data of the same name", self.name)
        _KNOWN[self.name] = self

    @property
    def name(self) -> str:
        """The name a study gives as its ``dataset`` (and the report shows)."""
        return self.dataset.name

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(features,)`` or ``(channels, height, width)`` of one sample."""
        return self.dataset.input_shape

    @property
    def num_classes(self) -> int:
        """The number of classes: the largest label plus one."""
        return self.dataset.num_classes

    def __repr__(self) -> str:
        d = self.dataset
        val = "" if d.y_val is None else f", val={len(d.y_val)}"
        return (
            f"Data(name={self.name!r}, train={len(d.y_train)}{val}, test={len(d.y_test)}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes})"
        )

    @classmethod
    def from_arrays(
        cls,
        x_train: Any,
        y_train: Any,
        x_test: Any,
        y_test: Any,
        x_val: Any = None,
        y_val: Any = None,
        *,
        name: str = "arrays",
    ) -> Data:
        """Data from NumPy arrays or torch tensors (or anything ``numpy.asarray`` reads).

        ``x_*`` are feature vectors ``(N, F)``, images ``(N, H, W)`` or ``(N, C, H, W)``;
        ``y_*`` their labels ``(N,)`` (or ``(N, 1)``), class indices 0, 1, 2, ... A validation
        split ``x_val, y_val`` is optional: given, it is the study's validation set (its
        ``validation`` fraction is then not carved from the training split); else the study
        carves one as for any dataset. Raises :class:`DropoutlabError` in one line for
        mismatched lengths or shapes, non-finite values, labels that are not class indices,
        fewer than two classes or an empty split.
        """
        name = check_name(name)
        if (x_val is None) != (y_val is None):
            raise DropoutlabError(f"data {name!r}: give both x_val and y_val, or neither")
        splits = {"train": (x_train, y_train), "test": (x_test, y_test)}
        if x_val is not None:
            splits["val"] = (x_val, y_val)
        return cls(build_dataset(name, splits))

    @classmethod
    def from_frame(
        cls,
        frame: Any,
        label: str,
        *,
        test: Any = 0.2,
        validation: Any = None,
        name: str = "frame",
    ) -> Data:
        """Data from a pandas DataFrame: ``label`` names the label column, every other column
        is a feature (numbers or booleans; encode text first, e.g. ``pandas.get_dummies``).

        ``test`` is a DataFrame of the same columns, or the fraction of ``frame`` held out for
        testing (default 0.2: stratified by label, fixed by ``random_state=0``, so every study
        tests on the same rows). ``validation`` is an optional DataFrame; without one a study
        carves its ``validation`` fraction from the training rows. Labels that are not numbers
        (text, categories) become class indices in sorted order (:attr:`classes`).
        """
        from dropoutlab.data.tabular import frame_splits

        name = check_name(name)
        splits, classes = frame_splits(frame, label, test, validation, name)
        return cls(build_dataset(name, splits), classes=classes)

    @classmethod
    def from_dataset(cls, train: Any, test: Any, validation: Any = None, *, name: str = "dataset") -> Data:
        """Data from map-style torch ``Dataset`` objects (``len`` and ``ds[i]``), whose items are
        ``(input, label)``: an input tensor (or array) of the same shape for every item, and an
        integer label. Each is read once, item by item, into one tensor; transforms run then,
        once, not per epoch. ``validation`` is optional, as for :meth:`from_arrays`.
        """
        name = check_name(name)
        splits = {"train": read_items(train, "train", name), "test": read_items(test, "test", name)}
        if validation is not None:
            splits["val"] = read_items(validation, "validation", name)
        return cls(build_dataset(name, splits))


def use(data: Any, datasets: Iterable[str]) -> None:
    """Make ``data`` (a :class:`Data`) the data of its name again (another may have replaced it
    since), and refuse it when no run of ``datasets`` (their dataset names) trains on it."""
    if not isinstance(data, Data):
        raise DropoutlabError(
            f"data=: {type(data).__name__} is not allowed; allowed: a dropoutlab.Data "
            "(Data.from_arrays, Data.from_frame, Data.from_dataset)"
        )
    _KNOWN[data.name] = data
    names = sorted(set(datasets))
    if data.name not in names:
        raise DropoutlabError(
            f"data=: the data is named {data.name!r} but the study trains on {', '.join(map(repr, names))}; "
            f"set dataset = {data.name!r} in the study"
        )


def check_name(name: Any) -> str:
    """``name`` if it can name data from Python: text of 1 to 200 printable characters, neither
    a registered dataset's name nor a file form (``npz:``, ``csv:``)."""
    from dropoutlab.data.registry import DATASETS  # the registry imports this module

    if not isinstance(name, str) or not name.strip():
        raise DropoutlabError(f"data name: {name!r} is not allowed; allowed: a short text, e.g. 'my-data'")
    name = name.strip()
    if len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise DropoutlabError(
            f"data name: {name[:40]!r}... is not allowed; allowed: at most {MAX_NAME_CHARS} printable characters"
        )
    if name.lower().replace("_", "-") in DATASETS or name.lower().startswith(FILE_PREFIXES):
        raise DropoutlabError(
            f"data name: {name!r} names a registered dataset or a file form; give your data another name"
        )
    return name


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
        bad = int(finite.numel() - finite.sum())
        if bad:
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
        low, high = values.min().item(), values.max().item()  # Python numbers, exact for integers
        if low < 0:
            raise DropoutlabError(f"{where} has negative labels; labels are class indices 0, 1, 2, ...")
        MAX_CLASSES.check(f"{where} has labels up to {int(high)}, so the dataset would have", int(high) + 1)
    return _tensor(values, torch.int64)


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
    present = torch.unique(ys["train"])
    if len(present) < 2:
        raise DropoutlabError(
            f"data {name!r}: y_train holds a single class ({int(present[0])}); a classifier needs at least 2"
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
