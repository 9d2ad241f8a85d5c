"""IDX files, the format of MNIST, Fashion-MNIST and KMNIST (plain or gzip-compressed).

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the values in C order, big-endian.
See http://yann.lecun.com/exdb/mnist/ ("FILE FORMATS FOR THE MNIST DATABASE").
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from dropoutlab.data.base import one_line
from dropoutlab.errors import DropoutlabError

# IDX type code -> big-endian numpy dtype
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


# Deflate's best case is 1032 output bytes per input byte; a gzip file whose header claims
# more than that can never hold the values, so it is refused before anything is allocated.
_DEFLATE_MAX_RATIO = 1032
_CHUNK = 1 << 20  # decompressed bytes read at a time, so no read holds a second copy of the data


def read_idx(path: Path) -> np.ndarray:
    """Decode one IDX file, gzip-compressed or not (told apart by content, not by name).

    Returns an array in native byte order with the shape the header declares. Raises
    :class:`DropoutlabError` naming the file when it is not IDX, or is truncated or padded.
    The header is read first; then at most the bytes it declares (plus one, to find trailing
    bytes) are read, so a small file that decompresses to gigabytes costs no more memory than
    the array it claims to hold, and a header claiming more than the file can hold is refused
    before anything is allocated.
    """
    path = Path(path)
    try:
        with open(path, "rb") as plain:
            size = os.fstat(plain.fileno()).st_size
            compressed = plain.read(2) == _GZIP_MAGIC
            plain.seek(0)
            if compressed:
                with gzip.GzipFile(fileobj=plain, mode="rb") as stream:
                    return _read_stream(stream, path, size * _DEFLATE_MAX_RATIO)
            return _read_stream(plain, path, size, exact=True)
    except (OSError, EOFError, zlib.error) as exc:
        raise DropoutlabError(f"cannot read IDX file {path}: {one_line(exc)}") from exc


def _read_stream(stream: BinaryIO, path: Path, bound: int, exact: bool = False) -> np.ndarray:
    """The array of an IDX stream that holds at most ``bound`` bytes (exactly, if ``exact``)."""
    magic = stream.read(4)
    if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in _DTYPES or magic[3] == 0:
        raise DropoutlabError(f"{path} is not an IDX file: bad magic number {magic.hex() or '(empty file)'}")
    dtype = np.dtype(_DTYPES[magic[2]])
    ndim = magic[3]
    raw_dims = stream.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DropoutlabError(f"IDX file {path} is truncated inside its header")
    dims = struct.unpack(f">{ndim}I", raw_dims)
    header = 4 + 4 * ndim
    expected = math.prod(dims) * dtype.itemsize
    if exact and header + expected != bound:
        problem = "is truncated" if header + expected > bound else "has trailing bytes"
        raise DropoutlabError(
            f"IDX file {path} {problem}: header says {dims} values ({expected} bytes), found {bound - header} bytes"
        )
    if header + expected > bound:
        raise DropoutlabError(
            f"IDX file {path} is truncated: header says {dims} values ({expected} bytes), more than "
            f"its {bound // _DEFLATE_MAX_RATIO} compressed bytes can hold ({bound - header} at most)"
        )
    values = np.empty(expected, dtype=np.uint8)
    view = memoryview(values)
    found = 0
    while found < expected:
        got = stream.readinto(view[found : found + _CHUNK])
        if not got:
            break
        found += got
    if found == expected and stream.read(1):
        problem, found_text = "has trailing bytes", f"more than {found} bytes"
    elif found < expected:
        problem, found_text = "is truncated", f"{found} bytes"
    else:
        return values.view(dtype).reshape(dims).astype(dtype.newbyteorder("="), copy=False)
    raise DropoutlabError(
        f"IDX file {path} {problem}: header says {dims} values ({expected} bytes), found {found_text}"
    )


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
