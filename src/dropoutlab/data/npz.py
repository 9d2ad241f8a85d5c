"""NumPy ``.npz`` files in Keras' layout: ``x_train, y_train, x_test, y_test``.

Samples may be feature vectors ``(N, F)`` (tabular data: any numbers, kept as ``float32``
values, checked finite, never against [0, 1]; a study scales or standardises them on the
training split), or images ``(N, H, W)`` (one channel) or channels-last ``(N, H, W, C)``,
as Keras stores them, turned into ``(N, C, H, W)``. Pixels may be

* integers in 0..255 (stored as any integer dtype), kept as they are, or
* floats in [0, 1], multiplied by 255 and rounded to ``uint8``: 8 bits is what every
  other dataset here has, and a float image rounded this way changes by at most 1/510.

Labels are non-negative integers of shape ``(N,)`` or ``(N, 1)``; the class count is
the largest label of either split plus one (at most ``DROPOUTLAB_MAX_CLASSES``).

The four members' ``.npy`` headers are read and checked together before any is inflated;
then each member is inflated and converted a chunk at a time (``_CHUNK``), so a small file
of float pixels costs its uint8 images, not its inflated floats and their copies.
"""

from __future__ import annotations

import logging
import math
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.lib import format as npy

from dropoutlab.data.base import ImageDataset, one_line
from dropoutlab.data.checks import check_label_range
from dropoutlab.data.limits import MAX_DATASET_BYTES
from dropoutlab.errors import DropoutlabError

log = logging.getLogger(__name__)

KEYS = ("x_train", "y_train", "x_test", "y_test")

# Deflate's best case is 1032 output bytes per input byte.
_DEFLATE_MAX_RATIO = 1032
_CHUNK = 1 << 22  # bytes of a member inflated and converted at a time


@dataclass(frozen=True)
class Member:
    """One ``.npy`` member of an npz archive as its header declares it, checked against the
    bytes the archive holds for it before anything is inflated."""

    key: str
    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    offset: int  # bytes of .npy header before the values

    @property
    def count(self) -> int:
        """Values the header declares."""
        return math.prod(self.shape)


def read_member_header(archive: zipfile.ZipFile, key: str, path: Path) -> Member:
    """The header of member ``key``, its declared size checked before anything is allocated.

    The ``.npy`` header inside the zip declares shape and dtype; their product must be the
    bytes the member holds, and the member's size what its compressed bytes can hold, so
    a small file claiming billions of values is refused without allocating them.
    """
    info = archive.getinfo(f"{key}.npy")
    where = f"{path}: {key}"
    if info.flag_bits & 0x1:
        raise DropoutlabError(f"{where} is encrypted; npz members are not")
    if info.compress_type == zipfile.ZIP_STORED:
        most = info.compress_size
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        most = info.compress_size * _DEFLATE_MAX_RATIO + 1024
    else:
        raise DropoutlabError(
            f"{where} is compressed with zip method {info.compress_type}; npz members are stored "
            "or deflated (np.savez, np.savez_compressed)"
        )
    if info.file_size > most:
        raise DropoutlabError(
            f"{where} claims {info.file_size} bytes, more than its {info.compress_size} stored bytes can hold"
        )
    with archive.open(info) as member:
        version = npy.read_magic(member)
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, fortran, dtype = npy.read_array_header_2_0(member)
        else:
            raise DropoutlabError(f"{where} is .npy format version {version}; 1.0 and 2.0 are read")
        header = member.tell()
    if dtype.hasobject:
        raise DropoutlabError(f"{where} holds Python objects ({dtype}); npz datasets hold numbers")
    if dtype.kind not in "biuf":  # also keeps out zero-sized dtypes, whose shape no byte count bounds
        raise DropoutlabError(f"{where} holds {dtype} values; npz datasets hold numbers")
    if any(d < 0 for d in shape):
        raise DropoutlabError(f"{where} has a negative dimension in its shape {shape}")
    declared = math.prod(shape) * dtype.itemsize
    if declared != info.file_size - header:
        raise DropoutlabError(
            f"{where}: header says {dtype} of shape {shape} ({declared} bytes), the archive holds "
            f"{info.file_size - header} bytes"
        )
    return Member(key, info, tuple(shape), dtype, bool(fortran), header)


def _chunks(archive: zipfile.ZipFile, member: Member, path: Path) -> Iterator[np.ndarray]:
    """The member's values in file order, about ``_CHUNK`` bytes at a time, so inflating a
    member never holds more than one chunk beyond what the caller keeps."""
    itemsize = member.dtype.itemsize
    step = max(1, _CHUNK // itemsize)
    with archive.open(member.info) as stream:
        stream.read(member.offset)
        done = 0
        while done < member.count:
            k = min(step, member.count - done)
            raw = stream.read(k * itemsize)
            if len(raw) != k * itemsize:
                raise DropoutlabError(f"{path}: {member.key} is truncated inside the archive")
            yield np.frombuffer(raw, dtype=member.dtype)
            done += k


def _check_headers(members: dict[str, Member], path: Path) -> None:
    """Shapes and dtypes of the four members, checked together before any value is read."""
    for split in ("train", "test"):
        x, y = members[f"x_{split}"], members[f"y_{split}"]
        if len(x.shape) not in (2, 3, 4):
            raise DropoutlabError(
                f"{path}: {x.key} has shape {x.shape}; expected feature vectors (N, F), images (N, H, W) or "
                "channels-last (N, H, W, C)"
            )
        if 0 in x.shape[1:]:
            raise DropoutlabError(
                f"{path}: {x.key} has shape {x.shape}; "
                + (
                    "a sample needs at least one feature"
                    if len(x.shape) == 2
                    else "an image needs at least one pixel and one channel"
                )
            )
        if x.dtype.kind not in "iuf":
            raise DropoutlabError(f"{path}: {x.key} has {x.dtype} pixels; expected uint8 or float in [0, 1]")
        if not (len(y.shape) == 1 or (len(y.shape) == 2 and y.shape[1] == 1)):
            raise DropoutlabError(f"{path}: {y.key} has shape {y.shape}; expected (N,) or (N, 1)")
        if y.shape[0] != x.shape[0]:
            raise DropoutlabError(
                f"{path}: {y.key} has {y.shape[0]} labels but {x.key} has {x.shape[0]} images"
            )
        if y.dtype.kind not in "iu":
            raise DropoutlabError(f"{path}: {y.key} has {y.dtype} values; labels must be integers")
        if x.shape[0] == 0:
            raise DropoutlabError(
                f"{path}: {x.key} holds no images; "
                + ("nothing could train on it" if split == "train" else "no run could be tested")
            )
    train, test = members["x_train"], members["x_test"]
    if (len(train.shape) == 2) != (len(test.shape) == 2) or (
        len(train.shape) == 2 and train.shape[1] != test.shape[1]
    ):
        raise DropoutlabError(
            f"{path}: x_train has shape {train.shape} but x_test has shape {test.shape}; their samples must match"
        )
    if len(train.shape) == 2:  # feature vectors, held as float32
        MAX_DATASET_BYTES.check(
            f"{path}: x_train and x_test as float32 values would hold", 4 * (train.count + test.count)
        )
        return
    if _channels_first(train.shape) != _channels_first(test.shape):
        raise DropoutlabError(
            f"{path}: x_train images are {_channels_first(train.shape)} but x_test images are "
            f"{_channels_first(test.shape)} (channels, height, width); they must match"
        )
    MAX_DATASET_BYTES.check(
        f"{path}: x_train and x_test as uint8 images would hold", train.count + test.count
    )


def _channels_first(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (1, *shape[1:]) if len(shape) == 3 else (shape[3], shape[1], shape[2])


def _images(archive: zipfile.ZipFile, x: Member, path: Path) -> torch.Tensor:
    """``uint8 (N, C, H, W)`` images of member ``x``, checked and converted a chunk at a time.

    Nothing larger than the uint8 result is allocated (plus one chunk); channels-last or
    Fortran-ordered members take one more uint8 copy to reach ``(N, C, H, W)``.
    """
    staged = np.empty(x.count, dtype=np.uint8)  # file order
    done = 0
    floats = x.dtype.kind == "f"
    for chunk in _chunks(archive, x, path):
        if floats:
            if not (np.isfinite(chunk).all() and chunk.min() >= 0 and chunk.max() <= 1):
                raise DropoutlabError(
                    f"{path}: {x.key} has float pixels outside [0, 1]; store uint8 0..255 or floats in [0, 1]"
                )
            np.rint(chunk * 255, out=staged[done : done + len(chunk)], casting="unsafe")
        else:
            if chunk.min() < 0 or chunk.max() > 255:  # compared in the member's own dtype
                raise DropoutlabError(f"{path}: {x.key} has integer pixels outside 0..255")
            staged[done : done + len(chunk)] = chunk
        done += len(chunk)
    if floats and done:
        log.info("%s: %s holds floats in [0, 1]; rounding them to 8-bit pixels", path, x.key)
    # Fortran order is C order of the reversed shape
    images = staged.reshape(x.shape[::-1]).T if x.fortran else staged.reshape(x.shape)
    images = images[:, None] if len(x.shape) == 3 else images.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(images))  # a copy only when not already (N, C, H, W)


def _features(archive: zipfile.ZipFile, x: Member, path: Path) -> torch.Tensor:
    """``float32 (N, F)`` feature vectors of member ``x``, converted and checked finite a chunk
    at a time: nothing larger than the result is allocated (plus one chunk)."""
    values = np.empty(x.count, dtype=np.float32)  # file order
    done = 0
    for chunk in _chunks(archive, x, path):
        part = values[done : done + len(chunk)]
        part[:] = chunk
        if x.dtype.kind == "f" and not np.isfinite(part).all():
            raise DropoutlabError(
                f"{path}: {x.key} has values that are not finite (NaN or infinity, or beyond float32); "
                "fill or drop them"
            )
        done += len(chunk)
    features = values.reshape(x.shape[::-1]).T if x.fortran else values.reshape(x.shape)
    return torch.from_numpy(np.ascontiguousarray(features))


def _labels(archive: zipfile.ZipFile, y: Member, path: Path) -> torch.Tensor:
    """``int64 (N,)`` labels of member ``y``, checked in their own dtype before conversion, so
    a uint64 label of 2**64 - 1 is refused rather than wrapped to -1."""
    values = np.empty(y.count, dtype=y.dtype.newbyteorder("="))
    done = 0
    for chunk in _chunks(archive, y, path):
        values[done : done + len(chunk)] = chunk
        done += len(chunk)
    values = values.reshape(-1)  # (N,) or (N, 1): N labels either way
    if len(values):  # exact Python ints, whatever the dtype
        check_label_range(int(values.min()), int(values.max()), f"{path}: {y.key}")
    return torch.from_numpy(values.astype(np.int64))


def read_npz(path: Path, name: str) -> ImageDataset:
    """Decode a Keras-layout ``.npz`` file into an :class:`ImageDataset` called ``name``.

    The four members' headers are read and checked first (shapes, dtypes, counts, sizes
    against the archive and ``DROPOUTLAB_MAX_DATASET_BYTES``); then each member is inflated
    and converted a chunk at a time. Raises :class:`DropoutlabError` naming the file (and key)
    when the file is missing, not an npz archive, lacks a key, or holds arrays of the wrong
    shape or type, an empty split, or labels that are negative or too large.
    """
    path = Path(path)
    if not path.is_file():
        raise DropoutlabError(f"npz file {path} does not exist")
    try:
        with zipfile.ZipFile(path) as archive:
            found = [n.removesuffix(".npy") for n in archive.namelist() if n.endswith(".npy")]
            missing = [k for k in KEYS if k not in found]
            if missing:
                raise DropoutlabError(
                    f"{path} lacks {', '.join(missing)}; an npz dataset needs the keys "
                    f"{', '.join(KEYS)} (found: {', '.join(found[:20]) or 'none'})"
                )
            members = {k: read_member_header(archive, k, path) for k in KEYS}
            _check_headers(members, path)
            y_train = _labels(archive, members["y_train"], path)
            y_test = _labels(archive, members["y_test"], path)
            features = len(members["x_train"].shape) == 2
            read = _features if features else _images
            x_train = read(archive, members["x_train"], path)
            x_test = read(archive, members["x_test"], path)
    except zipfile.BadZipFile as exc:
        raise DropoutlabError(
            f"cannot read npz file {path}: it is not an npz archive (a zip of .npy files, as np.savez "
            f"writes): {one_line(exc)}"
        ) from exc
    except (OSError, ValueError, EOFError, zlib.error, NotImplementedError) as exc:
        raise DropoutlabError(f"cannot read npz file {path}: {one_line(exc)}") from exc
    num_classes = int(torch.cat([y_train, y_test]).max()) + 1
    if features and int(y_train.min()) == int(y_train.max()):
        raise DropoutlabError(f"{path}: y_train holds a single class; a classifier needs at least 2")
    return ImageDataset(
        name, x_train, y_train, x_test, y_test, num_classes=num_classes, pixel_max=None if features else 255.0
    )
