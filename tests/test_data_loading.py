"""Finding, checking, downloading and caching datasets, and the public entry points."""

from __future__ import annotations

import functools
import logging
import re
import shutil
import threading
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pooch
import pytest
import requests
from test_data_helpers import (  # noqa: F401  (isolated is an autouse fixture)
    IDX_NAMES,
    idx_bytes,
    isolated,
    sha256,
    trust,
    write_cifar_folder,
    write_cifar_tar,
    write_idx_set,
    write_npz,
)

from dropoutlab.data import (
    DATASETS,
    DatasetInfo,
    dataset_info,
    fetch,
    idx,
    list_datasets,
    load_dataset,
)
from dropoutlab.errors import DropoutlabError

GZ = [f"{n}.gz" for n in IDX_NAMES]

# the real download function, kept before the autouse ``isolated`` fixture turns the network off
REAL_RETRIEVE = pooch.retrieve


def keras_datasets() -> Path:
    return Path.home() / ".keras" / "datasets"  # HOME is a fresh folder in each test


def same(ds, arrays) -> bool:
    """Whether ``ds`` holds ``(x_train, y_train, x_test, y_test)`` (images without a channel
    axis for grey ones)."""
    x_train, y_train, x_test, y_test = arrays
    got = [ds.x_train.numpy(), ds.y_train.numpy(), ds.x_test.numpy(), ds.y_test.numpy()]
    if got[0].shape[1] == 1 and np.ndim(x_train) == 3:
        got[0], got[2] = got[0][:, 0], got[2][:, 0]
    return all(np.array_equal(g, e) for g, e in zip(got, (x_train, y_train, x_test, y_test), strict=True))


# ---------------------------------------------------------------- where files are looked for


def test_plain_idx_files_directly_in_data_dir(tmp_path):
    arrays = write_idx_set(tmp_path / "data", gz=False)
    ds = load_dataset("mnist", data_dir=tmp_path / "data", download=False)
    assert same(ds, arrays)
    assert ds.name == "mnist" and ds.num_classes == 10 and ds.input_shape == (1, 28, 28)


def test_checked_gz_files_in_subfolder_named_after_dataset(tmp_path, monkeypatch):
    arrays = write_idx_set(tmp_path / "data" / "fashion-mnist")
    trust(monkeypatch, "fashion-mnist", *(tmp_path / "data" / "fashion-mnist").iterdir())
    ds = load_dataset("Fashion_MNIST", data_dir=str(tmp_path / "data"), download=False)
    assert same(ds, arrays) and ds.name == "fashion-mnist"


def test_env_variable_is_the_data_folder_when_no_data_dir(tmp_path, monkeypatch):
    arrays = write_idx_set(tmp_path / "env" / "kmnist", gz=False)
    monkeypatch.setenv("DROPOUTLAB_DATA", str(tmp_path / "env"))
    assert same(load_dataset("kmnist", download=False), arrays)


def test_data_dir_wins_over_env_variable(tmp_path, monkeypatch):
    write_idx_set(tmp_path / "env", seed=1, gz=False)
    mine = write_idx_set(tmp_path / "mine", seed=2, gz=False)
    monkeypatch.setenv("DROPOUTLAB_DATA", str(tmp_path / "env"))
    assert same(load_dataset("mnist", data_dir=tmp_path / "mine", download=False), mine)


def test_data_folder_wins_over_keras_cache(tmp_path, monkeypatch):
    write_idx_set(keras_datasets() / "kmnist", seed=1, gz=False)
    mine = write_idx_set(tmp_path / "mine" / "kmnist", seed=2, gz=False)
    assert same(load_dataset("kmnist", data_dir=tmp_path / "mine", download=False), mine)
    assert not same(load_dataset("kmnist", download=False), mine)  # falls back to Keras'


def test_keras_mnist_npz_is_used_for_mnist(monkeypatch):
    path = keras_datasets() / "mnist.npz"
    arrays = write_npz(path, seed=3)
    trust(monkeypatch, "mnist", path)
    ds = load_dataset("mnist", download=False)
    assert same(ds, [arrays[k] for k in ("x_train", "y_train", "x_test", "y_test")])
    assert ds.name == "mnist" and ds.num_classes == 10


def test_keras_fashion_mnist_folder(monkeypatch):
    folder = keras_datasets() / "fashion-mnist"
    arrays = write_idx_set(folder)
    trust(monkeypatch, "fashion-mnist", *folder.iterdir())
    assert same(load_dataset("fashion-mnist", download=False), arrays)


def test_keras_home_variable_moves_the_keras_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    arrays = write_cifar_folder(tmp_path / "kh" / "datasets", "cifar100")
    assert same(load_dataset("cifar100", download=False), arrays)


@pytest.mark.parametrize(
    "where",
    [
        "cifar-10-batches-py",  # Keras 2 unpacked
        "cifar-10-batches-py/cifar-10-batches-py",  # Keras 3 unpacked
    ],
)
def test_keras_unpacked_cifar_folders(where):
    base = keras_datasets() / Path(where).parent
    arrays = write_cifar_folder(base, "cifar10")
    ds = load_dataset("cifar10", download=False)
    assert same(ds, arrays) and ds.input_shape == (3, 32, 32)


@pytest.mark.parametrize(
    "archive",
    ["cifar-10-batches-py.tar.gz", "cifar-10-batches-py_archive", "cifar-10-python.tar.gz"],
)
def test_cifar_archive_under_keras_names_is_checked_as_the_original(monkeypatch, archive):
    path = keras_datasets() / archive
    arrays = write_cifar_tar(path, "cifar10")
    trust(monkeypatch, "cifar10", path, original="cifar-10-python.tar.gz")
    assert same(load_dataset("cifar10", download=False), arrays)


def test_torchvision_layout(tmp_path, monkeypatch):
    mnist = write_idx_set(tmp_path / "MNIST" / "raw", seed=1, gz=False)
    kmnist = write_idx_set(tmp_path / "KMNIST" / "raw", seed=2)
    trust(monkeypatch, "kmnist", *(tmp_path / "KMNIST" / "raw").iterdir())
    cifar = write_cifar_tar(tmp_path / "cifar-10-python.tar.gz", "cifar10")
    trust(monkeypatch, "cifar10", tmp_path / "cifar-10-python.tar.gz")
    assert same(load_dataset("mnist", data_dir=tmp_path, download=False), mnist)
    assert same(load_dataset("kmnist", data_dir=tmp_path, download=False), kmnist)
    assert same(load_dataset("cifar10", data_dir=tmp_path, download=False), cifar)


def test_previous_download_in_pooch_cache_is_found(monkeypatch):
    folder = Path(pooch.os_cache("dropoutlab")) / "kmnist"
    arrays = write_idx_set(folder)
    trust(monkeypatch, "kmnist", *folder.iterdir())
    assert same(load_dataset("kmnist", download=False), arrays)


def test_incomplete_folder_is_skipped(tmp_path):
    write_idx_set(tmp_path / "data", seed=1, gz=False)
    (tmp_path / "data" / "t10k-labels-idx1-ubyte").unlink()
    arrays = write_idx_set(tmp_path / "data" / "mnist", seed=2, gz=False)
    assert same(load_dataset("mnist", data_dir=tmp_path / "data", download=False), arrays)


# ---------------------------------------------------------------- checksums


def test_gz_file_with_wrong_hash_is_refused_and_named(tmp_path):
    write_idx_set(tmp_path / "data")  # real checksum table: these small files cannot match
    with pytest.raises(DropoutlabError) as err:
        load_dataset("mnist", data_dir=tmp_path / "data", download=False)
    message = str(err.value)
    assert "train-images-idx3-ubyte.gz is corrupt or not the expected mnist file" in message
    assert sha256(tmp_path / "data" / "train-images-idx3-ubyte.gz") in message
    assert "\n" not in message


def test_file_of_another_dataset_is_refused_even_with_a_good_copy_later(tmp_path, monkeypatch):
    write_idx_set(tmp_path / "data", seed=1)  # e.g. Fashion-MNIST files dropped in DIR
    good = tmp_path / "data" / "mnist"
    write_idx_set(good, seed=2)
    trust(monkeypatch, "mnist", *good.iterdir())
    with pytest.raises(DropoutlabError, match=r"data/train-images-idx3-ubyte.gz is corrupt"):
        load_dataset("mnist", data_dir=tmp_path / "data", download=False)


def test_corrupt_cifar_archive_is_refused(monkeypatch):
    path = keras_datasets() / "cifar-100-python.tar.gz"
    write_cifar_tar(path, "cifar100")
    trust(monkeypatch, "cifar100", path)
    path.write_bytes(path.read_bytes()[:-1] + b"x")
    with pytest.raises(DropoutlabError, match="cifar-100-python.tar.gz is corrupt"):
        load_dataset("cifar100", download=False)


def test_checksum_table_is_complete_and_well_formed():
    for name, files in fetch.DOWNLOADS.items():
        assert fetch.MIRRORS[name], name
        for f in files:
            assert re.fullmatch(r"[0-9a-f]{64}", fetch.CHECKSUMS[name][f] or ""), (name, f)
    assert re.fullmatch(r"[0-9a-f]{64}", fetch.CHECKSUMS["mnist"]["mnist.npz"])


def test_truncated_plain_idx_in_data_dir_names_the_file(tmp_path):
    write_idx_set(tmp_path, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DropoutlabError, match="t10k-images-idx3-ubyte is truncated"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


# ---------------------------------------------------------------- missing and downloading


def test_offline_missing_message_lists_files_folders_and_urls(tmp_path):
    with pytest.raises(DropoutlabError) as err:
        load_dataset("fashion-mnist", data_dir=tmp_path / "d", download=False)
    message = str(err.value)
    for name in GZ:
        assert name in message
    assert str(tmp_path / "d" / "fashion-mnist") in message
    assert str(tmp_path / "d" / "FashionMNIST" / "raw") in message
    assert ".keras/datasets" in message
    assert "https://storage.googleapis.com/tensorflow/tf-keras-datasets/train-images" in message
    assert "download=False" in message and "\n" not in message


def test_offline_cifar_message_names_archive_and_folder():
    with pytest.raises(DropoutlabError) as err:
        load_dataset("cifar100", download=False)
    message = str(err.value)
    assert "cifar-100-python.tar.gz" in message and "cifar-100-python/" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz" in message


def test_network_failure_gives_the_missing_message(tmp_path):
    with pytest.raises(DropoutlabError) as err:
        load_dataset("kmnist", data_dir=tmp_path)
    message = str(err.value)
    assert "downloading it failed" in message and "network is off" in message
    assert "train-labels-idx1-ubyte.gz" in message


def fake_pooch(monkeypatch, source: Path, failing: tuple[str, ...] = ()):
    """Replace pooch.retrieve with a copy from ``source``; URLs starting with ``failing``
    raise a connection error. Returns the list of calls."""
    calls = []

    def retrieve(url, known_hash=None, fname=None, path=None, processor=None, progressbar=False):
        calls.append({"url": url, "known_hash": known_hash, "fname": fname, "path": Path(path)})
        if url.startswith(failing):
            raise requests.ConnectionError("unreachable")
        Path(path).mkdir(parents=True, exist_ok=True)
        shutil.copy(source / fname, Path(path) / fname)
        return str(Path(path) / fname)

    monkeypatch.setattr(pooch, "retrieve", retrieve)
    return calls


def test_download_tries_mirrors_in_order_with_sha256(tmp_path, monkeypatch):
    arrays = write_idx_set(tmp_path / "server")
    trust(monkeypatch, "mnist", *(tmp_path / "server").iterdir())
    first, second = fetch.MIRRORS["mnist"][:2]
    calls = fake_pooch(monkeypatch, tmp_path / "server", failing=(first,))
    ds = load_dataset("mnist", data_dir=tmp_path / "data")
    assert same(ds, arrays)
    assert [c["url"] for c in calls[:2]] == [first + GZ[0], second + GZ[0]]
    assert {c["fname"] for c in calls} == set(GZ)
    assert all(c["path"] == tmp_path / "data" / "mnist" for c in calls)
    for c in calls:
        assert c["known_hash"] == "sha256:" + fetch.CHECKSUMS["mnist"][c["fname"]]
    # found locally next time: no more downloads
    fake_pooch(monkeypatch, tmp_path / "nowhere", failing=("",))
    assert same(load_dataset("mnist", data_dir=tmp_path / "data", download=False), arrays)


@contextmanager
def serving(folder: Path):
    """An HTTP server on 127.0.0.1 serving ``folder``; yields its base URL and the list of
    paths it was asked for."""
    requested: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, fmt, *args):  # called once per request; record it, print nothing
            requested.append(self.path)

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_hash_mismatch_on_one_mirror_takes_that_file_from_the_next(tmp_path, monkeypatch, caplog):
    # Real pooch over real HTTP on the loopback: the first mirror serves a corrupted copy of
    # one file (same name, same size, one byte changed), the second serves every file intact.
    arrays = write_idx_set(tmp_path / "good")
    trust(monkeypatch, "fashion-mnist", *(tmp_path / "good").iterdir())
    shutil.copytree(tmp_path / "good", tmp_path / "bad")
    corrupt = tmp_path / "bad" / GZ[0]
    data = bytearray(corrupt.read_bytes())
    data[-1] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    monkeypatch.setattr(pooch, "retrieve", REAL_RETRIEVE)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    caplog.set_level(logging.WARNING, logger="dropoutlab.data.fetch")
    with serving(tmp_path / "bad") as (bad, bad_log), serving(tmp_path / "good") as (good, good_log):
        monkeypatch.setitem(fetch.MIRRORS, "fashion-mnist", (bad, good))
        ds = load_dataset("fashion-mnist", data_dir=tmp_path / "data")
    assert same(ds, arrays)
    assert bad_log == [f"/{name}" for name in GZ]  # every file asked of the first mirror
    assert good_log == [f"/{GZ[0]}"]  # only the corrupted one of the second
    (record,) = [r for r in caplog.records if r.name == "dropoutlab.data.fetch"]
    assert record.getMessage().startswith(f"downloading {bad}{GZ[0]} failed: SHA256 hash of downloaded file")
    downloaded = tmp_path / "data" / "fashion-mnist"
    assert sorted(p.name for p in downloaded.iterdir()) == sorted(GZ)  # no corrupted leftovers
    for name in GZ:
        assert sha256(downloaded / name) == fetch.CHECKSUMS["fashion-mnist"][name]


def test_hash_mismatch_on_every_mirror_is_refused_naming_each_url(tmp_path, monkeypatch):
    write_cifar_tar(tmp_path / "good" / "cifar-10-python.tar.gz", "cifar10")
    trust(monkeypatch, "cifar10", tmp_path / "good" / "cifar-10-python.tar.gz")
    write_cifar_tar(tmp_path / "bad" / "cifar-10-python.tar.gz", "cifar10", seed=1)  # valid, but not the one
    monkeypatch.setattr(pooch, "retrieve", REAL_RETRIEVE)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with serving(tmp_path / "bad") as (first, _), serving(tmp_path / "bad") as (second, _):
        monkeypatch.setitem(fetch.MIRRORS, "cifar10", (first, second))
        with pytest.raises(DropoutlabError) as err:
            load_dataset("cifar10", data_dir=tmp_path / "data")
    message = str(err.value)
    assert message.startswith("dataset 'cifar10' is not on this machine and downloading it failed (")
    for base in (first, second):
        assert f"{base}cifar-10-python.tar.gz: SHA256 hash of downloaded file" in message
    assert not list((tmp_path / "data" / "cifar10").glob("cifar-10-python.tar.gz"))


def test_download_goes_to_env_folder_or_pooch_cache(tmp_path, monkeypatch):
    write_cifar_tar(tmp_path / "server" / "cifar-10-python.tar.gz", "cifar10")
    trust(monkeypatch, "cifar10", tmp_path / "server" / "cifar-10-python.tar.gz")
    calls = fake_pooch(monkeypatch, tmp_path / "server")
    load_dataset("cifar10")
    assert calls[-1]["path"] == Path(pooch.os_cache("dropoutlab")) / "cifar10"
    assert calls[-1]["url"] == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    monkeypatch.setenv("DROPOUTLAB_DATA", str(tmp_path / "env"))
    monkeypatch.setattr(fetch, "locate", lambda *a, **k: None)
    load_dataset("cifar10")
    assert calls[-1]["path"] == tmp_path / "env" / "cifar10"


# ---------------------------------------------------------------- caching


def test_dataset_is_decoded_once_per_process(tmp_path, monkeypatch):
    write_idx_set(tmp_path, gz=False)
    reads = []
    real = idx.read_idx
    monkeypatch.setattr(idx, "read_idx", lambda p: reads.append(p) or real(p))
    first = load_dataset("mnist", data_dir=tmp_path, download=False)
    second = load_dataset("mnist", data_dir=tmp_path, download=False)
    assert first is second and len(reads) == 4


def test_replaced_file_is_decoded_again(tmp_path):
    write_idx_set(tmp_path, seed=1, gz=False)
    first = load_dataset("mnist", data_dir=tmp_path, download=False)
    newer = write_idx_set(tmp_path, seed=2, gz=False, n=(13, 5))
    second = load_dataset("mnist", data_dir=tmp_path, download=False)
    assert second is not first and same(second, newer)


# ---------------------------------------------------------------- names and info


def test_unknown_name_lists_the_allowed_ones():
    with pytest.raises(DropoutlabError) as err:
        load_dataset("mnsit")
    assert str(err.value) == (
        "unknown dataset 'mnsit' (did you mean 'mnist'?); choose one of: digits, mnist, "
        "fashion-mnist, kmnist, cifar10, cifar100, npz:PATH, csv:PATH?label=COLUMN, or data made with "
        "dropoutlab.Data"
    )
    with pytest.raises(DropoutlabError, match="choose one of"):
        dataset_info("imagenet")


def test_npz_without_path_or_file_is_a_user_error(tmp_path):
    with pytest.raises(DropoutlabError, match="'npz:' needs a file path"):
        load_dataset("npz:")
    with pytest.raises(DropoutlabError, match=r"npz file .*missing\.npz does not exist"):
        dataset_info(f"npz:{tmp_path / 'missing.npz'}")


def test_npz_dataset_load_and_info(tmp_path):
    write_npz(tmp_path / "mine.npz", shape=(9, 7, 3), n=(6, 2), y_test=np.array([4, 1]))
    name = f"npz:{tmp_path / 'mine.npz'}"
    info = dataset_info(name)
    assert info == DatasetInfo(
        name,
        f"images from {tmp_path / 'mine.npz'}",
        (3, 9, 7),
        info.num_classes,
        6,
        2,
        str((tmp_path / "mine.npz").resolve()),
    )
    assert info.num_classes >= 5
    ds = load_dataset(name)
    assert ds.input_shape == (3, 9, 7) and ds.name == name and ds is load_dataset(name)


def test_registered_info_needs_no_files():
    info = dataset_info("cifar100")
    assert (info.input_shape, info.num_classes, info.train_size, info.test_size) == (
        (3, 32, 32),
        100,
        50_000,
        10_000,
    )
    assert dataset_info("digits").source == "scikit-learn (bundled)"
    assert list(DATASETS) == ["digits", "mnist", "fashion-mnist", "kmnist", "cifar10", "cifar100"]
    assert list_datasets() == list(DATASETS.values())


def test_registered_info_matches_what_loads():
    info, ds = dataset_info("digits"), load_dataset("digits")
    assert (info.input_shape, info.num_classes) == (ds.input_shape, ds.num_classes)
    assert (info.train_size, info.test_size) == (len(ds.y_train), len(ds.y_test))
    assert ds.pixel_max == 16


def test_files_with_the_wrong_image_size_are_refused(tmp_path):
    write_idx_set(tmp_path, gz=False, size=8)
    with pytest.raises(DropoutlabError, match=r"mnist training images in .* are \(1, 8, 8\)"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


def test_labels_beyond_the_class_count_are_refused(tmp_path):
    write_idx_set(tmp_path, gz=False)
    labels = np.arange(12, dtype=np.uint8) + 5  # up to 16, but MNIST has 10 classes
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    with pytest.raises(DropoutlabError, match=r"mnist training labels in .* go up to 16"):
        load_dataset("mnist", data_dir=tmp_path, download=False)
