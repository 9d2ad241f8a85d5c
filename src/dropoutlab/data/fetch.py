"""Finding a dataset's files on this machine, checking them, and downloading them with pooch.

Folders searched, in order (first complete set of files wins):

1. the data folder: the ``data_dir`` argument, else ``$DROPOUTLAB_DATA`` (if either is set):
   ``DIR/``, ``DIR/<dataset>/`` and torchvision's ``DIR/MNIST/raw/`` (``FashionMNIST``, ``KMNIST``);
2. Keras' cache ``~/.keras/datasets/`` (or ``$KERAS_HOME/datasets/``) and ``.../<dataset>/``,
   where Keras keeps ``mnist.npz``, ``fashion-mnist/``, ``cifar-10-batches-py[.tar.gz]``
   and ``cifar-100-python[.tar.gz]``;
3. the download folder ``<data folder or pooch.os_cache("dropoutlab")>/<dataset>/``.

Files under their original download names (``*.gz``, ``*.tar.gz``, ``mnist.npz``) are
checked against :data:`CHECKSUMS` and refused when they differ. Unpacked files (plain
IDX, an unpacked CIFAR folder) cannot be checked; their parsers validate their structure.

pooch (and requests, which it imports) is imported by the functions that use it: 0.15 s that
a study on files already here does not spend at every start.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from dropoutlab.data.cifar import LAYOUTS
from dropoutlab.errors import DropoutlabError

log = logging.getLogger(__name__)

ENV_VAR = "DROPOUTLAB_DATA"

IDX_STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_IDX_GZ = tuple(f"{stem}.gz" for stem in IDX_STEMS)

# SHA-256 of each file as published, per dataset (MNIST, Fashion-MNIST and KMNIST share
# file names). Sources: tensorflow/datasets tensorflow_datasets/url_checksums/{mnist,
# fashion_mnist,kmnist}.txt, {cifar10,cifar100}.csv; keras-team/keras
# keras/src/datasets/mnist.py (mnist.npz), fashion_mnist.py, cifar10.py, cifar100.py.
CHECKSUMS: dict[str, dict[str, str | None]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        "mnist.npz": "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    "kmnist": {
        "train-images-idx3-ubyte.gz": "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
        "train-labels-idx1-ubyte.gz": "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
        "t10k-images-idx3-ubyte.gz": "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
        "t10k-labels-idx1-ubyte.gz": "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",
    },
    "cifar10": {
        "cifar-10-python.tar.gz": "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    },
    "cifar100": {
        "cifar-100-python.tar.gz": "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
    },
}

# Base URLs tried in order; a file's URL is the base plus its name. The same bytes are
# served by each (the checksums above hold for all of them).
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",  # torchvision's mirror
        "https://storage.googleapis.com/cvdf-datasets/mnist/",  # TensorFlow Datasets'
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": (
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",  # Keras'
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
    "kmnist": ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/",),
    "cifar100": ("https://www.cs.toronto.edu/~kriz/",),
}

# What a download fetches (a subset of CHECKSUMS: mnist.npz is only picked up from Keras).
DOWNLOADS: dict[str, tuple[str, ...]] = {
    "mnist": _IDX_GZ,
    "fashion-mnist": _IDX_GZ,
    "kmnist": _IDX_GZ,
    "cifar10": ("cifar-10-python.tar.gz",),
    "cifar100": ("cifar-100-python.tar.gz",),
}

TORCHVISION_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST"}

# CIFAR under the other names it is kept by: archive name -> the file it is a copy of,
# and the unpacked folders. Keras 2 saved "cifar-10-batches-py.tar.gz" and unpacked it
# next to it; Keras 3 saves "<name>_archive" and unpacks into "<name>/".
_CIFAR_ARCHIVES = {
    "cifar10": {
        "cifar-10-python.tar.gz": "cifar-10-python.tar.gz",
        "cifar-10-batches-py.tar.gz": "cifar-10-python.tar.gz",
        "cifar-10-batches-py_archive": "cifar-10-python.tar.gz",
    },
    "cifar100": {
        "cifar-100-python.tar.gz": "cifar-100-python.tar.gz",
        "cifar-100-python-target_archive": "cifar-100-python.tar.gz",
    },
}
_CIFAR_FOLDERS = {
    "cifar10": ("cifar-10-batches-py", "cifar-10-batches-py/cifar-10-batches-py"),
    "cifar100": ("cifar-100-python", "cifar-100-python-target/cifar-100-python"),
}


@dataclass(frozen=True)
class Found:
    """The files that hold one dataset and how to decode them.

    ``kind`` is ``"idx"`` (four paths, in :data:`IDX_STEMS` order), ``"npz"`` (Keras'
    ``mnist.npz``) or ``"cifar"`` (one archive or unpacked folder).
    """

    kind: str
    paths: tuple[Path, ...]


def data_root(data_dir: str | Path | None) -> Path | None:
    """The user's data folder: ``data_dir`` if given, else ``$DROPOUTLAB_DATA``, else None."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR, "")
    return Path(env).expanduser() if env else None


def download_dir(name: str, data_dir: str | Path | None) -> Path:
    """Where downloads of dataset ``name`` go: ``<data folder or pooch cache>/<name>/``."""
    import pooch

    root = data_root(data_dir)
    return (root if root is not None else Path(pooch.os_cache("dropoutlab"))) / name


def search_folders(name: str, data_dir: str | Path | None) -> list[Path]:
    """The folders looked in for dataset ``name``, in the order they are tried."""
    folders = []
    root = data_root(data_dir)
    if root is not None:
        folders += [root, root / name]
        if name in TORCHVISION_FOLDERS:
            folders.append(root / TORCHVISION_FOLDERS[name] / "raw")
    keras = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "datasets"
    folders += [keras, keras / name, download_dir(name, data_dir)]
    return list(dict.fromkeys(folders))  # drop repeats, keep order


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    # size and mtime are part of the key so a replaced file is hashed again
    import pooch

    return pooch.file_hash(path, alg="sha256")


def file_sha256(path: Path) -> str:
    """The SHA-256 (hex) of the file at ``path``, computed once per path, size and mtime: the
    hash :func:`verify` checked is not computed again."""
    st = path.stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


def verify(path: Path, name: str, original: str) -> None:
    """Check ``path`` against the SHA-256 of ``original``, a file of dataset ``name``.

    Raises :class:`DropoutlabError` naming the file when the hash differs; a file with no
    known checksum (``None`` in :data:`CHECKSUMS`) is let through with a warning.
    """
    expected = CHECKSUMS[name].get(original)
    if expected is None:
        log.warning("no known SHA-256 for %s of %s; %s is not checked", original, name, path)
        return
    actual = file_sha256(path)
    if actual != expected:
        raise DropoutlabError(
            f"{path} is corrupt or not the expected {name} file {original}: its SHA-256 is "
            f"{actual}, expected {expected}; delete or replace it"
        )


def _first_candidate(name: str, folder: Path) -> tuple[Found, list[tuple[Path, str]]] | None:
    """The best complete set of files for ``name`` in ``folder`` with the (path, original
    name) pairs to checksum before using it, or None."""
    if name in LAYOUTS:
        for archive, original in _CIFAR_ARCHIVES[name].items():
            if (folder / archive).is_file():
                return Found("cifar", (folder / archive,)), [(folder / archive, original)]
        for sub in _CIFAR_FOLDERS[name]:
            if all((folder / sub / m).is_file() for m in LAYOUTS[name].members()):
                return Found("cifar", (folder / sub,)), []
        return None
    paths, checks = [], []
    for stem in IDX_STEMS:
        # prefer the .gz: it is what the checksum is for
        if (folder / f"{stem}.gz").is_file():
            paths.append(folder / f"{stem}.gz")
            checks.append((folder / f"{stem}.gz", f"{stem}.gz"))
        elif (folder / stem).is_file():
            paths.append(folder / stem)
    if len(paths) == len(IDX_STEMS):
        return Found("idx", tuple(paths)), checks
    if name == "mnist" and (folder / "mnist.npz").is_file():
        return Found("npz", (folder / "mnist.npz",)), [(folder / "mnist.npz", "mnist.npz")]
    return None


def locate(name: str, data_dir: str | Path | None = None) -> Found | None:
    """The first complete, checked set of files for ``name`` on this machine, or None."""
    for folder in search_folders(name, data_dir):
        candidate = _first_candidate(name, folder) if folder.is_dir() else None
        if candidate is not None:
            found, checks = candidate
            for path, original in checks:
                verify(path, name, original)
            log.debug("found %s in %s", name, folder)
            return found
    return None


def missing_message(name: str, data_dir: str | Path | None, reason: str) -> str:
    """One paragraph: which files to put where, and where to fetch them by hand."""
    if name in LAYOUTS:
        archive = DOWNLOADS[name][0]
        files = f"{archive} (or the folder {LAYOUTS[name].folder}/ unpacked from it)"
    else:
        files = ", ".join(_IDX_GZ) + " (gzip'd or not)"
        if name == "mnist":
            files += ", or Keras' mnist.npz"
    urls = ", ".join(MIRRORS[name][0] + f for f in DOWNLOADS[name])
    folders = ", ".join(str(f) for f in search_folders(name, data_dir))
    return (
        f"dataset {name!r} is not on this machine and {reason}. Put {files} in one of the "
        f"folders searched ({folders}), or in a folder DIR or DIR/{name}/ of your own and pass "
        f"--data-dir DIR (data_dir=DIR in Python) or set ${ENV_VAR}=DIR. Get the files by hand from {urls}."
    )


def download(name: str, data_dir: str | Path | None = None) -> Found:
    """Download ``name``'s files with pooch into :func:`download_dir`, trying each mirror.

    Each file is checked against :data:`CHECKSUMS` by pooch; a file already there with
    the right hash is not fetched again. Raises :class:`DropoutlabError` (the
    :func:`missing_message` paragraph) when every mirror fails for some file.
    """
    import pooch
    import requests

    target = download_dir(name, data_dir)
    paths = []
    for fname in DOWNLOADS[name]:
        expected = CHECKSUMS[name].get(fname)
        failures = []
        for base in MIRRORS[name]:
            url = base + fname
            try:
                path = pooch.retrieve(
                    url,
                    known_hash=f"sha256:{expected}" if expected else None,
                    fname=fname,
                    path=target,
                    progressbar=sys.stderr.isatty(),
                )
            # ValueError is pooch's "hash does not match": a bad mirror, so try the next
            except (requests.RequestException, OSError, ValueError) as exc:
                log.warning("downloading %s failed: %s", url, exc)
                failures.append(f"{url}: {exc}")
                continue
            paths.append(Path(path))
            break
        else:
            raise DropoutlabError(
                missing_message(name, data_dir, f"downloading it failed ({'; '.join(failures)})")
            )
    return Found("cifar" if name in LAYOUTS else "idx", tuple(paths))


def find_files(name: str, data_dir: str | Path | None = None, allow_download: bool = True) -> Found:
    """The files of dataset ``name``: found on this machine, else downloaded if allowed."""
    found = locate(name, data_dir)
    if found is not None:
        return found
    if not allow_download:
        raise DropoutlabError(missing_message(name, data_dir, "downloading is off (download=False)"))
    return download(name, data_dir)
