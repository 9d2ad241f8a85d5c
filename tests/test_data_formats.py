"""The format parsers: IDX, CIFAR pickles, Keras npz, scikit-learn digits."""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile

import numpy as np
import pytest
import torch
from test_data_helpers import (  # noqa: F401  (isolated is an autouse fixture)
    cifar_batches,
    idx_bytes,
    images,
    isolated,
    write_cifar_folder,
    write_cifar_tar,
    write_idx_set,
    write_npz,
)

from dropoutlab.data.cifar import read_cifar
from dropoutlab.data.digits import read_digits
from dropoutlab.data.idx import read_idx, read_idx_split
from dropoutlab.data.npz import read_npz
from dropoutlab.errors import DropoutlabError

# ---------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [True, False])
def test_idx_pair_decodes_images_with_their_own_labels(tmp_path, gz):
    x_train, y_train, *_ = write_idx_set(tmp_path, gz=gz)
    suffix = ".gz" if gz else ""
    x, y = read_idx_split(
        tmp_path / f"train-images-idx3-ubyte{suffix}", tmp_path / f"train-labels-idx1-ubyte{suffix}"
    )
    assert x.dtype == torch.uint8 and x.shape == (12, 1, 28, 28)
    assert y.dtype == torch.int64
    assert np.array_equal(x[:, 0].numpy(), x_train)
    assert torch.equal(y, x[:, 0, 0, 0].long() % 10)


def test_idx_reads_multibyte_values_big_endian(tmp_path):
    values = np.array([[1, 258], [-2, 32767]], dtype=np.int16)
    (tmp_path / "a.idx").write_bytes(idx_bytes(values, code=0x0B))
    assert np.array_equal(read_idx(tmp_path / "a.idx"), values)


def test_truncated_gzip_idx_names_the_file(tmp_path):
    data = gzip.compress(idx_bytes(images(4, (28, 28), 0)[0]))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DropoutlabError, match="train-images-idx3-ubyte.gz"):
        read_idx(path)


def test_idx_with_missing_data_bytes_is_reported_truncated(tmp_path):
    data = idx_bytes(images(4, (28, 28), 0)[0])
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(data[:-10])
    with pytest.raises(DropoutlabError, match=r"t10k-images-idx3-ubyte is truncated"):
        read_idx(path)


def test_idx_with_extra_bytes_is_refused(tmp_path):
    path = tmp_path / "x.idx"
    path.write_bytes(idx_bytes(np.zeros((2, 3), np.uint8)) + b"\0")
    with pytest.raises(DropoutlabError, match="trailing bytes"):
        read_idx(path)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04junk", b"\0\0\x99\x01\0\0\0\x01x"])
def test_non_idx_file_is_refused_by_magic_number(tmp_path, content):
    path = tmp_path / "bogus-idx"
    path.write_bytes(content)
    with pytest.raises(DropoutlabError, match="bogus-idx is not an IDX file"):
        read_idx(path)


def test_idx_image_and_label_counts_must_match(tmp_path):
    x, y = images(5, (28, 28), 0)
    (tmp_path / "img").write_bytes(idx_bytes(x))
    (tmp_path / "lab").write_bytes(idx_bytes(y[:4]))
    with pytest.raises(DropoutlabError, match="5 images but .*lab has 4 labels"):
        read_idx_split(tmp_path / "img", tmp_path / "lab")


def test_idx_images_and_labels_swapped_is_refused(tmp_path):
    x, y = images(5, (28, 28), 0)
    (tmp_path / "img").write_bytes(idx_bytes(x))
    (tmp_path / "lab").write_bytes(idx_bytes(y))
    with pytest.raises(DropoutlabError, match="image file .*lab"):
        read_idx_split(tmp_path / "lab", tmp_path / "img")


# ---------------------------------------------------------------- CIFAR


@pytest.mark.parametrize("variant", ["cifar10", "cifar100"])
def test_cifar_archive_decodes_planes_and_batch_order(tmp_path, variant):
    expected = write_cifar_tar(tmp_path / "c.tar.gz", variant)
    got = read_cifar(tmp_path / "c.tar.gz", variant)
    for g, e in zip(got, expected, strict=True):
        assert np.array_equal(g.numpy(), e)
    x_train, y_train, x_test, _ = got
    assert x_train.shape == (15 if variant == "cifar10" else 3, 3, 32, 32)
    assert x_train.dtype == torch.uint8 and y_train.dtype == torch.int64
    classes = 10 if variant == "cifar10" else 100
    assert torch.equal(y_train, x_train[:, 0, 0, 0].long() % classes)
    assert x_test.shape == (3, 3, 32, 32)


def test_cifar_unpacked_folder_reads_like_the_archive(tmp_path):
    batches = cifar_batches("cifar100", seed=7)
    write_cifar_folder(tmp_path, "cifar100", batches=batches)
    write_cifar_tar(tmp_path / "x.tar.gz", "cifar100", batches=batches)
    from_folder = read_cifar(tmp_path / "cifar-100-python", "cifar100")
    from_tar = read_cifar(tmp_path / "x.tar.gz", "cifar100")
    for a, b in zip(from_folder, from_tar, strict=True):
        assert torch.equal(a, b)


def _tar_with(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def test_cifar_batch_without_labels_names_the_member(tmp_path):
    batches = cifar_batches("cifar10")
    bad = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)})
    members = {f"cifar-10-batches-py/{m}": b[0] for m, b in batches.items()}
    members["cifar-10-batches-py/data_batch_3"] = bad
    _tar_with(tmp_path / "c.tar.gz", members)
    with pytest.raises(DropoutlabError, match=r"c.tar.gz:cifar-10-batches-py/data_batch_3 .*b'labels'"):
        read_cifar(tmp_path / "c.tar.gz", "cifar10")


def test_cifar_batch_with_wrong_image_size_is_refused(tmp_path):
    batches = cifar_batches("cifar100")
    write_cifar_folder(tmp_path, "cifar100", batches=batches)
    bad = {b"data": np.zeros((2, 1024), np.uint8), b"fine_labels": [1, 2]}
    (tmp_path / "cifar-100-python" / "test").write_bytes(pickle.dumps(bad))
    with pytest.raises(DropoutlabError, match=r"cifar-100-python/test: b'data' must be uint8"):
        read_cifar(tmp_path / "cifar-100-python", "cifar100")


def test_truncated_cifar_archive_names_the_file(tmp_path):
    write_cifar_tar(tmp_path / "c.tar.gz", "cifar10")
    data = (tmp_path / "c.tar.gz").read_bytes()
    (tmp_path / "c.tar.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DropoutlabError, match=r"c.tar.gz"):
        read_cifar(tmp_path / "c.tar.gz", "cifar10")


def test_cifar_archive_missing_a_batch_lists_it(tmp_path):
    batches = cifar_batches("cifar10")
    del batches["data_batch_4"]
    _tar_with(tmp_path / "c.tar.gz", {f"cifar-10-batches-py/{m}": b[0] for m, b in batches.items()})
    with pytest.raises(DropoutlabError, match="lacks cifar-10-batches-py/data_batch_4"):
        read_cifar(tmp_path / "c.tar.gz", "cifar10")


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch pwned",))


def test_cifar_pickle_that_would_run_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    batches = cifar_batches("cifar100")
    write_cifar_folder(tmp_path, "cifar100", batches=batches)
    evil = {b"data": _Exploit(), b"fine_labels": []}
    (tmp_path / "cifar-100-python" / "train").write_bytes(pickle.dumps(evil))
    with pytest.raises(DropoutlabError, match=r"cifar-100-python/train .*refusing to load"):
        read_cifar(tmp_path / "cifar-100-python", "cifar100")
    assert not (tmp_path / "pwned").exists()


def test_archive_members_escaping_or_linking_are_never_written_or_followed(tmp_path):
    batches = cifar_batches("cifar10")
    archive = tmp_path / "inner" / "c.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("../escaped.txt", "/tmp/dropoutlab-abs-escape.txt"):
            info = tarfile.TarInfo(name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"bad"))
        link = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
        for m, (blob, *_) in batches.items():
            if m != "data_batch_1":
                info = tarfile.TarInfo(f"cifar-10-batches-py/{m}")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
    with pytest.raises(DropoutlabError, match="data_batch_1 is a link or folder"):
        read_cifar(archive, "cifar10")
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "inner" / "cifar-10-batches-py").exists()


# ---------------------------------------------------------------- npz


def test_npz_grey_images_and_column_labels(tmp_path):
    column = images(4, (28, 28), 1)[1].reshape(-1, 1)  # the labels of write_npz's x_test
    write_npz(tmp_path / "d.npz", y_test=column)
    ds = read_npz(tmp_path / "d.npz", "npz:d.npz")
    assert ds.x_train.shape == (10, 1, 28, 28) and ds.x_train.dtype == torch.uint8
    assert ds.y_test.shape == (4,) and ds.y_test.dtype == torch.int64
    assert torch.equal(ds.y_train, ds.x_train[:, 0, 0, 0].long() % 10)
    assert torch.equal(ds.y_test, ds.x_test[:, 0, 0, 0].long() % 10)
    assert ds.pixel_max == 255


def test_npz_channels_last_becomes_channels_first(tmp_path):
    arrays = write_npz(tmp_path / "c.npz", shape=(5, 6, 3))
    ds = read_npz(tmp_path / "c.npz", "npz:c")
    assert ds.input_shape == (3, 5, 6)
    assert np.array_equal(ds.x_train.numpy(), arrays["x_train"].transpose(0, 3, 1, 2))


def test_npz_float_pixels_in_unit_range_become_8_bit(tmp_path):
    x = np.array([0.0, 0.5, 1.0, 0.2], dtype=np.float32).reshape(1, 2, 2)
    write_npz(tmp_path / "f.npz", shape=(2, 2), x_train=x, y_train=np.array([0]))
    ds = read_npz(tmp_path / "f.npz", "npz:f")
    assert ds.x_train.flatten().tolist() == [0, 128, 255, 51]


def test_npz_classes_count_the_largest_label_of_either_split(tmp_path):
    write_npz(tmp_path / "n.npz", y_train=np.zeros(10, np.int64), y_test=np.array([0, 6, 2, 1]))
    assert read_npz(tmp_path / "n.npz", "n").num_classes == 7


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"y_test": None}, r"lacks y_test"),
        ({"x_train": np.zeros((10, 28), np.uint8)}, r"x_train has shape \(10, 28\)"),
        ({"y_train": np.zeros(9, np.int64)}, r"y_train has 9 labels but x_train has 10"),
        (
            {"y_train": np.zeros(10, np.float32)},
            r"y_train has float32 values; labels must be integers",
        ),
        ({"y_test": np.array([0, -1, 0, 0])}, r"y_test has negative labels"),
        ({"x_test": np.full((4, 28, 28), 2.0)}, r"x_test has float pixels outside \[0, 1\]"),
        (
            {"x_test": np.zeros((4, 14, 14), np.uint8)},
            r"x_train images are \(1, 28, 28\) but x_test",
        ),
        ({"y_train": np.zeros((10, 2), np.int64)}, r"y_train has shape \(10, 2\)"),
    ],
)
def test_npz_errors_name_the_file_and_key(tmp_path, overrides, message):
    write_npz(tmp_path / "bad.npz", **overrides)
    with pytest.raises(DropoutlabError, match=r"bad\.npz.*" + message):
        read_npz(tmp_path / "bad.npz", "npz:bad.npz")


def test_npz_that_is_not_a_zip_is_refused(tmp_path):
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(DropoutlabError, match=r"cannot read npz file .*text\.npz"):
        read_npz(tmp_path / "text.npz", "npz:text.npz")


# ---------------------------------------------------------------- digits


def test_digits_fixed_stratified_split():
    ds = read_digits()
    assert ds.input_shape == (1, 8, 8) and ds.num_classes == 10 and ds.pixel_max == 16
    assert (len(ds.y_train), len(ds.y_test)) == (1437, 360)
    assert ds.x_train.dtype == torch.uint8 and ds.y_train.dtype == torch.int64
    assert int(ds.x_train.max()) == 16
    assert set(torch.bincount(ds.y_test).tolist()) <= {35, 36, 37}  # stratified: ~36 per class
    again = read_digits()
    assert torch.equal(ds.x_test, again.x_test) and torch.equal(ds.y_train, again.y_train)


def test_digits_split_is_the_published_one():
    # pins the split: a change of seed or method would change which image is first
    ds = read_digits()
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    _, x_test, _, y_test = train_test_split(
        d.images, d.target, test_size=360, stratify=d.target, random_state=0
    )
    assert np.array_equal(ds.x_test[:, 0].numpy(), x_test.astype(np.uint8))
    assert np.array_equal(ds.y_test.numpy(), y_test)
