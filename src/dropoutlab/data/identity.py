"""What the data behind a dataset name are, beyond the name: the identity a study's design records.

A study names its dataset; the files behind the name can be replaced (an ``npz:`` file
rewritten at the same path, a CSV file edited). The identity tells them apart, so that
runs on other data are never averaged with the stored ones (:mod:`dropoutlab.study.design`):

* registered datasets: the SHA-256 of their files, verified against the published one where
  it is known (``*.gz``, ``*.tar.gz``, ``mnist.npz``), computed for unpacked files;
* ``npz:`` and ``csv:`` files: the SHA-256 of their content, read in chunks;
* scikit-learn's ``digits``: ``scikit-learn X.Y.Z``, the version that bundles them;
* data made in Python (:class:`~dropoutlab.data.memory.Data`): the SHA-256 of the tensors' bytes.

A dataset of several files (MNIST's four, CIFAR's batches) has the SHA-256 of its files'
hex digests, one per line in split order. Hashes are cached per file path, size and
modification time, so a study hashes each file once per process.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from dropoutlab.data import fetch
from dropoutlab.data.cifar import LAYOUTS
from dropoutlab.data.known import known
from dropoutlab.data.registry import DATASETS, parse_name
from dropoutlab.data.tabular import CSV_PREFIX, parse_csv_name
from dropoutlab.errors import DropoutlabError

_BLOCK = 1 << 20  # bytes read at a time


@lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    # size and mtime are part of the key so a replaced file is hashed again
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """The SHA-256 (hex) of the file at ``path``, read a MiB at a time (cached per path, size, mtime)."""
    try:
        st = path.stat()
        return _file_sha256(str(path.resolve()), st.st_size, st.st_mtime_ns)
    except OSError as exc:
        raise DropoutlabError(f"cannot read {path} to hash it: {exc.strerror or exc}") from None


def files_identity(paths: list[Path], hashed: bool = False) -> str:
    """``"sha256:<hex>"``: of the one file, or of the files' hex digests one per line. With
    ``hashed``, registered files whose hash :func:`~dropoutlab.data.fetch.verify` computed
    already (pooch, cached) are not read again."""
    digests = [fetch.file_sha256(p) if hashed else file_sha256(p) for p in paths]
    if len(digests) == 1:
        return f"sha256:{digests[0]}"
    return "sha256:" + hashlib.sha256("".join(d + "\n" for d in digests).encode()).hexdigest()


def sklearn_version() -> str:
    """The installed scikit-learn's version, read without importing it."""
    try:
        return version("scikit-learn")
    except PackageNotFoundError:  # pragma: no cover - a dependency
        return "unknown"


def data_identity(name: str, data_dir: str | Path | None = None, download: bool = True) -> str | None:
    """The identity of dataset ``name`` (see the module's docstring).

    Registered datasets are located (and verified) as :func:`~dropoutlab.data.load_dataset`
    does, and downloaded when missing if ``download``; without ``download`` a dataset whose
    files are not on this machine has no identity here: None.
    """
    key, path = parse_name(name)
    data = known(key)
    if data is not None:
        return data.identity
    if key.startswith(CSV_PREFIX):
        csv, _, test = parse_csv_name(key)
        return files_identity([csv, test] if isinstance(test, Path) else [csv])
    if path is not None:
        if not path.is_file():
            raise DropoutlabError(f"npz file {path} does not exist (from dataset {name!r})")
        return files_identity([path])
    if key == "digits":
        return f"scikit-learn {sklearn_version()}"
    if key not in DATASETS:  # pragma: no cover - parse_name refuses unknown names
        return None
    found = fetch.locate(key, data_dir)
    if found is None:
        if not download:
            return None
        found = fetch.find_files(key, data_dir, allow_download=True)
    paths = list(found.paths)
    if found.kind == "cifar" and paths[0].is_dir():
        paths = [paths[0] / member for member in LAYOUTS[key].members()]
    return files_identity(paths, hashed=True)
