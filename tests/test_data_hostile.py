"""Hostile dataset files: small files that claim huge sizes, files that are not what their name says.

Each memory reproduction runs in a subprocess whose address space is capped a little above
what the imports take (``RLIMIT_AS``), so a parser that allocates what a file merely claims
fails there with a MemoryError instead of passing on a machine with memory to spare.
"""

from __future__ import annotations

import codecs
import gzip
import math
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from numpy.lib import format as npy
from test_data_helpers import (  # noqa: F401  (isolated is an autouse fixture)
    CIFAR,
    cifar_batches,
    idx_bytes,
    isolated,
    write_cifar_folder,
    write_cifar_tar,
    write_idx_set,
    write_npz,
)

from dropoutlab.data import ImageDataset, fetch, load_dataset, registry
from dropoutlab.data.cifar import read_cifar
from dropoutlab.data.idx import read_idx, read_idx_split
from dropoutlab.data.npz import read_npz
from dropoutlab.errors import DropoutlabError

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux's"
)

BUDGET = 512 << 20  # bytes of address space allowed beyond what the imports took

# Runs CODE (argv[1]) with the address space capped at the imports' size plus BUDGET
# (argv[2]); prints the DropoutlabError as one line, or lets any other error end it.
LIMITED = """
import resource, sys, time
import torch
import dropoutlab.data
from dropoutlab.errors import DropoutlabError

status = open("/proc/self/status").read()
size = int(status.split("VmSize:")[1].split()[0]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (size + int(sys.argv[2]), size + int(sys.argv[2])))
start = time.perf_counter()
try:
    exec(sys.argv[1])
except DropoutlabError as exc:
    print("DropoutlabError:", exc)
print(f"took {time.perf_counter() - start:.2f} s", file=sys.stderr)
"""


def run_limited(code: str, budget: int = BUDGET, error: bool = True) -> str:
    """The one line a reproduction printed under the memory cap (a DropoutlabError unless
    ``error`` is False); fails on anything else."""
    threads = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env = {
        k: v for k, v in os.environ.items() if k not in ("DROPOUTLAB_DATA", "KERAS_HOME", "XDG_CACHE_HOME")
    }
    env.update(threads)  # HOME is the isolated fixture's empty one
    done = subprocess.run(
        [sys.executable, "-c", LIMITED, textwrap.dedent(code), str(budget)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("DropoutlabError: ") == error, done.stdout[-3000:]
    return lines[0]


# ---------------------------------------------------------------- CIFAR


@linux_only
def test_cifar_labels_of_shared_nested_lists_are_refused_at_once(tmp_path):
    write_cifar_folder(tmp_path, "cifar10", batches=cifar_batches("cifar10", per_batch=2))
    labels = 1
    for _ in range(40):  # 2**40 leaves from a pickle of a few hundred bytes
        labels = [labels, labels]
    blob = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": labels}, protocol=2)
    assert len(pickle.dumps(labels, protocol=2)) < 1000
    (tmp_path / CIFAR["cifar10"][0] / "data_batch_1").write_bytes(blob)
    line = run_limited(f"dropoutlab.data.load_dataset('cifar10', {str(tmp_path)!r}, download=False)")
    assert "data_batch_1: b'labels' must hold 2 integer labels, found a list among them" in line


def test_cifar_labels_of_the_wrong_length_or_type_are_refused(tmp_path):
    write_cifar_folder(tmp_path, "cifar10", batches=cifar_batches("cifar10", per_batch=2))
    for labels, found in (([0], "a list of 1 items"), ((0, 1), "tuple"), ([0, "1"], "a str among")):
        blob = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": labels}, protocol=2)
        (tmp_path / CIFAR["cifar10"][0] / "test_batch").write_bytes(blob)
        with pytest.raises(
            DropoutlabError, match=rf"test_batch: b'labels' must hold 2 integer labels, found {found}"
        ):
            read_cifar(tmp_path / CIFAR["cifar10"][0], "cifar10")


def sparse_file(path: Path, start: bytes, size: int) -> None:
    """A file of ``size`` bytes that begins with ``start`` and takes a few KB of disk (holes)."""
    with open(path, "wb") as out:
        out.write(start)
        out.truncate(size)


@linux_only
def test_sparse_cifar_batch_file_is_refused_by_its_size_before_it_is_read(tmp_path):
    write_cifar_folder(tmp_path, "cifar10", batches=cifar_batches("cifar10", per_batch=2))
    batch = tmp_path / CIFAR["cifar10"][0] / "data_batch_1"
    sparse_file(batch, b"\x80\x02" + bytes(20_000), 4 << 30)  # 4 GiB on 20 KB of disk
    line = run_limited(f"dropoutlab.data.load_dataset('cifar10', {str(tmp_path)!r}, download=False)")
    assert f"the CIFAR batches up to {batch} hold 4,294,967,296 bytes, more than the limit of" in line
    assert "DROPOUTLAB_MAX_DATASET_BYTES" in line


@linux_only
def test_cifar_archive_member_declaring_gigabytes_is_refused_before_it_is_read(tmp_path):
    info = tarfile.TarInfo(f"{CIFAR['cifar10'][0]}/data_batch_1")
    info.size = 4 << 30
    (tmp_path / "c.tar.gz").write_bytes(gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT) + bytes(512)))
    line = run_limited(
        f"from dropoutlab.data.cifar import read_cifar; read_cifar({str(tmp_path / 'c.tar.gz')!r}, 'cifar10')"
    )
    assert "c.tar.gz:cifar-10-batches-py/data_batch_1 hold 4,294,967,296 bytes, more than the limit" in line


class Encoded:
    """Pickles as ``_codecs.encode(text, "latin1")``: one string, stored once, encoded at each use."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __reduce__(self):
        return codecs.encode, (self.text, "latin1")


@linux_only
def test_cifar_pickle_encoding_one_string_again_and_again_is_refused(tmp_path):
    write_cifar_folder(tmp_path, "cifar10", batches=cifar_batches("cifar10", per_batch=2))
    text = "\0" * (1 << 20)
    copies = [Encoded(text) for _ in range(4096)]  # 4 GiB of bytes from a pickle of about 1 MB
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1], b"filenames": copies}
    blob = pickle.dumps(batch, protocol=2)
    assert len(blob) < 2 << 20
    (tmp_path / CIFAR["cifar10"][0] / "test_batch").write_bytes(blob)
    line = run_limited(f"dropoutlab.data.load_dataset('cifar10', {str(tmp_path)!r}, download=False)")
    assert (
        "test_batch is not a readable CIFAR batch: it makes more bytes from its strings than the pickle"
        in line
    )


def test_cifar_test_batch_with_no_images_is_refused_at_load(tmp_path):
    write_cifar_folder(tmp_path, "cifar10", batches=cifar_batches("cifar10", per_batch=2))
    blob = pickle.dumps({b"data": np.zeros((0, 3072), np.uint8), b"labels": []}, protocol=4)
    (tmp_path / CIFAR["cifar10"][0] / "test_batch").write_bytes(blob)
    with pytest.raises(
        DropoutlabError, match=r"the cifar10 test set in .* holds no images; no run could be tested"
    ):
        load_dataset("cifar10", tmp_path, download=False)


# ---------------------------------------------------------------- IDX


def write_gzip_of_zeros(path: Path, header: bytes, zeros: int) -> None:
    """A gzip of ``header`` then ``zeros`` zero bytes (a multiple of 64 MiB), without holding them.

    A gzip file may be several members one after the other, read as one stream; so one
    member of 64 MiB of zeros (about 64 KB) is compressed once and written again and again.
    """
    member = gzip.compress(bytes(64 << 20), compresslevel=9, mtime=0)
    with open(path, "wb") as out:
        out.write(gzip.compress(header, mtime=0))
        for _ in range(zeros // (64 << 20)):
            out.write(member)


@linux_only
def test_gzip_under_a_plain_idx_name_is_read_no_further_than_its_header_says(tmp_path):
    write_idx_set(tmp_path, gz=False, n=(4, 2))
    header = struct.pack(">HBB3I", 0, 0x08, 3, 60_000, 28, 28)
    write_gzip_of_zeros(tmp_path / "train-images-idx3-ubyte", header, 1 << 30)  # 1 GiB: twice the budget
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(60_000, np.uint8)))
    assert (tmp_path / "train-images-idx3-ubyte").stat().st_size < 8 << 20
    line = run_limited(f"dropoutlab.data.load_dataset('mnist', {str(tmp_path)!r}, download=False)")
    assert "train-images-idx3-ubyte has trailing bytes: header says (60000, 28, 28) values" in line


@linux_only
def test_gzip_idx_claiming_more_than_deflate_can_hold_is_refused_before_allocating(tmp_path):
    write_idx_set(tmp_path, gz=False, n=(4, 2))
    header = struct.pack(">HBB3I", 0, 0x08, 3, 4_000_000_000, 28, 28)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(gzip.compress(header + bytes(1000)))
    line = run_limited(f"dropoutlab.data.load_dataset('mnist', {str(tmp_path)!r}, download=False)")
    assert "train-images-idx3-ubyte is truncated: header says (4000000000, 28, 28) values" in line


def test_plain_idx_claiming_a_billion_images_is_refused_by_its_size(tmp_path):
    write_idx_set(tmp_path, gz=False, n=(4, 2))
    header = struct.pack(">HBB3I", 0, 0x08, 3, 10**9, 28, 28)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(header + bytes(784))
    with pytest.raises(
        DropoutlabError, match=r"is truncated: header says \(1000000000, 28, 28\).*found 784 bytes"
    ):
        load_dataset("mnist", tmp_path, download=False)


def test_idx_training_files_with_no_images_are_refused_at_load(tmp_path):
    write_idx_set(tmp_path, gz=False, n=(4, 2))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((0, 28, 28), np.uint8)))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(0, np.uint8)))
    with pytest.raises(DropoutlabError, match=r"the mnist training set in .* holds no images") as err:
        load_dataset("mnist", tmp_path, download=False)
    assert "\n" not in str(err.value)


@linux_only
def test_sparse_idx_declaring_one_huge_image_is_refused_by_its_header(tmp_path):
    write_idx_set(tmp_path, gz=False, n=(4, 2))
    header = struct.pack(">HBB3I", 0, 0x08, 3, 1, 60_000, 60_000)
    sparse_file(tmp_path / "train-images-idx3-ubyte", header + bytes(20_000), len(header) + 60_000**2)
    line = run_limited(f"dropoutlab.data.load_dataset('mnist', {str(tmp_path)!r}, download=False)")
    assert "train-images-idx3-ubyte declares (1, 60000, 60000) values, 3,600,000,000 bytes, more than" in line


@linux_only
def test_sparse_idx_of_other_images_is_refused_by_its_shape_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setenv("DROPOUTLAB_MAX_DATASET_BYTES", str(10**10))  # the size bound allows it
    write_idx_set(tmp_path, gz=False, n=(4, 2))
    header = struct.pack(">HBB3I", 0, 0x08, 3, 4, 30_000, 30_000)
    sparse_file(tmp_path / "train-images-idx3-ubyte", header + bytes(20_000), len(header) + 4 * 30_000**2)
    line = run_limited(f"dropoutlab.data.load_dataset('mnist', {str(tmp_path)!r}, download=False)")
    assert "mnist training images in " in line and "are (1, 30000, 30000) (channels, height, width)" in line


def test_idx_images_of_no_pixels_are_refused(tmp_path):
    (tmp_path / "img").write_bytes(idx_bytes(np.zeros((3, 0, 0), np.uint8)))
    (tmp_path / "lab").write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(DropoutlabError, match=r"img declares images of \(0, 0\) pixels; none can be empty"):
        read_idx_split(tmp_path / "img", tmp_path / "lab")


def test_idx_test_files_with_no_images_are_refused_at_load(tmp_path):
    write_idx_set(tmp_path, gz=False, n=(4, 2))
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((0, 28, 28), np.uint8)))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(0, np.uint8)))
    with pytest.raises(
        DropoutlabError, match=r"the mnist test set in .* holds no images; no run could be tested"
    ):
        load_dataset("mnist", tmp_path, download=False)


# ---------------------------------------------------------------- npz


def write_npz_claiming(path: Path, key: str, shape: tuple[int, ...], data: bytes) -> None:
    """A valid npz whose ``key`` member has a header declaring ``shape`` (uint8) before ``data``."""
    write_npz(path)
    with zipfile.ZipFile(path) as src:
        members = {n: src.read(n) for n in src.namelist()}
    with zipfile.ZipFile(path, "w") as out:
        for name, blob in members.items():
            if name == f"{key}.npy":
                member = out.open(name, "w")
                npy.write_array_header_1_0(member, {"descr": "|u1", "fortran_order": False, "shape": shape})
                member.write(data)
                member.close()
            else:
                out.writestr(name, blob)


@linux_only
def test_npz_header_claiming_a_billion_images_is_refused_before_allocating(tmp_path):
    write_npz_claiming(tmp_path / "big.npz", "x_train", (10**9, 8, 8), bytes(64))
    line = run_limited(f"dropoutlab.data.load_dataset('npz:{tmp_path / 'big.npz'}')")
    assert "big.npz: x_train: header says uint8 of shape (1000000000, 8, 8) (64000000000 bytes)" in line
    assert "the archive holds 64 bytes" in line


def test_npz_member_claiming_more_than_its_compressed_bytes_can_hold_is_refused(tmp_path):
    path = tmp_path / "bomb.npz"
    write_npz(path)
    with zipfile.ZipFile(path) as src:
        members = {n: src.read(n) for n in src.namelist()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for name, blob in members.items():
            out.writestr(name, blob)
    raw = bytearray(path.read_bytes())
    # the central directory's "uncompressed size" of x_train, set to 4 GiB - 1
    at = raw.rindex(b"PK\x01\x02", 0, raw.index(b"x_train.npy", raw.index(b"PK\x01\x02")) + 1)
    raw[at + 24 : at + 28] = struct.pack("<I", 0xFFFFFFFF - 1)
    path.write_bytes(bytes(raw))
    with pytest.raises(DropoutlabError, match=r"bomb\.npz: x_train claims 4294967294 bytes, more than"):
        read_npz(path, "bomb")


def test_npz_object_arrays_are_refused(tmp_path):
    np.savez(
        tmp_path / "o.npz", x_train=np.array([None, 1], dtype=object), y_train=[0], x_test=[0], y_test=[0]
    )
    with pytest.raises(DropoutlabError, match=r"o\.npz: x_train holds Python objects"):
        read_npz(tmp_path / "o.npz", "o")


def test_text_file_named_npz_is_said_not_to_be_an_npz_archive(tmp_path):
    (tmp_path / "notes.npz").write_text("x_train = [1, 2, 3]\n")
    with pytest.raises(DropoutlabError, match=r"notes\.npz: it is not an npz archive") as err:
        load_dataset(f"npz:{tmp_path / 'notes.npz'}")
    assert "allow_pickle" not in str(err.value) and "\n" not in str(err.value)


def write_float_npz(path: Path, n: int) -> None:
    """An npz whose x_train is ``n`` float64 images of 28 x 28 zeros: 6 KB of deflate per 1,000 images."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        arrays = {
            "y_train": np.arange(n) % 3,
            "x_test": np.zeros((6, 28, 28), np.uint8),
            "y_test": np.arange(6) % 3,
        }
        for key, array in arrays.items():
            with archive.open(f"{key}.npy", "w") as member:
                npy.write_array(member, array)
        with archive.open("x_train.npy", "w") as member:
            npy.write_array(member, np.zeros((n, 28, 28)))


@linux_only
def test_npz_float_pixels_are_inflated_and_converted_a_chunk_at_a_time(tmp_path):
    # 63 MB of float64 from a 62 KB file, within 32 MB of address space: only the 7.8 MB of
    # uint8 images and a few chunks may be held (inflating it whole, then converting, takes 130 MB)
    write_float_npz(tmp_path / "f.npz", 10_000)
    assert (tmp_path / "f.npz").stat().st_size < 100_000
    code = f"print(dropoutlab.data.load_dataset('npz:{tmp_path / 'f.npz'}').x_train.shape)"
    assert run_limited(code, budget=32 << 20, error=False) == "torch.Size([10000, 1, 28, 28])"


def test_npz_images_beyond_the_dataset_bound_are_refused_from_their_headers(tmp_path, monkeypatch):
    monkeypatch.setenv("DROPOUTLAB_MAX_DATASET_BYTES", "10000")
    write_npz(tmp_path / "d.npz", n=(10, 4))  # 14 images of 784 pixels
    with pytest.raises(DropoutlabError, match=r"x_train and x_test as uint8 images would hold 10,976 bytes, more "
                       r"than the limit of 10,000; .*DROPOUTLAB_MAX_DATASET_BYTES=10976"):  # fmt: skip
        read_npz(tmp_path / "d.npz", "d")


def test_npz_uint64_label_of_2_to_the_64_minus_1_is_refused_not_wrapped(tmp_path):
    labels = np.zeros(10, np.uint64)
    labels[3] = 2**64 - 1  # -1 once converted to int64, which a check after conversion would miss
    write_npz(tmp_path / "u.npz", y_train=labels)
    with pytest.raises(DropoutlabError, match=r"y_train has labels up to 18446744073709551615, so the dataset "
                       r"would have 18,446,744,073,709,551,616 classes, more than the limit of 100,000"):  # fmt: skip
        read_npz(tmp_path / "u.npz", "u")


def test_npz_labels_of_any_integer_dtype_within_bounds_are_read(tmp_path):
    write_npz(tmp_path / "u.npz", y_train=np.arange(10, dtype=">u8"), y_test=np.arange(4, dtype=np.int8))
    ds = read_npz(tmp_path / "u.npz", "u")
    assert ds.y_train.tolist() == list(range(10)) and ds.y_test.tolist() == [0, 1, 2, 3]
    assert ds.y_train.dtype == torch.int64 and ds.num_classes == 10


def test_npz_test_split_with_no_images_is_refused_at_load(tmp_path):
    write_npz(tmp_path / "e.npz", x_test=np.zeros((0, 28, 28), np.uint8), y_test=np.zeros(0, np.int64))
    with pytest.raises(DropoutlabError, match=r"e\.npz: x_test holds no images; no run could be tested"):
        load_dataset(f"npz:{tmp_path / 'e.npz'}")


@pytest.mark.parametrize("shape", [(0, 0), (28, 0), (28, 28, 0)])
def test_npz_images_of_no_pixels_or_channels_are_refused(tmp_path, shape):
    write_npz(
        tmp_path / "z.npz", x_train=np.zeros((10, *shape), np.uint8), x_test=np.zeros((4, *shape), np.uint8)
    )
    with pytest.raises(
        DropoutlabError, match=r"x_train has shape .*; an image needs at least one pixel and one"
    ):
        load_dataset(f"npz:{tmp_path / 'z.npz'}")


def test_npz_fortran_ordered_channels_last_images_read_as_c_ordered(tmp_path):
    arrays = write_npz(tmp_path / "c.npz", shape=(5, 6, 3))
    np.savez(tmp_path / "f.npz", **{k: np.asfortranarray(v) for k, v in arrays.items()})
    c, f = read_npz(tmp_path / "c.npz", "c"), read_npz(tmp_path / "f.npz", "f")
    assert torch.equal(c.x_train, f.x_train) and torch.equal(c.x_test, f.x_test)
    assert np.array_equal(f.x_train.numpy(), arrays["x_train"].transpose(0, 3, 1, 2))


# ---------------------------------------------------------------- declared apart from present
#
# Each strategy draws what a file declares (shape, dtype) apart from the bytes it holds, so
# that declared and present disagree in every way: short, long, sparse, huge. Whatever is
# drawn, reading gives the array the header declares or one line, and never allocates more
# than the bound (lowered to 1 MiB here) allows: tracemalloc sees every NumPy allocation.

SMALL_BOUND = 1 << 20
IDX_CODES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
DIMENSIONS = st.one_of(st.integers(0, 40), st.sampled_from([1000, 60_000, 2**31, 2**32 - 1]))


def traced_peak(read):
    """``(result or the DropoutlabError, peak bytes NumPy allocated)`` of calling ``read``."""
    tracemalloc.start()
    try:
        result = read()
    except DropoutlabError as exc:
        assert "\n" not in str(exc)
        result = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    event("refused" if isinstance(result, DropoutlabError) else "read")
    return result, peak


@st.composite
def present_bytes(draw, declared: int) -> tuple[bytes, int]:
    """``(bytes written, file size)``: exactly ``declared``, fewer, more, or a sparse file of
    ``declared`` bytes whose first few are written (the rest holes)."""
    how = draw(st.sampled_from(["exact", "short", "long", "sparse"]))
    if how == "exact" and declared <= 1 << 16:
        body = draw(st.binary(min_size=declared, max_size=declared))
        return body, len(body)
    if how == "sparse" and 0 < declared <= 256 << 20:  # holes: a regression that reads them costs little
        body = draw(st.binary(max_size=64))
        return body, max(declared, len(body))
    if how == "long" and declared <= 1 << 16:
        body = draw(st.binary(min_size=declared + 1, max_size=declared + 64))
        return body, len(body)
    body = draw(st.binary(max_size=min(declared, 4096)))
    return body, len(body)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dims=st.lists(DIMENSIONS, min_size=1, max_size=4), code=st.sampled_from(sorted(IDX_CODES)), gz=st.booleans(),
       data=st.data())  # fmt: skip
def test_idx_declared_shape_and_present_bytes_give_the_declared_array_or_one_line(
    monkeypatch, dims, code, gz, data
):
    monkeypatch.setenv("DROPOUTLAB_MAX_DATASET_BYTES", str(SMALL_BOUND))
    dtype = np.dtype(IDX_CODES[code])
    declared = math.prod(dims) * dtype.itemsize
    header = struct.pack(">HBB", 0, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims)
    body, size = data.draw(present_bytes(declared))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f"
        if gz:
            path.write_bytes(gzip.compress(header + body + bytes(size - len(body)), mtime=0))
        else:
            sparse_file(path, header + body, len(header) + size)
        result, peak = traced_peak(lambda: read_idx(path))
    if size == declared and math.prod(d or 1 for d in dims) * dtype.itemsize <= SMALL_BOUND:
        values = np.frombuffer(body + bytes(size - len(body)), dtype=dtype).reshape(dims)
        assert np.array_equal(result, values, equal_nan=dtype.kind == "f")
    else:
        assert isinstance(result, DropoutlabError)
    # a refusal allocates nothing; an array at most itself and its byte-swapped copy
    assert peak <= 2 * min(declared, SMALL_BOUND) + (4 << 20)  # plus gzip's buffers of a few chunks


def npz_with_member(path: Path, key: str, header: dict, body: bytes, method: int) -> None:
    """A valid Keras-layout npz whose ``key`` member has ``header`` (.npy) followed by ``body``."""
    write_npz(path, n=(3, 2))
    with zipfile.ZipFile(path) as src:
        members = {n: src.read(n) for n in src.namelist()}
    with zipfile.ZipFile(path, "w", method) as out:
        for name, blob in members.items():
            if name != f"{key}.npy":
                out.writestr(name, blob)
                continue
            with out.open(name, "w", force_zip64=True) as member:
                npy.write_array_header_1_0(member, header)
                member.write(body)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=st.sampled_from(["x_train", "x_test", "y_train"]),
    descr=st.one_of(st.just("|u1"), st.sampled_from(["<i2", ">u8", "<f4", ">f8", "|b1", "<f2"])),
    fortran=st.booleans(),
    method=st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]),
    data=st.data(),
)
def test_npz_declared_shape_and_present_bytes_give_the_declared_images_or_one_line(
    monkeypatch, key, descr, fortran, method, data
):
    monkeypatch.setenv("DROPOUTLAB_MAX_DATASET_BYTES", str(SMALL_BOUND))
    # the other members hold 3 training and 2 test images of 28 x 28: draw those sizes often
    count = st.one_of(st.just(3 if key.endswith("train") else 2), DIMENSIONS)
    rest = st.lists(st.one_of(st.just(28), st.just(1), DIMENSIONS), max_size=3)
    shape = data.draw(st.tuples(count, rest).map(lambda drawn: [drawn[0], *drawn[1]]))
    declared = math.prod(shape) * np.dtype(descr).itemsize
    body, size = data.draw(present_bytes(declared))
    body += bytes(size - len(body))  # zip members are not sparse: the holes are written as zeros
    header = {"descr": descr, "fortran_order": fortran, "shape": tuple(shape)}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.npz"
        npz_with_member(path, key, header, body, method)
        result, peak = traced_peak(lambda: read_npz(path, "d"))
    if isinstance(result, ImageDataset):  # then what it declared is what it holds, within the bound
        assert size == declared
        images = result.x_train if key == "x_train" else result.x_test
        assert key.startswith("y") or images.shape[0] == shape[0]
    # the uint8 images, a channels-first copy, and a few chunks of inflated values
    assert peak <= 2 * SMALL_BOUND + 4 * (4 << 20)


class Declared:
    """An array pickled as NumPy pickles one, but with ``shape`` and ``dtype`` declared apart
    from ``raw``, the bytes that follow."""

    def __init__(self, shape: tuple[int, ...], dtype: str, raw: bytes) -> None:
        self.shape, self.dtype, self.raw = shape, dtype, raw

    def __reduce__(self):
        rebuild, args, _ = np.zeros(1, np.uint8).__reduce__()
        return rebuild, args, (1, self.shape, np.dtype(self.dtype), False, self.raw)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shape=st.one_of(
        st.tuples(st.integers(0, 4), st.just(3072)).map(list),
        st.lists(
            st.one_of(st.integers(0, 4), st.just(3072), st.sampled_from([2**31, 2**40])),
            min_size=1,
            max_size=3,
        ),
    ),
    dtype=st.sampled_from(["|u1", "<u2", "<f4"]),
    data=st.data(),
)
def test_cifar_declared_shape_and_present_bytes_give_the_declared_images_or_one_line(
    monkeypatch, shape, dtype, data
):
    monkeypatch.setenv("DROPOUTLAB_MAX_DATASET_BYTES", str(SMALL_BOUND))
    declared = math.prod(shape) * np.dtype(dtype).itemsize
    raw, size = data.draw(present_bytes(declared))
    raw += bytes(size - len(raw))
    labels = list(range(shape[0] if shape[0] <= 4 else 2))
    blob = pickle.dumps({b"data": Declared(tuple(shape), dtype, raw), b"labels": labels}, protocol=4)
    with tempfile.TemporaryDirectory() as tmp:
        write_cifar_folder(Path(tmp), "cifar10", batches=cifar_batches("cifar10", per_batch=2))
        (Path(tmp) / CIFAR["cifar10"][0] / "data_batch_1").write_bytes(blob)
        result, peak = traced_peak(lambda: read_cifar(Path(tmp) / CIFAR["cifar10"][0], "cifar10"))
    if not isinstance(result, DropoutlabError):
        assert (tuple(shape), dtype, size) == ((shape[0], 3072), "|u1", declared)
        assert result[0].shape[0] == 2 * 4 + shape[0]
    # the batches' bytes, their decoded pixels and the concatenated splits
    assert peak <= 3 * (len(blob) + 6 * 7000) + (1 << 20)


# ---------------------------------------------------------------- any bytes under any name


def _idx_case(stem: str, gz: bool):
    def make(folder: Path):
        write_idx_set(folder, gz=gz, n=(4, 2))
        names = [f"{s}.gz" if gz else s for s in fetch.IDX_STEMS]
        paths = [folder / n for n in names]
        if gz:  # checksummed names are refused before parsing: parse them directly
            return folder / f"{stem}.gz", lambda: (read_idx_split(*paths[:2]), read_idx_split(*paths[2:]))
        return folder / stem, lambda: load_dataset("mnist", folder, download=False)

    return make


def _cifar_folder_case(variant: str, member: str):
    def make(folder: Path):
        write_cifar_folder(folder, variant, batches=cifar_batches(variant, per_batch=2))
        return folder / CIFAR[variant][0] / member, lambda: load_dataset(variant, folder, download=False)

    return make


def _cifar_tar_case(folder: Path):
    write_cifar_tar(
        folder / "cifar-10-python.tar.gz", "cifar10", batches=cifar_batches("cifar10", per_batch=2)
    )
    return folder / "cifar-10-python.tar.gz", lambda: read_cifar(folder / "cifar-10-python.tar.gz", "cifar10")


def _npz_case(folder: Path):
    write_npz(folder / "mine.npz", n=(4, 2))
    return folder / "mine.npz", lambda: load_dataset(f"npz:{folder / 'mine.npz'}")


FILES = {
    **{stem: _idx_case(stem, gz=False) for stem in fetch.IDX_STEMS},
    **{f"{stem}.gz": _idx_case(stem, gz=True) for stem in fetch.IDX_STEMS[:2]},
    "cifar-10-batches-py/data_batch_1": _cifar_folder_case("cifar10", "data_batch_1"),
    "cifar-10-batches-py/test_batch": _cifar_folder_case("cifar10", "test_batch"),
    "cifar-100-python/train": _cifar_folder_case("cifar100", "train"),
    "cifar-10-python.tar.gz": _cifar_tar_case,
    "npz:mine.npz": _npz_case,
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(sorted(FILES)), how=st.sampled_from(["random", "prefix", "mutate"]), data=st.data()
)
def test_random_bytes_under_each_dataset_file_name_give_a_dropoutlab_error(name, how, data):
    with tempfile.TemporaryDirectory() as tmp:
        target, load = FILES[name](Path(tmp))
        valid = target.read_bytes()
        if how == "random":
            blob = data.draw(st.binary(max_size=4096))
        elif how == "prefix":  # a real start, so the parser gets past its magic number
            blob = valid[: data.draw(st.integers(0, min(len(valid), 600)))] + data.draw(
                st.binary(max_size=64)
            )
        else:
            blob = bytearray(valid)
            for at, value in data.draw(st.lists(st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 255)),
                                                min_size=1, max_size=6)):  # fmt: skip
                blob[at] = value
            blob = bytes(blob)
        target.write_bytes(blob)
        for cached in (registry._decode, registry._read_npz_cached, fetch._sha256):
            cached.cache_clear()
        try:
            load()  # a byte that changes a pixel leaves a valid file: loading it is fine
        except DropoutlabError as exc:
            assert "\n" not in str(exc)
