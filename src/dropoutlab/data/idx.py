"""IDX files, the format of MNIST, Fashion-MNIST and KMNIST (plain or gzip-compressed).

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the values in C order, big-endian.
See http://yann.lecun.com/exdb/mnist/ ("FILE FORMATS FOR THE MNIST DATABASE").

Every file is read in two steps: its header (a few bytes) first, checked against the file's
size, the shape the caller expects and ``DROPOUTLAB_MAX_DATASET_BYTES``; then its values. So a
sparse file of 20 KB that declares 1 x 60000 x 60000 values is refused after reading 16 bytes.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from dropoutlab.data.base import one_line
from dropoutlab.data.limits import MAX_DATASET_BYTES
from dropoutlab.errors import DropoutlabError

# IDX type code -> big-endian numpy dtype
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


# Deflate's best case is 1032 output bytes per input byte; a gzip file whose header claims
# more than that can never hold the values, so it is refused before anything is allocated.
_DEFLATE_MAX_RATIO = 1032
_CHUNK = 1 << 20  # decompressed bytes read at a time, so no read holds a second copy of the data


@dataclass(frozen=True)
class IdxHeader:
    """What an IDX file declares: ``dims`` (its shape) and ``dtype`` (big-endian), checked
    against the bytes the file holds or (gzip) can hold, and against the dataset bound."""

    path: Path
    dims: tuple[int, ...]
    dtype: np.dtype
    header: int  # bytes before the values

    @property
    def nbytes(self) -> int:
        """Bytes of values the header declares."""
        return math.prod(self.dims) * self.dtype.itemsize


@contextmanager
def _open(path: Path) -> Iterator[tuple[BinaryIO, int, bool]]:
    """``(stream, bound, exact)``: the decompressed stream, the most bytes it can hold, and
    whether it holds exactly that many (a plain file) or at most (gzip, by deflate's ratio)."""
    try:
        with open(path, "rb") as plain:
            size = os.fstat(plain.fileno()).st_size
            compressed = plain.read(2) == _GZIP_MAGIC
            plain.seek(0)
            if compressed:
                with gzip.GzipFile(fileobj=plain, mode="rb") as stream:
                    yield stream, size * _DEFLATE_MAX_RATIO, False
            else:
                yield plain, size, True
    except (OSError, EOFError, zlib.error) as exc:
        raise DropoutlabError(f"cannot read IDX file {path}: {one_line(exc)}") from exc


def _header(stream: BinaryIO, path: Path, bound: int, exact: bool) -> IdxHeader:
    """The header of the IDX stream ``stream``, checked before any value is read."""
    magic = stream.read(4)
    if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in _DTYPES or magic[3] == 0:
        raise DropoutlabError(f"{path} is not an IDX file: bad magic number {magic.hex() or '(empty file)'}")
    dtype = np.dtype(_DTYPES[magic[2]])
    ndim = magic[3]
    raw_dims = stream.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DropoutlabError(f"IDX file {path} is truncated inside its header")
    dims = struct.unpack(f">{ndim}I", raw_dims)
    found = IdxHeader(path, dims, dtype, 4 + 4 * ndim)
    expected = found.nbytes
    if exact and found.header + expected != bound:
        problem = "is truncated" if found.header + expected > bound else "has trailing bytes"
        raise DropoutlabError(
            f"IDX file {path} {problem}: header says {dims} values ({expected} bytes), "
            f"found {bound - found.header} bytes"
        )
    if found.header + expected > bound:
        raise DropoutlabError(
            f"IDX file {path} is truncated: header says {dims} values ({expected} bytes), more than "
            f"its {bound // _DEFLATE_MAX_RATIO} compressed bytes can hold ({bound - found.header} at most)"
        )
    # a plain file can hold what it declares and still be sparse: 3.6 GB of holes on 20 KB of disk.
    # An empty dimension counts as one, so (0, 2**32 - 1, 2**32 - 1) is refused here, not by NumPy.
    shaped = math.prod(d or 1 for d in dims) * dtype.itemsize
    MAX_DATASET_BYTES.check(f"IDX file {path} declares {dims} values,", max(expected, shaped))
    return found


def read_idx_header(path: Path) -> IdxHeader:
    """The header of one IDX file (gzip or not), checked; reads a few bytes, allocates nothing.

    Raises :class:`DropoutlabError` naming the file when it is not IDX, when its size cannot
    match what the header declares, or when that is above ``DROPOUTLAB_MAX_DATASET_BYTES``.
    """
    path = Path(path)
    with _open(path) as (stream, bound, exact):
        return _header(stream, path, bound, exact)


def read_idx(path: Path) -> np.ndarray:
    """Decode one IDX file, gzip-compressed or not (told apart by content, not by name).

    Returns an array in native byte order with the shape the header declares. Raises
    :class:`DropoutlabError` naming the file when it is not IDX, or is truncated or padded.
    The header is read and checked first (:func:`read_idx_header`); then at most the bytes
    it declares (plus one, to find trailing bytes) are read, so a small file that
    decompresses to gigabytes costs no more memory than the array it claims to hold.
    """
    path = Path(path)
    with _open(path) as (stream, bound, exact):
        return _values(stream, _header(stream, path, bound, exact))


def _values(stream: BinaryIO, found: IdxHeader) -> np.ndarray:
    """The values after ``found``'s header, exactly as many as it declares."""
    expected = found.nbytes
    values = np.empty(expected, dtype=np.uint8)
    view = memoryview(values)
    got_total = 0
    while got_total < expected:
        got = stream.readinto(view[got_total : got_total + _CHUNK])
        if not got:
            break
        got_total += got
    if got_total == expected and stream.read(1):
        problem, found_text = "has trailing bytes", f"more than {got_total} bytes"
    elif got_total < expected:
        problem, found_text = "is truncated", f"{got_total} bytes"
    else:
        dtype = found.dtype
        return values.view(dtype).reshape(found.dims).astype(dtype.newbyteorder("="), copy=False)
    raise DropoutlabError(
        f"IDX file {found.path} {problem}: header says {found.dims} values ({expected} bytes), found {found_text}"
    )


def idx_split_header(images: Path, labels: Path) -> tuple[IdxHeader, IdxHeader]:
    """The headers of an IDX image/label pair, checked together before any value is read:
    uint8 images of shape ``(N, height, width)`` and ``N`` integer labels."""
    x, y = read_idx_header(images), read_idx_header(labels)
    if len(x.dims) != 3 or x.dtype != np.uint8:
        raise DropoutlabError(
            f"IDX image file {images} holds {x.dtype.newbyteorder('=')} values of shape {x.dims}; "
            "expected uint8 images of shape (N, height, width)"
        )
    if len(y.dims) != 1 or y.dtype.kind not in "iu":
        raise DropoutlabError(
            f"IDX label file {labels} holds {y.dtype.newbyteorder('=')} values of shape {y.dims}; "
            "expected integer labels of shape (N,)"
        )
    if x.dims[0] != y.dims[0]:
        raise DropoutlabError(
            f"{images} has {x.dims[0]} images but {labels} has {y.dims[0]} labels; they must match"
        )
    if 0 in x.dims[1:]:
        raise DropoutlabError(
            f"IDX image file {images} declares images of {x.dims[1:]} pixels; none can be empty"
        )
    return x, y


def read_idx_split(images: Path, labels: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``uint8 (N, 1, H, W)`` and labels ``int64 (N,)`` from an IDX image/label pair.

    Both headers are checked (:func:`idx_split_header`) before either file's values are read.
    """
    idx_split_header(images, labels)
    x = read_idx(images)
    y = read_idx(labels)
    # labels are checked in their own dtype (IDX's widest is int32), so no conversion can wrap
    if len(y) and y.min() < 0:
        raise DropoutlabError(f"IDX label file {labels} has negative labels")
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y.astype(np.int64))
