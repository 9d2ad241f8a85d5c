"""The datasets dropoutlab knows by name, and the two entry points: load and describe."""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from dropoutlab.data import fetch
from dropoutlab.data.base import ImageDataset
from dropoutlab.data.cifar import read_cifar
from dropoutlab.data.digits import read_digits
from dropoutlab.data.idx import idx_split_header, read_idx_split
from dropoutlab.data.known import known, known_names
from dropoutlab.data.limits import MAX_DATASET_BYTES
from dropoutlab.data.npz import read_npz
from dropoutlab.data.tabular import CSV_PREFIX, parse_csv_name, read_csv_dataset
from dropoutlab.errors import DropoutlabError

log = logging.getLogger(__name__)

NPZ_PREFIX = "npz:"


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is, known without decoding it.

    Attributes:
        name: registry name (``"cifar10"``), ``"npz:PATH"``, ``"csv:PATH?label=COLUMN"``, or the
            name of data made in Python (:class:`~dropoutlab.data.memory.Data`).
        description: one line for listings.
        input_shape: ``(channels, height, width)`` of one image, in pixels, or ``(features,)``.
        num_classes: number of classes; labels lie in ``[0, num_classes)``.
        train_size, test_size: number of images in each split.
        source: where the data comes from: a URL, a file path, or "scikit-learn (bundled)".
    """

    name: str
    description: str
    input_shape: tuple[int, ...]
    num_classes: int
    train_size: int
    test_size: int
    source: str


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            "digits",
            "8x8 handwritten digits, 17 grey levels; offline, for quick tests",
            (1, 8, 8),
            10,
            1437,
            360,
            "scikit-learn (bundled)",
        ),
        DatasetInfo(
            "mnist",
            "28x28 handwritten digits",
            (1, 28, 28),
            10,
            60_000,
            10_000,
            "http://yann.lecun.com/exdb/mnist/",
        ),
        DatasetInfo(
            "fashion-mnist",
            "28x28 greyscale photos of 10 kinds of clothing (Zalando)",
            (1, 28, 28),
            10,
            60_000,
            10_000,
            "https://github.com/zalandoresearch/fashion-mnist",
        ),
        DatasetInfo(
            "kmnist",
            "28x28 cursive Japanese (Kuzushiji) characters, 10 classes",
            (1, 28, 28),
            10,
            60_000,
            10_000,
            "https://github.com/rois-codh/kmnist",
        ),
        DatasetInfo(
            "cifar10",
            "32x32 colour photos of 10 object classes",
            (3, 32, 32),
            10,
            50_000,
            10_000,
            "https://www.cs.toronto.edu/~kriz/cifar.html",
        ),
        DatasetInfo(
            "cifar100",
            "32x32 colour photos of 100 object classes (fine labels)",
            (3, 32, 32),
            100,
            50_000,
            10_000,
            "https://www.cs.toronto.edu/~kriz/cifar.html",
        ),
    )
}


def list_datasets() -> list[DatasetInfo]:
    """The registered datasets, in listing order (``npz:PATH`` files are not listed)."""
    return list(DATASETS.values())


def parse_name(name: str) -> tuple[str, Path | None]:
    """The registry key of ``name``, or ``(name, path)`` for ``npz:PATH`` and ``csv:PATH?...``,
    or ``(name, None)`` for data made in Python (:func:`~dropoutlab.data.memory.known`)."""
    if not isinstance(name, str):
        raise DropoutlabError(f"dataset name must be a string, got {name!r}")
    text = name.strip()
    if text[: len(NPZ_PREFIX)].lower() == NPZ_PREFIX:
        path = text[len(NPZ_PREFIX) :].strip()
        if not path:
            raise DropoutlabError("'npz:' needs a file path after it, e.g. npz:data/my_images.npz")
        return text, Path(path).expanduser()
    if text[: len(CSV_PREFIX)].lower() == CSV_PREFIX:
        return CSV_PREFIX + text[len(CSV_PREFIX) :], parse_csv_name(text)[0]
    if known(text) is not None:
        return text, None
    key = text.lower().replace("_", "-")
    if key not in DATASETS:
        close = difflib.get_close_matches(key, [*DATASETS, *known_names()], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        mine = f", {', '.join(map(repr, known_names()[:5]))} (made in Python)" if known_names() else ""
        raise DropoutlabError(
            f"unknown dataset {name!r}{hint}; choose one of: {', '.join(DATASETS)}, npz:PATH, "
            f"csv:PATH?label=COLUMN{mine}, or data made with dropoutlab.Data"
        )
    return key, None


def _stamp(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


# The caches below are keyed by resolved path, size and mtime, so a study with many runs
# decodes each dataset once while a replaced file is read again.
@lru_cache(maxsize=8)
def _read_npz_cached(name: str, path: str, size: int, mtime_ns: int) -> ImageDataset:
    return read_npz(Path(path), name)


@lru_cache(maxsize=8)
def _read_csv_cached(name: str, stamps: tuple[tuple[str, int, int], ...]) -> ImageDataset:
    path, label, test = parse_csv_name(name)
    return read_csv_dataset(name, path, label, test)


def _csv_stamps(name: str) -> tuple[tuple[str, int, int], ...]:
    """Resolved path, size and mtime of the CSV file(s) of ``name``, which must exist."""
    path, _, test = parse_csv_name(name)
    paths = [path, test] if isinstance(test, Path) else [path]
    for p in paths:
        if not p.is_file():
            raise DropoutlabError(f"CSV file {p} does not exist (from dataset {name!r})")
    return tuple(_stamp(p) for p in paths)


def _check_idx_headers(name: str, paths: list[Path]) -> None:
    """The four IDX files' headers against ``name``'s image shape and the dataset bound,
    before any file's values are read: a header that declares other images is refused
    after reading 16 bytes, not after allocating what it declares."""
    info = DATASETS[name]
    total = 0
    for split, (images, labels) in (("training", paths[:2]), ("test", paths[2:])):
        x, _ = idx_split_header(images, labels)
        shape = (1, *x.dims[1:])
        if shape != info.input_shape:
            raise DropoutlabError(
                f"{name} {split} images in {images} are {shape} (channels, height, width); "
                f"{name} images are {info.input_shape}"
            )
        total += x.nbytes
    MAX_DATASET_BYTES.check(f"the {name} images in {paths[0].parent} hold", total)


@lru_cache(maxsize=8)
def _decode(name: str, kind: str, stamps: tuple[tuple[str, int, int], ...]) -> ImageDataset:
    paths = [Path(s[0]) for s in stamps]
    if kind == "npz":
        ds = read_npz(paths[0], name)
        x_train, y_train, x_test, y_test = ds.x_train, ds.y_train, ds.x_test, ds.y_test
    elif kind == "cifar":
        x_train, y_train, x_test, y_test = read_cifar(paths[0], name)
    else:
        _check_idx_headers(name, paths)
        x_train, y_train = read_idx_split(paths[0], paths[1])
        x_test, y_test = read_idx_split(paths[2], paths[3])
    info = DATASETS[name]
    where = ", ".join(str(p) for p in paths)
    # nothing could train, or no run could be tested: say so now rather than after a study starts
    for split, y, why in (
        ("training", y_train, "nothing could train on it"),
        ("test", y_test, "no run could be tested"),
    ):
        if len(y) == 0:
            raise DropoutlabError(f"the {name} {split} set in {where} holds no images; {why}")
    for split, x, y in (("training", x_train, y_train), ("test", x_test, y_test)):
        if tuple(x.shape[1:]) != info.input_shape:
            raise DropoutlabError(
                f"{name} {split} images in {where} are {tuple(x.shape[1:])} (channels, height, "
                f"width); {name} images are {info.input_shape}"
            )
        if int(y.max()) >= info.num_classes:
            raise DropoutlabError(
                f"{name} {split} labels in {where} go up to {int(y.max())}; "
                f"{name} has {info.num_classes} classes (0..{info.num_classes - 1})"
            )
    if (len(y_train), len(y_test)) != (info.train_size, info.test_size):
        log.warning(
            "%s in %s has %d training and %d test images; the published dataset has %d and %d",
            name,
            where,
            len(y_train),
            len(y_test),
            info.train_size,
            info.test_size,
        )
    log.info("decoded %s from %s", name, where)
    return ImageDataset(name, x_train, y_train, x_test, y_test, num_classes=info.num_classes)


@lru_cache(maxsize=1)
def _digits() -> ImageDataset:
    return read_digits()


def load_dataset(name: str, data_dir: str | Path | None = None, download: bool = True) -> ImageDataset:
    """Decode dataset ``name`` into uint8 ``(N, C, H, W)`` images and int64 labels.

    ``name`` is one of :data:`DATASETS` (case and ``_``/``-`` are forgiven) or
    ``npz:PATH`` for a Keras-layout ``.npz`` file (see :mod:`dropoutlab.data.npz`).
    Files are looked for in ``data_dir`` (else ``$DROPOUTLAB_DATA``), Keras' cache and
    the download cache (see :mod:`dropoutlab.data.fetch`), and downloaded when missing
    unless ``download`` is False. Decoding happens once per process: later calls return
    the same tensors, so callers must not modify them in place.

    ``csv:PATH?label=COLUMN`` reads a CSV table (see :mod:`dropoutlab.data.tabular`), and the
    name of a :class:`~dropoutlab.data.memory.Data` made in this process gives its tensors.

    Raises:
        DropoutlabError: unknown name, files missing (and not downloadable), corrupt or
            malformed files; the message names the file and what was expected.
    """
    key, npz_path = parse_name(name)
    if known(key) is not None:
        return known(key).dataset
    if key.startswith(CSV_PREFIX):
        return _read_csv_cached(key, _csv_stamps(key))
    if npz_path is not None:
        if not npz_path.is_file():
            raise DropoutlabError(f"npz file {npz_path} does not exist (from dataset {name!r})")
        return _read_npz_cached(key, *_stamp(npz_path))
    if key == "digits":
        return _digits()
    found = fetch.find_files(key, data_dir, allow_download=download)
    return _decode(key, found.kind, tuple(_stamp(p) for p in found.paths))


def dataset_info(name: str, data_dir: str | Path | None = None) -> DatasetInfo:
    """Shape, class count and split sizes of ``name``, without decoding registered datasets.

    For ``npz:PATH`` and ``csv:...`` the file is read (once per path and modification time) to learn
    them, so a bad file is reported here, before anything trains. ``data_dir`` is
    accepted for symmetry with :func:`load_dataset`; no lookup needs it.
    """
    key, npz_path = parse_name(name)
    if npz_path is None and key in DATASETS:
        return DATASETS[key]
    ds = load_dataset(key, data_dir, download=False)
    what = "feature vectors" if ds.features else "images"
    return DatasetInfo(
        name=key,
        description=f"{what} from {npz_path or 'Python'}",
        input_shape=ds.input_shape,
        num_classes=ds.num_classes,
        train_size=len(ds.y_train),
        test_size=len(ds.y_test),
        source=str(npz_path.resolve()) if npz_path else "Python (dropoutlab.Data)",
    )
