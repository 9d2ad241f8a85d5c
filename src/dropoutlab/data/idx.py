"""IDX files, the format of MNIST, Fashion-MNIST and KMNIST (plain or gzip-compressed).

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the values in C order, big-endian.
See http://yann.lecun.com/exdb/mnist/ ("FILE FORMATS FOR THE MNIST DATABASE").
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from dropoutlab.errors import DropoutlabError

# IDX type code -> big-endian numpy dtype
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: Path) -> np.ndarray:
    """Decode one IDX file, gzip-compressed or not (told apart by content, not by name).

    Returns an array in native byte order with the shape the header declares. Raises
    :class:`DropoutlabError` naming the file when it is not IDX, or is truncated or padded.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == _GZIP_MAGIC:
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DropoutlabError(f"cannot read IDX file {path}: {exc}") from exc
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _DTYPES or raw[3] == 0:
        raise DropoutlabError(
            f"{path} is not an IDX file: bad magic number {raw[:4].hex() or '(empty file)'}"
        )
    dtype = np.dtype(_DTYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DropoutlabError(f"IDX file {path} is truncated inside its header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = math.prod(dims) * dtype.itemsize
    found = len(raw) - header
    if found != expected:
        problem = "is truncated" if found < expected else "has trailing bytes"
        raise DropoutlabError(
            f"IDX file {path} {problem}: header says {dims} values ({expected} bytes), found {found} bytes"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def read_idx_split(images: Path, labels: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``uint8 (N, 1, H, W)`` and labels ``int64 (N,)`` from an IDX image/label pair."""
    x = read_idx(images)
    y = read_idx(labels)
    if x.ndim != 3 or x.dtype != np.uint8:
        raise DropoutlabError(
            f"IDX image file {images} holds {x.dtype} values of shape {x.shape}; "
            "expected uint8 images of shape (N, height, width)"
        )
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise DropoutlabError(
            f"IDX label file {labels} holds {y.dtype} values of shape {y.shape}; "
            "expected integer labels of shape (N,)"
        )
    if len(x) != len(y):
        raise DropoutlabError(
            f"{images} has {len(x)} images but {labels} has {len(y)} labels; they must match"
        )
    if len(y) and y.min() < 0:
        raise DropoutlabError(f"IDX label file {labels} has negative labels")
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y.astype(np.int64))
