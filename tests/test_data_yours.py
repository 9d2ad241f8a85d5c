"""Your data (issue 27): feature vectors (N, F) from arrays, tensors, DataFrames, torch
Datasets, npz and CSV files train and report as the registered datasets do, scaled on the
training split, with the same checks (one line each)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from test_data_helpers import isolated  # noqa: F401  (an autouse fixture)

from dropoutlab.cli import main
from dropoutlab.data import Data, dataset_info, load_dataset
from dropoutlab.data.prepare import prepare_data
from dropoutlab.errors import DropoutlabError
from dropoutlab.store import Store
from dropoutlab.study import run_study
from dropoutlab.study.spec import parse_study


def blobs(n: int = 300, features: int = 6, seed: int = 0, scale: float = 1.0):
    """A 3-class problem: three Gaussian clouds, far apart, in ``features`` dimensions;
    features on scales that differ by 1000 times, as tabular columns do."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(3, features)) * 3
    y = np.arange(n) % 3
    x = (centers[y] + rng.normal(size=(n, features))) * np.logspace(0, 3, features) * scale
    return x, y


def split(x, y, n_train):
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


STUDY = {"model": "mlp", "epochs": 5, "batch_size": 32, "normalize": "standard", "eval_train": False,
         "seeds": [0, 1], "grid": {"dropout.hidden1": [0.0, 0.5]}}  # fmt: skip


def test_a_tabular_study_from_arrays_trains_end_to_end_and_reports(tmp_path):
    from dropoutlab.report.write import write_study_report

    data = Data.from_arrays(*split(*blobs(), 240), name="blobs")
    study = parse_study({"name": "tab", "dataset": "blobs", **STUDY})
    with Store(str(tmp_path / "s.db")) as store:
        outcome = run_study(study, store, device="cpu", progress=False, workers=1, data=data)
        assert outcome.statuses == {"completed": 4}
        runs = store.runs("tab")
        assert runs["test_acc"].min() > 0.9  # three clouds far apart: far above chance (1/3)
        paths = write_study_report(store, "tab", tmp_path / "report")
    html = paths["html"].read_text() if "html" in paths else next(iter(paths.values())).read_text()
    assert "dataset blobs" in html and data.identity in html


def test_a_csv_file_with_a_label_column_runs_and_reports_from_the_command_line(capsys, tmp_path):
    x, y = blobs(n=150)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    frame["species"] = np.array(["setosa", "versicolor", "virginica"])[y]
    frame.to_csv(tmp_path / "table.csv", index=False)
    path = tmp_path / "study.toml"
    path.write_text(
        f'name = "csv"\ndataset = "csv:{tmp_path / "table.csv"}?label=species"\nmodel = "mlp"\nepochs = 3\n'
        'normalize = "standard"\nseeds = [0]\neval_train = false\n'
    )
    store = tmp_path / "s.db"
    assert main(["run", str(path), "--store", str(store), "--device", "cpu", "--no-progress"]) == 0
    assert main(["report", "--store", str(store), "--out", str(tmp_path / "r")]) == 0
    capsys.readouterr()
    info = dataset_info(f"csv:{tmp_path / 'table.csv'}?label=species")
    assert (info.input_shape, info.num_classes, info.train_size, info.test_size) == ((6,), 3, 120, 30)


def test_features_are_standardised_on_the_training_split_only():
    x, y = blobs()
    Data.from_arrays(*split(x, y, 240), name="std")
    dataset = load_dataset("std")
    prepared = prepare_data(dataset, 0.25, 0, "standard", "cpu")
    train = prepared.train.x.double()
    assert train.mean(0).abs().max() < 1e-5 and (train.std(0, unbiased=False) - 1).abs().max() < 1e-4
    # the test split is scaled with the training part's mean and deviation, not its own
    order = torch.randperm(240, generator=torch.Generator().manual_seed(0))
    fit = torch.from_numpy(x[:240]).float()[order[60:]].double()
    expected = (torch.from_numpy(x[240:]).float().double() - fit.mean(0)) / fit.std(0, unbiased=False)
    assert torch.allclose(prepared.test.x.double(), expected, rtol=1e-4, atol=1e-4)


def test_unit_scaling_maps_each_features_training_range_to_zero_one():
    x, y = blobs()
    x[:, 2] = 7.0  # a constant feature is shifted, not divided by zero
    Data.from_arrays(*split(x, y, 240), name="unit")
    prepared = prepare_data(load_dataset("unit"), 0.0, 0, "unit", "cpu")
    assert prepared.train.x.amin(0).tolist() == [0.0] * 6
    assert prepared.train.x.amax(0).tolist() == [1.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    symmetric = prepare_data(load_dataset("unit"), 0.0, 0, "symmetric", "cpu")
    assert symmetric.train.x.amin(0)[0] == -1 and symmetric.train.x.amax(0)[0] == 1


def test_preparing_the_data_leaves_your_tensors_as_they_were():
    x, y = blobs()
    data = Data.from_arrays(*split(x, y, 240), name="untouched")
    before = [t.clone() for t in (data.dataset.x_train, data.dataset.x_test)]
    prepare_data(data.dataset, 0.2, 0, "standard", "cpu")
    assert torch.equal(before[0], data.dataset.x_train) and torch.equal(before[1], data.dataset.x_test)
    x[:] = 0  # nor do your arrays share memory with the data
    assert torch.equal(before[0], data.dataset.x_train)


def test_a_validation_split_given_with_the_data_is_the_one_used():
    x, y = blobs()
    data = Data.from_arrays(x[:200], y[:200], x[250:], y[250:], x[200:250], y[200:250], name="with-val")
    prepared = prepare_data(data.dataset, 0.1667, 0, "unit", "cpu")
    assert (len(prepared.train), len(prepared.val), len(prepared.test)) == (200, 50, 50)
    assert torch.equal(prepared.val.y, torch.from_numpy(y[200:250]))


def test_npz_feature_vectors_are_accepted_without_a_pixel_check(tmp_path):
    x, y = blobs(scale=50.0)  # values far outside [0, 1], negative too
    np.savez(
        tmp_path / "t.npz",
        **dict(zip(("x_train", "y_train", "x_test", "y_test"), split(x, y, 240), strict=True)),
    )
    dataset = load_dataset(f"npz:{tmp_path / 't.npz'}")
    assert dataset.features and dataset.pixel_max is None and dataset.input_shape == (6,)
    assert torch.equal(dataset.x_train, torch.from_numpy(x[:240]).float())
    with pytest.raises(DropoutlabError, match=r"t\.npz: x_train has values that are not finite"):
        x[3, 1] = np.nan
        np.savez(
            tmp_path / "t.npz",
            **dict(zip(("x_train", "y_train", "x_test", "y_test"), split(x, y, 240), strict=True)),
        )
        load_dataset(f"npz:{tmp_path / 't.npz'}")


def test_tensors_frames_and_datasets_give_the_same_data_as_arrays():
    x, y = blobs(n=90)
    xf = x.astype(np.float32)
    arrays = Data.from_arrays(*split(xf, y, 60), name="as-arrays")
    tensors = Data.from_arrays(*(torch.from_numpy(a) for a in split(xf, y, 60)), name="as-tensors")
    reads = []

    class Items(torch.utils.data.Dataset):
        def __init__(self, xs, ys):
            self.xs, self.ys = xs, ys

        def __len__(self):
            return len(self.ys)

        def __getitem__(self, i):
            reads.append(i)
            return torch.from_numpy(self.xs[i]), int(self.ys[i])

    items = Data.from_dataset(Items(xf[:60], y[:60]), Items(xf[60:], y[60:]), name="as-items")
    assert sorted(reads) == sorted([*range(60), *range(30)])  # each item read once
    frame = pd.DataFrame(xf, columns=list("abcdef")).assign(target=y)
    framed = Data.from_frame(frame.iloc[:60], "target", test=frame.iloc[60:], name="as-frame")
    assert arrays.identity == tensors.identity == items.identity == framed.identity


def test_text_labels_of_a_frame_become_sorted_classes():
    frame = pd.DataFrame(
        {"a": np.arange(40.0), "b": np.arange(40) % 7, "kind": ["cat", "ant", "bee", "cat"] * 10}
    )
    data = Data.from_frame(frame, "kind", test=0.25, name="kinds")
    assert data.classes == ("ant", "bee", "cat") and data.num_classes == 3
    assert (len(data.dataset.y_train), len(data.dataset.y_test)) == (30, 10)
    assert set(data.dataset.y_test.tolist()) == {0, 1, 2}  # stratified: each class in the test rows


X, Y = blobs(n=60)


class NotPairs(torch.utils.data.Dataset):
    def __len__(self):
        return 3

    def __getitem__(self, i):
        return torch.zeros(2), 0, "extra"


class Stream(torch.utils.data.IterableDataset):
    def __iter__(self):
        yield torch.zeros(2), 0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Data.from_arrays(X[:40], Y[:39], X[40:], Y[40:]), r"y_train has 39 labels for 40 samples"),
        (lambda: Data.from_arrays(X[:40], Y[:40] * 0, X[40:], Y[40:]), r"y_train holds a single class \(0\)"),
        (
            lambda: Data.from_arrays(np.where(X > 0, np.nan, X)[:40], Y[:40], X[40:], Y[40:]),
            r"x_train has \d+ values that are not finite \(NaN or infinity\), the first in sample \d+",
        ),
        (lambda: Data.from_arrays(X[:40], Y[:40] - 1, X[40:], Y[40:]), r"y_train has negative labels"),
        (
            lambda: Data.from_arrays(X[:40], Y[:40] + 0.5, X[40:], Y[40:]),
            r"y_train holds numbers that are not whole",
        ),
        (
            lambda: Data.from_arrays(X[:40], Y[:40], X[40:, :3], Y[40:]),
            r"a sample of x_test has shape \(3,\), one of x_train \(6,\)",
        ),
        (lambda: Data.from_arrays(X[:40, 0], Y[:40], X[40:], Y[40:]), r"x_train has shape \(40,\); expected"),
        (lambda: Data.from_arrays(X[:40], Y[:40], X[:0], Y[:0]), r"x_test holds no samples"),
        (lambda: Data.from_arrays(X[:40], Y[:40], X[40:], Y[40:], X[:5]), r"give both x_val and y_val"),
        (lambda: Data.from_arrays(X[:40].astype(str), Y[:40], X[40:], Y[40:]), r"x_train holds <U\d+ values"),
        (
            lambda: Data.from_arrays(X[:40], Y[:40], X[40:], Y[40:], name="digits"),
            r"names a registered dataset",
        ),
        (
            lambda: Data.from_arrays(X[:40], Y[:40], X[40:], Y[40:], name="npz:x"),
            r"names a registered dataset",
        ),
        (lambda: Data.from_dataset(NotPairs(), NotPairs()), r"item 0 is tuple, not \(input, label\)"),
        (lambda: Data.from_dataset(Stream(), Stream()), r"the train Dataset is not map-style"),
        (
            lambda: Data.from_frame(pd.DataFrame({"a": [1.0, 2.0], "y": [0, 1]}), "label"),
            r"no label column 'label'; the columns are 'a', 'y'",
        ),
        (
            lambda: Data.from_frame(pd.DataFrame({"a": [1.0] * 4, "c": list("xyxy"), "y": [0, 1] * 2}), "y"),
            r"the columns 'c' are not numbers; .* pandas.get_dummies",
        ),
        (
            lambda: Data.from_frame(pd.DataFrame({"a": [1.0, np.nan] * 5, "y": [0, 1] * 5}), "y"),
            r"the train rows have missing or infinite values in the columns 'a'",
        ),
        (
            lambda: Data.from_frame(pd.DataFrame({"a": [1.0] * 10, "y": [0, 1, None, 1, 0] * 2}), "y"),
            r"the label column 'y' has 2 missing values",
        ),
    ],
)
def test_bad_data_is_refused_in_one_line(make, message):
    with pytest.raises(DropoutlabError, match=message) as err:
        make()
    assert "\n" not in str(err.value)


def test_labels_are_checked_in_their_own_dtype_before_conversion(monkeypatch):
    monkeypatch.setenv("DROPOUTLAB_MAX_CLASSES", "10")
    y = np.full(40, 2**64 - 1, dtype=np.uint64)
    with pytest.raises(DropoutlabError, match=r"y_train has labels up to 18446744073709551615"):
        Data.from_arrays(X[:40], y, X[40:], Y[40:])


def test_a_csv_file_too_large_for_the_bound_is_refused_before_pandas_reads_it(tmp_path, monkeypatch):
    path = tmp_path / "big.csv"
    path.write_text("a,y\n" + "1.0,0\n" * 1000)
    monkeypatch.setenv("DROPOUTLAB_MAX_DATASET_BYTES", "4000")

    def never(*args, **kwargs):
        raise AssertionError("read before its size was checked")

    monkeypatch.setattr(pd, "read_csv", never)
    with pytest.raises(DropoutlabError, match=r"big\.csv: 6,004 bytes of CSV text hold up to 3,002 values"):
        load_dataset(f"csv:{path}?label=y")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("csv:t.csv", r"name the label column, e.g. csv:t.csv\?label=target"),
        ("csv:t.csv?label=y&tset=0.1", r"'tset' is not an option of csv:"),
        ("csv:t.csv?label=y&test=1.5", r"test=1.5 is not allowed; allowed: a fraction in \(0, 1\)"),
        ("csv:missing.csv?label=y", r"CSV file missing.csv does not exist"),
    ],
)
def test_csv_names_are_checked_in_one_line(name, message):
    with pytest.raises(DropoutlabError, match=message):
        load_dataset(name)


def test_image_models_and_augmentation_are_refused_on_feature_vectors_with_the_reason():
    Data.from_arrays(*split(X, Y, 40), name="flat")
    with pytest.raises(DropoutlabError, match=r"slides over height and width, which a feature vector lacks"):
        parse_study({"name": "c", "dataset": "flat", "model": "cnn"})
    with pytest.raises(DropoutlabError, match=r"model: resnet needs images"):
        parse_study({"name": "c", "dataset": "flat", "model": "resnet"})
    with pytest.raises(DropoutlabError, match=r"augment: crop and flip move pixels"):
        parse_study({"name": "c", "dataset": "flat", "model": "mlp", "augment": ["flip"]})


def test_data_given_to_run_study_must_be_the_studys(tmp_path):
    data = Data.from_arrays(*split(X, Y, 40), name="given")
    study = parse_study({"name": "d", "dataset": "digits", "epochs": 1, "seeds": [0]})
    with Store(str(tmp_path / "s.db")) as store:
        with pytest.raises(
            DropoutlabError, match=r"data=: the data is named 'given' but the study trains on 'digits'"
        ):
            run_study(study, store, data=data)
        with pytest.raises(DropoutlabError, match=r"data=: ndarray is not allowed"):
            run_study(study, store, data=X)
        assert store.count_runs("d") == 0


def test_npz_feature_vectors_are_bounded_as_float32_before_they_are_inflated(tmp_path, monkeypatch):
    np.savez(
        tmp_path / "t.npz",
        **dict(zip(("x_train", "y_train", "x_test", "y_test"), split(X, Y, 40), strict=True)),
    )
    monkeypatch.setenv("DROPOUTLAB_MAX_DATASET_BYTES", "1000")
    with pytest.raises(DropoutlabError, match=r"x_train and x_test as float32 values would hold 1,440 bytes"):
        load_dataset(f"npz:{tmp_path / 't.npz'}")


def test_data_is_part_of_the_public_api_and_named_in_unknown_dataset_errors():
    import dropoutlab as dl

    assert dl.Data is Data
    Data.from_arrays(*split(X, Y, 40), name="public-blobs")
    with pytest.raises(
        DropoutlabError, match=r"unknown dataset 'public-blob' \(did you mean 'public-blobs'\?\)"
    ):
        load_dataset("public-blob")


def test_one_dataset_is_split_into_training_and_test_items_the_same_way_each_time():
    x, y = blobs(n=100)
    items = torch.utils.data.TensorDataset(torch.from_numpy(x).float(), torch.from_numpy(y))
    first = Data.from_dataset(items, name="one-ds")
    again = Data.from_dataset(items, name="one-ds")
    assert (len(first.dataset.y_train), len(first.dataset.y_test)) == (80, 20)
    assert first.identity == again.identity
    assert set(torch.bincount(first.dataset.y_test).tolist()) <= {6, 7}  # stratified: 34/33/33 items
    with pytest.raises(DropoutlabError, match=r"test=1.5 is not allowed"):
        Data.from_dataset(items, 1.5)


def test_standardising_keeps_features_in_tiny_units_and_only_shifts_constant_ones():
    x, y = blobs()
    x[:, 0] *= 1e-9  # nanometres: tiny, but not constant
    x[:, 1] = 3.0
    Data.from_arrays(*split(x, y, 240), name="tiny-units")
    train = prepare_data(load_dataset("tiny-units"), 0.0, 0, "standard", "cpu").train.x.double()
    assert abs(train[:, 0].std(unbiased=False) - 1) < 1e-3
    assert train[:, 1].abs().max() == 0
