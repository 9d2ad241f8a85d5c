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
import zipfile
from pathlib import Path

import numpy as np
import torch

from dropoutlab.data.base import ImageDataset
from dropoutlab.errors import DropoutlabError

log = logging.getLogger(__name__)

KEYS = ("x_train", "y_train", "x_test", "y_test")


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


def read_npz(path: Path, name: str) -> ImageDataset:
    """Decode a Keras-layout ``.npz`` file into an :class:`ImageDataset` called ``name``.

    Raises :class:`DropoutlabError` naming the file (and key) when the file is missing,
    not an npz archive, lacks a key, or holds arrays of the wrong shape or type.
    """
    path = Path(path)
    if not path.is_file():
        raise DropoutlabError(f"npz file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in KEYS if k not in f.files]
            if missing:
                raise DropoutlabError(
                    f"{path} lacks {', '.join(missing)}; an npz dataset needs the keys "
                    f"{', '.join(KEYS)} (found: {', '.join(f.files) or 'none'})"
                )
            arrays = {k: f[k] for k in KEYS}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DropoutlabError(f"cannot read npz file {path}: {exc}") from exc
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
