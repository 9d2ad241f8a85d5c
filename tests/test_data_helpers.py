"""Writers of small files in the real dataset formats, shared by the test_data_* modules.

Labels are computed from the pixels (``label = first pixel % classes``), so a parser that
misaligns images and labels, or reorders batches, fails the tests. Holds no tests itself.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pooch
import pytest
import requests

from dropoutlab.data import fetch, known, registry

IDX_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A fresh HOME, no data/cache variables, no network, and empty decode caches."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("DROPOUTLAB_DATA", "KERAS_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)

    def no_network(url, *args, **kwargs):
        raise requests.ConnectionError(f"network is off in tests: {url}")

    monkeypatch.setattr(pooch, "retrieve", no_network)
    monkeypatch.setattr(known, "_KNOWN", {})  # no Data made by another test
    for cached in (registry._decode, registry._read_npz_cached, registry._read_csv_cached, registry._digits,
                   fetch._sha256):  # fmt: skip
        cached.cache_clear()
    yield home


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def trust(monkeypatch, name: str, *paths: Path, original: str | None = None) -> None:
    """Make the checksum table accept ``paths`` (under their own names, or ``original``)."""
    table = dict(fetch.CHECKSUMS[name])
    for path in paths:
        table[original or path.name] = sha256(path)
    monkeypatch.setitem(fetch.CHECKSUMS, name, table)


def images(n: int, shape: tuple[int, ...], seed: int, classes: int = 10):
    """Random uint8 images and labels that depend on them: ``label = first pixel % classes``."""
    x = np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)
    y = x.reshape(n, -1)[:, 0].astype(np.int64) % classes
    return x, y


def idx_bytes(a: np.ndarray, code: int = 0x08) -> bytes:
    dtype = {0x08: ">u1", 0x0B: ">i2", 0x0C: ">i4"}[code]
    header = struct.pack(">HBB", 0, code, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
    return header + a.astype(dtype).tobytes()


def write_idx_set(folder: Path, seed: int = 0, gz: bool = True, n=(12, 5), size: int = 28):
    """The four MNIST-style files in ``folder``; returns ``x_train, y_train, x_test, y_test``."""
    folder.mkdir(parents=True, exist_ok=True)
    x_train, y_train = images(n[0], (size, size), seed)
    x_test, y_test = images(n[1], (size, size), seed + 1000)
    for stem, array in zip(IDX_NAMES, (x_train, y_train, x_test, y_test), strict=True):
        data = idx_bytes(array.astype(np.uint8))
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data, mtime=0))
        else:
            (folder / stem).write_bytes(data)
    return x_train, y_train, x_test, y_test


CIFAR = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]),
    "cifar100": ("cifar-100-python", ["train"], ["test"]),
}


def cifar_batches(variant: str, seed: int = 0, per_batch: int = 3) -> dict[str, tuple]:
    """``{member: (pickle bytes, images (N, 3, 32, 32), labels)}`` for one CIFAR variant."""
    _, train, test = CIFAR[variant]
    classes = 10 if variant == "cifar10" else 100
    out = {}
    for i, member in enumerate(train + test):
        x, y = images(per_batch, (3, 32, 32), seed + i, classes)
        batch = {b"batch_label": b"test", b"data": x.reshape(per_batch, 3072)}
        if variant == "cifar10":
            batch[b"labels"] = [int(v) for v in y]
        else:
            batch[b"fine_labels"] = [int(v) for v in y]
            batch[b"coarse_labels"] = [int(v) // 5 for v in y]
        out[member] = (pickle.dumps(batch, protocol=2), x, y)
    return out


def expected_cifar(batches: dict[str, tuple], variant: str):
    _, train, test = CIFAR[variant]
    return (
        np.concatenate([batches[m][1] for m in train]),
        np.concatenate([batches[m][2] for m in train]),
        np.concatenate([batches[m][1] for m in test]),
        np.concatenate([batches[m][2] for m in test]),
    )


def write_cifar_tar(path: Path, variant: str, seed: int = 0, batches=None):
    """A real ``.tar.gz`` like the published one; returns the expected four arrays."""
    batches = batches or cifar_batches(variant, seed)
    folder = CIFAR[variant][0]
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for member, (blob, *_) in batches.items():
            info = tarfile.TarInfo(f"{folder}/{member}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return expected_cifar(batches, variant)


def write_cifar_folder(parent: Path, variant: str, seed: int = 0, batches=None):
    """The unpacked folder (``parent/cifar-10-batches-py/...``); returns the four arrays."""
    batches = batches or cifar_batches(variant, seed)
    folder = parent / CIFAR[variant][0]
    folder.mkdir(parents=True, exist_ok=True)
    for member, (blob, *_) in batches.items():
        (folder / member).write_bytes(blob)
    return expected_cifar(batches, variant)


def write_npz(path: Path, seed: int = 0, shape=(28, 28), n=(10, 4), **overrides):
    """A Keras-layout npz; ``overrides`` replace (or, with value None, drop) keys."""
    x_train, y_train = images(n[0], shape, seed)
    x_test, y_test = images(n[1], shape, seed + 1)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    arrays.update(overrides)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return arrays
