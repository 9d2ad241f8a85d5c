"""``--executor ray``: the same runs as the local executor, a killed worker's task retried, every run once."""

import contextlib
import importlib.util
import os
import sqlite3
import sys
import time

import pytest
from test_stacked import F64_RTOL

from dropoutlab.cli import main
from dropoutlab.errors import DropoutlabError
from dropoutlab.store import Store
from dropoutlab.study import expand_runs, load_study, run_study
from dropoutlab.study.ray_executor import RayProgress, import_ray, ray_map, task_slots
from dropoutlab.study.runner import FAULT_ENV, RayOptions

# Only the tests that start Ray need it: those of the messages and the arithmetic run without it.
needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="Ray is an optional extra: pip install 'dropoutlab[ray]'"
)

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


@contextlib.contextmanager
def ray_in_float64():
    """A local Ray instance whose workers train in float64, as the ``float64`` fixture makes this
    process do, so that the runs of Ray and of the local executor agree to 1e-9 on any CPU
    (ray_map uses it instead of starting its own; the DROPOUTLAB_* variables travel as it does)."""
    import ray

    def float64_worker():  # nested, so that Ray's workers get it by value, not from this module
        import torch

        torch.set_default_dtype(torch.float64)

    env = {k: v for k, v in os.environ.items() if k.startswith("DROPOUTLAB_")}
    ray.init(include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": env, "worker_process_setup_hook": float64_worker})  # fmt: skip
    try:
        yield
    finally:
        ray.shutdown()


@needs_ray
def test_ray_gives_the_local_executors_runs(write_study, tmp_path, float64):
    study = load_study(write_study(STUDY.format(seeds=3)))
    with Store(tmp_path / "local.db") as local, Store(tmp_path / "ray.db") as remote, ray_in_float64():
        run_study(study, local, device="cpu", progress=False, workers=1)
        outcome = run_study(study, remote, device="cpu", progress=False, executor="ray", ray=RayOptions())
        assert outcome.statuses == {"completed": 9}
        want, got = records(local), records(remote)
    assert got.keys() == want.keys()
    for rid, record in got.items():
        assert record["test"]["acc"] == want[rid]["test"]["acc"]
        for mine, theirs in zip(record["history"], want[rid]["history"], strict=True):
            assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=F64_RTOL)


@needs_ray
def test_a_killed_worker_has_its_task_retried_and_every_run_stored_once(
    write_study, tmp_path, monkeypatch, float64
):
    study = load_study(write_study(STUDY.format(seeds=2)))
    victim = expand_runs(study)[0].id
    marker = tmp_path / "killed-once"
    monkeypatch.setenv(FAULT_ENV, f"kill:{victim}:1:{marker}")  # the worker dies after epoch 1, once
    with Store(tmp_path / "s.db") as store, ray_in_float64():
        outcome = run_study(study, store, device="cpu", progress=False, executor="ray", ray=RayOptions(),
                            checkpoint_every=1)  # fmt: skip
        assert marker.exists(), "the fault did not fire"
        assert outcome.statuses == {"completed": 6}
        assert "1 Ray task was tried again after a worker died (up to 3 times each)" in outcome.plan_notes
        with Store(tmp_path / "reference.db") as reference:  # the retried task resumed at epoch 2
            run_study(study, reference, device="cpu", progress=False, workers=1)
            want = {r["id"]: r["history"] for r in reference.records()}
        got = {r["id"]: r["history"] for r in store.records()}[victim]
        assert [h["epoch"] for h in got] == [1, 2]
        for mine, theirs in zip(got, want[victim], strict=True):  # stacks may differ: float64 rounding
            assert mine["val_loss"] == pytest.approx(theirs["val_loss"], rel=F64_RTOL)
    assert not (tmp_path / "s.db.checkpoints").exists()  # the study is complete: nothing left to resume
    with sqlite3.connect(tmp_path / "s.db") as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM runs")]
        assert len(ids) == len(set(ids)) == 6 and victim in ids
        assert conn.execute("SELECT COUNT(*) FROM epochs WHERE run_id = ?", (victim,)).fetchone()[0] == 2


@pytest.mark.slow
@needs_ray
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


@needs_ray
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


def test_task_slots_count_what_fits_on_the_cluster():
    assert task_slots({"CPU": 8.0}, 1, 0) == 8 and task_slots({"CPU": 8.0}, 3, 0) == 2
    assert task_slots({"CPU": 8.0, "GPU": 1.0}, 1, 0.25) == 4  # four stacks share one card
    assert task_slots({"CPU": 2.0, "GPU": 1.0}, 1, 0.25) == 2  # the CPUs bound them first
    assert task_slots({"CPU": 8.0}, 1, 1) == 1  # no GPU at all: one waits, for an autoscaler to see


@pytest.fixture
def ray_of_two_cpus():
    """A local Ray instance of 2 CPUs whatever the machine has (Ray counts them as it is told),
    which ray_map uses instead of starting its own."""
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'dropoutlab[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_map_keeps_no_more_tasks_than_the_cluster_runs_and_returns_each_once(ray_of_two_cpus):
    def _slow_square(x, delay):  # nested: Ray's workers get it by value, not from this test module
        time.sleep(delay)
        return x * x

    assert task_slots(ray_of_two_cpus.cluster_resources(), 1, 0) == 2
    progress, seen = RayProgress(), []
    results = {}
    for item, result in ray_map(_slow_square, list(range(6)), (0.3,), num_cpus=1, progress=progress):
        seen.append(progress.running)
        results[item] = result
    assert results == {x: x * x for x in range(6)}
    # three tasks submitted (the two that fit, one waiting), so the first result leaves two running
    assert max(seen) == 2 and progress.retried == 0
    assert ray_of_two_cpus.is_initialized()  # ray_map leaves an instance it did not start


@needs_ray
def test_resources_per_task_come_from_the_study_file_unless_a_flag_says_otherwise(
    tmp_path, write_study, capsys, monkeypatch
):
    import dropoutlab.study

    seen = []
    monkeypatch.setattr(dropoutlab.study, "run_study", lambda *a, **kw: seen.append(kw["ray"]) or 1 / 0)
    store = str(tmp_path / "s.db")
    path = str(write_study(STUDY.format(seeds=1) + "\n[resources]\ncpus_per_task = 2\n"))
    for flags, cpus in (([], 2.0), (["--cpus-per-task", "0.5"], 0.5)):
        with pytest.raises(ZeroDivisionError):  # stops right after the options are made
            main(["run", path, "--store", store, "--executor", "ray", "--device", "cpu", *flags])
        assert (seen[-1].cpus, seen[-1].gpus) == (cpus, None)
    on_gpu = str(write_study(STUDY.format(seeds=1) + "\n[resources]\ngpus_per_task = 0.25\n", "g.toml"))
    assert main(["run", on_gpu, "--store", store, "--executor", "ray", "--device", "cpu"]) == 2
    assert "resources.gpus_per_task = 0.25 with a cpu device" in capsys.readouterr().err
    for bad, words in (
        ("cpus_per_task = 0", "resources.cpus_per_task: "),
        ("gpus_per_task = -1", "resources.gpus_per_task: "),
        ("memory = 4", "resources.memory: unknown key; allowed: cpus_per_task, gpus_per_task"),
    ):
        bad_study = str(write_study(STUDY.format(seeds=1) + f"\n[resources]\n{bad}\n", "b.toml"))
        assert main(["run", bad_study, "--store", store, "--executor", "ray"]) == 2
        assert words in capsys.readouterr().err


@needs_ray
def test_tasks_that_no_node_fits_are_said_to_wait(caplog):
    with caplog.at_level("WARNING", logger="dropoutlab.study.ray_executor"):
        assert list(ray_map(lambda x: x, [], (), num_cpus=64, num_gpus=1)) == []  # nothing submitted: no wait
    assert (
        "each task asks for 64 CPUs and 1 GPUs: the tasks wait until a node that fits them joins"
        in caplog.text
    )
