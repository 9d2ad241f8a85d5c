"""The data is part of the design: a study records what its dataset's name stood for (the
SHA-256 of its files or arrays, scikit-learn's version for digits), refuses to add runs on
other data under the same name, adopts the identity of a store written before it was
recorded, and stores it with each run and in the report's methods."""

from __future__ import annotations

import hashlib
from importlib.metadata import version

import numpy as np
import pytest
from test_data_helpers import (  # noqa: F401  (isolated is an autouse fixture)
    IDX_NAMES,
    isolated,
    sha256,
    trust,
    write_idx_set,
    write_npz,
)

from dropoutlab.cli import main
from dropoutlab.data import Data
from dropoutlab.data.identity import data_identity
from dropoutlab.errors import DropoutlabError
from dropoutlab.store import Store
from dropoutlab.study import run_study
from dropoutlab.study.design import compare_designs, compare_identities, with_identity
from dropoutlab.study.spec import parse_study

NPZ_STUDY = """name = "own"
dataset = "npz:{path}"
model = "mlp"
epochs = 1
batch_size = 16
eval_train = false
seeds = {seeds}
"""


def _run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_replaced_npz_file_refuses_new_seeds_in_one_line_and_replace_archives(capsys, tmp_path):
    npz = tmp_path / "own.npz"
    write_npz(npz, seed=0, shape=(8, 8), n=(30, 10))
    store = tmp_path / "s.db"
    first = tmp_path / "first.toml"
    first.write_text(NPZ_STUDY.format(path=npz, seeds="[0]"))
    assert _run(capsys, "run", first, "--store", store, "--device", "cpu", "--no-progress")[0] == 0

    write_npz(npz, seed=1, shape=(8, 8), n=(30, 10))  # same path, other images
    more = tmp_path / "more.toml"
    more.write_text(NPZ_STUDY.format(path=npz, seeds="[0, 1]"))
    code, _, err = _run(capsys, "run", more, "--store", store, "--device", "cpu", "--no-progress")
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert f"the data changed (identity.data): npz:{npz} was sha256:" in err
    assert err.strip().endswith(
        "use a new study name or --replace (keeps the stored runs as 'own@archived-N')"
    )
    with Store(str(store), readonly=True) as s:
        assert s.count_runs("own") == 1  # nothing trained

    code, out, err = _run(
        capsys, "run", more, "--store", store, "--device", "cpu", "--no-progress", "--replace"
    )
    assert code == 0, err
    with Store(str(store), readonly=True) as s:
        assert s.count_runs("own") == 2 and s.count_runs("own@archived-1") == 1
        now = f"sha256:{hashlib.sha256(npz.read_bytes()).hexdigest()}"
        assert s.study_definition("own")["identity"] == {"data": {f"npz:{npz}": now}}
        assert {r["env"]["data"] for r in s.records("own")} == {now}


def test_the_same_npz_file_extends_the_study_without_a_word_on_identity(capsys, tmp_path):
    npz = tmp_path / "own.npz"
    write_npz(npz, seed=0, shape=(8, 8), n=(30, 10))
    store = tmp_path / "s.db"
    for seeds in ("[0]", "[0, 1]"):
        path = tmp_path / "study.toml"
        path.write_text(NPZ_STUDY.format(path=npz, seeds=seeds))
        code, out, err = _run(capsys, "run", path, "--store", store, "--device", "cpu", "--no-progress")
        assert code == 0, err
    assert "extends the stored study with 1 seed" in out + err
    assert "identity" not in out + err


def test_a_store_written_before_identities_adopts_it_in_one_line(tmp_path):
    study = parse_study({"name": "old", "dataset": "digits", "epochs": 1, "seeds": [0], "eval_train": False})
    with Store(str(tmp_path / "s.db")) as store:
        store.write_study(study)  # as a store written before this: no identity in the definition
        assert "identity" not in store.study_definition("old")
        outcome = run_study(study, store, device="cpu", progress=False, workers=1)
        assert outcome.note == (
            "old: the store had no identity.data for this study (written before it was recorded); recorded it "
            f"now: digits as scikit-learn {version('scikit-learn')}"
        )
        assert store.study_definition("old")["identity"] == {
            "data": {"digits": f"scikit-learn {version('scikit-learn')}"}
        }
        again = run_study(study, store, device="cpu", progress=False, workers=1)
        assert again.note is None and again.skipped == 1


def test_each_kind_of_dataset_has_its_identity(tmp_path):
    assert data_identity("digits") == f"scikit-learn {version('scikit-learn')}"
    npz = tmp_path / "a.npz"
    write_npz(npz, shape=(8, 8))
    assert data_identity(f"npz:{npz}") == f"sha256:{hashlib.sha256(npz.read_bytes()).hexdigest()}"
    csv = tmp_path / "t.csv"
    csv.write_text("a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(20)))
    assert data_identity(f"csv:{csv}?label=y") == f"sha256:{hashlib.sha256(csv.read_bytes()).hexdigest()}"
    assert data_identity("mnist", download=False) is None  # not on this machine: nothing to tell apart


def test_arrays_of_other_values_under_the_same_name_have_another_identity():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), np.arange(40) % 2
    first = Data.from_arrays(x[:30], y[:30], x[30:], y[30:], name="same-name")
    again = Data.from_arrays(x[:30].copy(), y[:30], x[30:], y[30:], name="same-name")
    x[0, 0] += 1e-3
    other = Data.from_arrays(x[:30], y[:30], x[30:], y[30:], name="same-name")
    assert first.identity == again.identity != other.identity
    assert first.identity.startswith("sha256:") and len(first.identity) == 7 + 64


def test_in_memory_data_changed_under_a_study_is_refused_before_training(tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(60, 4)), np.arange(60) % 3
    data = Data.from_arrays(x[:45], y[:45], x[45:], y[45:], name="mine")
    study = parse_study({"name": "m", "dataset": "mine", "epochs": 1, "seeds": [0], "eval_train": False})
    with Store(str(tmp_path / "s.db")) as store:
        run_study(study, store, device="cpu", progress=False, workers=1, data=data)
        other = Data.from_arrays(x[:45] * 2, y[:45], x[45:], y[45:], name="mine")
        more = parse_study(
            {"name": "m", "dataset": "mine", "epochs": 1, "seeds": [0, 1], "eval_train": False}
        )
        with pytest.raises(DropoutlabError, match=r"the data changed \(identity\.data\): mine was sha256:"):
            run_study(more, store, device="cpu", progress=False, workers=1, data=other)
        assert store.count_runs("m") == 1


def test_identity_entries_are_compared_one_by_one_and_new_datasets_extend():
    old = {"data": {"a": "sha256:1"}, "model": "x"}
    assert compare_identities(old, {"data": {"a": "sha256:1", "b": "sha256:2"}, "model": "x"}) == ([], [])
    changed, adopted = compare_identities(old, {"data": {"a": "sha256:9"}, "model": "y", "code": "z"})
    assert changed == [
        "the data changed (identity.data): a was sha256:1 when its runs were stored, now sha256:9",
        "the model changed (identity.model): was x when its runs were stored, now y",
    ]
    assert adopted == ["code"]
    assert compare_identities({}, {"data": {"a": "1"}}) == ([], ["data"])
    assert compare_identities({"data": {"a": "1"}}, {}) == ([], [])  # never refused for what is absent
    assert compare_designs({"identity": old}, {"identity": {"data": {"a": "sha256:9"}, "model": "x"}}) == (
        ["identity.data"],
        [],
    )


def test_the_dry_run_refuses_changed_data_without_training(capsys, tmp_path):
    npz = tmp_path / "own.npz"
    write_npz(npz, seed=0, shape=(8, 8), n=(30, 10))
    store = tmp_path / "s.db"
    path = tmp_path / "study.toml"
    path.write_text(NPZ_STUDY.format(path=npz, seeds="[0]"))
    assert _run(capsys, "run", path, "--store", store, "--device", "cpu", "--no-progress")[0] == 0
    write_npz(npz, seed=5, shape=(8, 8), n=(30, 10))
    code, _, err = _run(capsys, "run", path, "--store", store, "--dry-run")
    assert code == 2 and "the data changed (identity.data)" in err


def test_the_report_names_the_data_identity_in_its_methods(tmp_path):
    from dropoutlab.report.analysis import analyze
    from dropoutlab.report.sections import report_sections

    study = parse_study({"name": "r", "dataset": "digits", "epochs": 1, "seeds": [0, 1], "eval_train": False,
                         "grid": {"dropout.hidden1": [0.0, 0.5]}})  # fmt: skip
    with Store(str(tmp_path / "s.db")) as store:
        run_study(study, store, device="cpu", progress=False, workers=1)
        methods = next(s for s in report_sections(analyze(store, "r")) if s.title == "Methods")
    assert f"when each run trained): scikit-learn {version('scikit-learn')}." in " ".join(methods.paragraphs)


def test_with_identity_leaves_out_what_it_cannot_know_without_downloading():
    raw = {"name": "s", "seeds": [0], "grid": {"dataset": ["digits", "mnist"]}}
    spec = with_identity(parse_study(raw), download=False)
    assert spec.identity == {"data": {"digits": f"scikit-learn {version('scikit-learn')}"}}
    assert spec.definition()["identity"] == spec.identity


def test_a_registered_dataset_is_identified_by_its_verified_files_in_split_order(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "kmnist"
    write_idx_set(folder)
    trust(monkeypatch, "kmnist", *folder.iterdir())
    digests = [sha256(folder / f"{stem}.gz") for stem in IDX_NAMES]
    expected = "sha256:" + hashlib.sha256("".join(d + "\n" for d in digests).encode()).hexdigest()
    assert data_identity("kmnist", tmp_path / "data", download=False) == expected
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"tampered")
    with pytest.raises(DropoutlabError, match="is corrupt or not the expected kmnist file"):
        data_identity("kmnist", tmp_path / "data", download=False)  # checked, as loading it is


def test_a_complete_study_checked_without_its_files_downloads_nothing_and_keeps_its_identity(
    tmp_path, monkeypatch
):
    folder = tmp_path / "data"
    write_idx_set(folder / "kmnist", n=(12, 5))
    trust(monkeypatch, "kmnist", *(folder / "kmnist").iterdir())
    raw = {"name": "k", "dataset": "kmnist", "epochs": 1, "seeds": [0], "eval_train": False}
    with Store(str(tmp_path / "s.db")) as store:
        run_study(parse_study(raw), store, device="cpu", progress=False, workers=1, data_dir=folder)
        stored = store.study_definition("k")["identity"]
        assert stored["data"]["kmnist"].startswith("sha256:")
        for path in (folder / "kmnist").iterdir():
            path.unlink()  # pooch.retrieve raises in these tests: a download would fail the run
        outcome = run_study(parse_study(raw), store, device="cpu", progress=False, workers=1, data_dir=folder)
        assert outcome.skipped == 1 and outcome.note is None
        assert store.study_definition("k")["identity"] == stored
