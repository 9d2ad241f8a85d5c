"""NumPy ``.npz`` files in Keras' layout: ``x_train, y_train, x_test, y_test``.

Images may be ``(N, H, W)`` (one channel) or channels-last ``(N, H, W, C)``, as Keras
stores them; they are turned into ``(N, C, H, W)``. Pixels may be

* integers in 0..255 (stored as any integer dtype), kept as they are, or
* floats in [0, 1], multiplied by 255 and rounded to ``uint8``: 8 bits is what every
  other dataset here has, and a float image rounded this way changes by at most 1/510.

Labels are non-negative integers of shape ``(N,)`` or ``(N, 1)``; the class count is
the largest label of either split plus one.
"""

from __future__ import annotations

import logging
import math
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from numpy.lib import format as npy

from dropoutlab.data.base import ImageDataset, one_line
from dropoutlab.errors import DropoutlabError

log = logging.getLogger(__name__)

KEYS = ("x_train", "y_train", "x_test", "y_test")

# Deflate's best case is 1032 output bytes per input byte.
_DEFLATE_MAX_RATIO = 1032


def _images(x: np.ndarray, path: Path, key: str) -> torch.Tensor:
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        x = x.transpose(0, 3, 1, 2)
    else:
        raise DropoutlabError(
            f"{path}: {key} has shape {x.shape}; expected (N, H, W) or channels-last (N, H, W, C)"
        )
    if x.dtype.kind in "iu":
        if x.size and (x.min() < 0 or x.max() > 255):
            raise DropoutlabError(f"{path}: {key} has integer pixels outside 0..255")
        x = x.astype(np.uint8)
    elif x.dtype.kind == "f":
        if x.size and not (np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1):
            raise DropoutlabError(
                f"{path}: {key} has float pixels outside [0, 1]; store uint8 0..255 or floats in [0, 1]"
            )
        log.info("%s: %s holds floats in [0, 1]; rounding them to 8-bit pixels", path, key)
        x = np.rint(x * 255).astype(np.uint8)
    else:
        raise DropoutlabError(f"{path}: {key} has {x.dtype} pixels; expected uint8 or float in [0, 1]")
    return torch.from_numpy(np.ascontiguousarray(x))


def _labels(y: np.ndarray, n: int, path: Path, key: str) -> torch.Tensor:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DropoutlabError(f"{path}: {key} has shape {y.shape}; expected (N,) or (N, 1)")
    if len(y) != n:
        x_key = key.replace("y_", "x_")
        raise DropoutlabError(f"{path}: {key} has {len(y)} labels but {x_key} has {n} images")
    if y.dtype.kind not in "iu":
        raise DropoutlabError(f"{path}: {key} has {y.dtype} values; labels must be integers")
    if len(y) and y.min() < 0:
        raise DropoutlabError(f"{path}: {key} has negative labels; labels must be 0, 1, 2, ...")
    return torch.from_numpy(y.astype(np.int64))


def _read_member(archive: zipfile.ZipFile, key: str, path: Path) -> np.ndarray:
    """The array ``key`` of an npz archive, its declared size checked before it is allocated.

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
            shape, _, dtype = npy.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, _, dtype = npy.read_array_header_2_0(member)
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
    with archive.open(info) as member:
        return npy.read_array(member, allow_pickle=False)


def read_npz(path: Path, name: str) -> ImageDataset:
    """Decode a Keras-layout ``.npz`` file into an :class:`ImageDataset` called ``name``.

    Raises :class:`DropoutlabError` naming the file (and key) when the file is missing,
    not an npz archive, lacks a key, or holds arrays of the wrong shape or type.
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
            arrays = {k: _read_member(archive, k, path) for k in KEYS}
    except zipfile.BadZipFile as exc:
        raise DropoutlabError(
            f"cannot read npz file {path}: it is not an npz archive (a zip of .npy files, as np.savez "
            f"writes): {one_line(exc)}"
        ) from exc
    except (OSError, ValueError, EOFError, zlib.error, NotImplementedError) as exc:
        raise DropoutlabError(f"cannot read npz file {path}: {one_line(exc)}") from exc
    x_train = _images(arrays["x_train"], path, "x_train")
    x_test = _images(arrays["x_test"], path, "x_test")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DropoutlabError(
            f"{path}: x_train images are {tuple(x_train.shape[1:])} but x_test images are "
            f"{tuple(x_test.shape[1:])} (channels, height, width); they must match"
        )
    y_train = _labels(arrays["y_train"], len(x_train), path, "y_train")
    y_test = _labels(arrays["y_test"], len(x_test), path, "y_test")
    if len(y_train) == 0:
        raise DropoutlabError(f"{path}: x_train holds no images")
    num_classes = int(torch.cat([y_train, y_test]).max()) + 1
    return ImageDataset(name, x_train, y_train, x_test, y_test, num_classes=num_classes)
