"""CIFAR-10 and CIFAR-100 in their "python version" pickles, from the archive or unpacked.

Each batch is a pickled dict with ``b"data"``, a ``uint8 (N, 3072)`` array whose rows are
the red, green and blue 32x32 planes one after the other, and a list of labels
(``b"labels"`` for CIFAR-10, ``b"fine_labels"`` for CIFAR-100).
See https://www.cs.toronto.edu/~kriz/cifar.html.

Archives are read in place: the expected members are looked up by exact name and read
into memory, never extracted, so no member can write outside any folder. Each batch file's
size (an archive member's declared size) is checked before it is read.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dropoutlab.data.base import one_line
from dropoutlab.data.limits import MAX_DATASET_BYTES
from dropoutlab.errors import DropoutlabError


@dataclass(frozen=True)
class CifarLayout:
    """Where one CIFAR variant keeps its batches and labels."""

    folder: str  # top folder inside the archive
    train: tuple[str, ...]
    test: tuple[str, ...]
    label_key: bytes
    num_classes: int

    def members(self) -> tuple[str, ...]:
        return self.train + self.test


LAYOUTS = {
    "cifar10": CifarLayout(
        folder="cifar-10-batches-py",
        train=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test=("test_batch",),
        label_key=b"labels",
        num_classes=10,
    ),
    "cifar100": CifarLayout(
        folder="cifar-100-python",
        train=("train",),
        test=("test",),
        label_key=b"fine_labels",
        num_classes=100,
    ),
}

# The only globals a CIFAR batch needs; anything else in a pickle could run code.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol-2 pickles spell bytes objects
}


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles the allowed globals only, and makes bytes no longer in all than the pickle.

    A pickle stores a string once and can encode it to bytes again and again: ten bytes per
    copy of a 30 MB string. A real batch encodes each string once, so the bytes made from
    strings never outgrow the pickle; past that, the pickle is refused.
    """

    def __init__(self, blob: bytes) -> None:
        super().__init__(io.BytesIO(blob), encoding="bytes")
        self.room = len(blob)

    def encode(self, text: object, encoding: str = "utf-8") -> bytes:
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise pickle.UnpicklingError("bytes in a CIFAR batch are latin1-encoded strings")
        self.room -= len(text)
        if self.room < 0:
            raise pickle.UnpicklingError("it makes more bytes from its strings than the pickle holds")
        return codecs.encode(text, encoding)

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if (module, name) == ("_codecs", "encode"):
            return self.encode
        return super().find_class(module, name)


def _labels(raw: object, n: int, where: str, layout: CifarLayout) -> np.ndarray:
    """The ``n`` labels of a batch, checked before numpy sees them.

    Type and length come first: ``np.asarray`` of a small pickle of shared, nested lists
    would build an array of billions of elements before any check could refuse it.
    """
    what = f"{where}: {layout.label_key!r} must hold {n} integer labels"
    if isinstance(raw, np.ndarray):
        if raw.shape != (n,) or raw.dtype.kind not in "iu":
            raise DropoutlabError(f"{what}, found {raw.dtype} of shape {raw.shape}")
        return raw
    if not isinstance(raw, list):
        raise DropoutlabError(f"{what}, found {type(raw).__name__}")
    if len(raw) != n:
        raise DropoutlabError(f"{what}, found a list of {len(raw)} items")
    odd = next(
        (type(v).__name__ for v in raw if not isinstance(v, (int, np.integer)) or isinstance(v, bool)), None
    )
    if odd is not None:
        raise DropoutlabError(f"{what}, found a {odd} among them")
    try:
        return np.asarray(raw, dtype=np.int64)
    except OverflowError as exc:  # an int beyond 64 bits
        raise DropoutlabError(f"{what}: {one_line(exc)}") from exc


def _decode_batch(blob: bytes, where: str, layout: CifarLayout) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _BatchUnpickler(blob).load()
    except Exception as exc:  # a damaged pickle can fail in many ways
        raise DropoutlabError(f"{where} is not a readable CIFAR batch: {one_line(exc)}") from exc
    if not isinstance(batch, dict) or b"data" not in batch or layout.label_key not in batch:
        # only short text keys are shown: a key can be any hashable, whose repr may be huge
        keys = (
            sorted(repr(k[:40]) for k in batch if isinstance(k, (bytes, str)))[:10]
            if isinstance(batch, dict)
            else type(batch).__name__
        )
        raise DropoutlabError(
            f"{where} is not a CIFAR batch: expected keys b'data' and {layout.label_key!r}, found {keys}"
        )
    data = batch[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", type(data).__name__)
        raise DropoutlabError(f"{where}: b'data' must be uint8 of shape (N, 3072), found {shape}")
    labels = _labels(batch[layout.label_key], len(data), where, layout)
    if len(labels) and (labels.min() < 0 or labels.max() >= layout.num_classes):
        raise DropoutlabError(f"{where}: labels must lie in [0, {layout.num_classes})")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


class _Budget:
    """The bytes of batch files read so far, refused past ``DROPOUTLAB_MAX_DATASET_BYTES``
    before the batch that would pass it is read."""

    def __init__(self) -> None:
        self.used = 0

    def take(self, size: int, where: str) -> int:
        """Count ``size`` more bytes for ``where``; the most that may then be read (one more
        than ``size``, to notice a file that grew since its size was taken)."""
        self.used += size
        MAX_DATASET_BYTES.check(f"the CIFAR batches up to {where} hold", self.used)
        return size + 1


def _read_folder(folder: Path, layout: CifarLayout, budget: _Budget) -> Iterator[tuple[str, str, bytes]]:
    """``(member, where, blob)`` for each batch file of an unpacked folder, each size checked
    before the file is read, one file in memory at a time."""
    for m in layout.members():
        where = str(folder / m)
        try:
            with open(folder / m, "rb") as handle:
                most = budget.take(os.fstat(handle.fileno()).st_size, where)
                blob = handle.read(most)
        except OSError as exc:
            raise DropoutlabError(f"cannot read CIFAR batch {where}: {one_line(exc)}") from exc
        if len(blob) == most:
            raise DropoutlabError(f"CIFAR batch {where} grew while it was read")
        yield m, where, blob


def _read_archive(archive: Path, layout: CifarLayout, budget: _Budget) -> Iterator[tuple[str, str, bytes]]:
    """``(member, where, blob)`` for each batch of a ``.tar.gz``, in the archive's order, each
    member's declared size checked before it is read."""
    wanted = {f"{layout.folder}/{m}": m for m in layout.members()}
    seen = set()
    try:
        # stream mode reads the gzip once, front to back
        with tarfile.open(archive, mode="r|*") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if name not in wanted or name in seen:
                    continue
                if not member.isfile():
                    raise DropoutlabError(f"archive {archive}: member {name} is a link or folder, not a file")
                where = f"{archive}:{name}"
                budget.take(member.size, where)
                handle = tar.extractfile(member)
                assert handle is not None  # regular files always have one
                seen.add(name)
                yield wanted[name], where, handle.read(member.size)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DropoutlabError(f"cannot read archive {archive}: {one_line(exc)}") from exc
    missing = [name for name in wanted if name not in seen]
    if missing:
        raise DropoutlabError(f"archive {archive} lacks {', '.join(missing)}")


def read_cifar(source: Path, variant: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x_train, y_train, x_test, y_test`` of ``variant`` (``"cifar10"`` or ``"cifar100"``).

    ``source`` is the ``.tar.gz`` archive or the unpacked folder that holds the batch
    files (``data_batch_1`` ... ``test_batch``, or ``train`` and ``test``). Images come
    back ``uint8 (N, 3, 32, 32)``, labels ``int64``. Each batch's size is checked before it is
    read (all of them together hold at most ``DROPOUTLAB_MAX_DATASET_BYTES``), and each is
    decoded as it is read, so one batch file at a time is in memory.
    """
    layout = LAYOUTS[variant]
    source = Path(source)
    budget = _Budget()
    blobs = _read_folder(source, layout, budget) if source.is_dir() else _read_archive(source, layout, budget)
    parts = {m: _decode_batch(blob, where, layout) for m, where, blob in blobs}

    def split(members: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        x = np.concatenate([parts[m][0] for m in members])
        y = np.concatenate([parts[m][1] for m in members])
        for m in members:
            del parts[m]  # each batch's pixels are freed once copied into the split
        return torch.from_numpy(x), torch.from_numpy(y)

    return *split(layout.train), *split(layout.test)
