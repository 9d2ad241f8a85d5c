"""``--executor ray``: the same runs as the local executor, a killed worker's task retried, every run once."""

import sqlite3
import sys

import pytest

from dropoutlab.cli import main
from dropoutlab.errors import DropoutlabError
from dropoutlab.store import Store
from dropoutlab.study import expand_runs, load_study, run_study
from dropoutlab.study.ray_executor import import_ray
from dropoutlab.study.runner import FAULT_ENV, RayOptions

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'dropoutlab[ray]'")

STUDY = """
name = "onray"
dataset = "digits"
model = "mlp"
epochs = 2
seeds = {seeds}
[grid]
"dropout.hidden1" = [0.0, 0.3, 0.5]
"""


def records(store):
    return {r["id"]: r for r in store.records()}


def test_ray_gives_the_local_executors_runs(write_study, tmp_path):
    study = load_study(write_study(STUDY.format(seeds=3)))
    with Store(tmp_path / "local.db") as local, Store(tmp_path / "ray.db") as remote:
        run_study(study, local, device="cpu", progress=False, workers=1)
        outcome = run_study(study, remote, device="cpu", progress=False, executor="ray", ray=RayOptions())
        assert outcome.statuses == {"completed": 9}
        want, got = records(local), records(remote)
    assert got.keys() == want.keys()
    for rid, record in got.items():
        assert record["test"]["acc"] == pytest.approx(want[rid]["test"]["acc"], abs=1e-6)
        for mine, theirs in zip(record["history"], want[rid]["history"], strict=True):
            assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)


def test_a_killed_worker_has_its_task_retried_and_every_run_stored_once(write_study, tmp_path, monkeypatch):
    study = load_study(write_study(STUDY.format(seeds=2)))
    victim = expand_runs(study)[0].id
    marker = tmp_path / "killed-once"
    monkeypatch.setenv(FAULT_ENV, f"kill:{victim}:1:{marker}")  # the worker dies after epoch 1, once
    with Store(tmp_path / "s.db") as store:
        outcome = run_study(study, store, device="cpu", progress=False, executor="ray", ray=RayOptions(),
                            checkpoint_every=1)  # fmt: skip
        assert marker.exists(), "the fault did not fire"
        assert outcome.statuses == {"completed": 6}
        with Store(tmp_path / "reference.db") as reference:  # the retried task resumed at epoch 2
            run_study(study, reference, device="cpu", progress=False, workers=1)
            want = {r["id"]: r["history"] for r in reference.records()}
        got = {r["id"]: r["history"] for r in store.records()}[victim]
        assert [h["epoch"] for h in got] == [1, 2]
        for mine, theirs in zip(got, want[victim], strict=True):  # stacks may differ: float rounding
            assert mine["val_loss"] == pytest.approx(theirs["val_loss"], rel=1e-5)
    assert not list((tmp_path / "s.db.checkpoints").glob("*.pt"))  # each removed once its batch ended
    with sqlite3.connect(tmp_path / "s.db") as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM runs")]
        assert len(ids) == len(set(ids)) == 6 and victim in ids
        assert conn.execute("SELECT COUNT(*) FROM epochs WHERE run_id = ?", (victim,)).fetchone()[0] == 2


@pytest.mark.slow
def test_three_hundred_tiny_runs_on_ray_are_each_stored_once(write_study, tmp_path):
    path = write_study(STUDY.format(seeds=100).replace("epochs = 2", "epochs = 1\neval_train = false"))
    store = tmp_path / "load.db"
    assert main(["run", str(path), "--store", str(store), "--device", "cpu", "--executor", "ray",
                 "--no-progress"]) == 0  # fmt: skip
    with sqlite3.connect(store) as conn:
        rows = conn.execute("SELECT id, status FROM runs").fetchall()
    assert len(rows) == len({rid for rid, _ in rows}) == 300
    assert {status for _, status in rows} == {"completed"}


def test_without_ray_the_executor_is_one_line(tmp_path, monkeypatch, write_study, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(DropoutlabError, match=r'pip install "dropoutlab\[ray\]"'):
        import_ray()
    path = write_study(STUDY.format(seeds=1))
    assert main(["run", str(path), "--store", str(tmp_path / "s.db"), "--executor", "ray"]) == 2
    assert 'needs Ray, an optional extra: pip install "dropoutlab[ray]"' in capsys.readouterr().err
    assert not (tmp_path / "s.db").exists()  # nothing touched
    assert main(["run", str(path), "--store", str(tmp_path / "s.db"), "--address", "x:1"]) == 2
    assert "--address, --cpus-per-task and --gpus-per-task are for --executor ray" in capsys.readouterr().err


def test_flags_that_do_not_fit_the_executor_are_one_line(tmp_path, write_study, capsys):
    path = str(write_study(STUDY.format(seeds=1)))
    store = str(tmp_path / "s.db")
    assert main(["run", path, "--store", store, "--executor", "ray", "--workers", "2"]) == 2
    assert "--workers is for the local executor" in capsys.readouterr().err
    assert (
        main(["run", path, "--store", store, "--executor", "ray", "--device", "cpu", "--gpus-per-task", "1"])
        == 2
    )
    assert "--gpus-per-task 1 with a cpu device" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", path, "--store", store, "--checkpoint-every", "-1"])
    assert "allowed: a whole number of epochs, 0 for off" in capsys.readouterr().err
    assert not (tmp_path / "s.db").exists()
