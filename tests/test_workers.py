"""CPU worker processes (``--workers``): same results as one process, errors and stops handled."""

import dataclasses
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import group_ends, make_run, prepared, stored_ids
from test_stacked import F64_RTOL

from dropoutlab.errors import DropoutlabError
from dropoutlab.store import Store
from dropoutlab.study import load_study, run_study
from dropoutlab.study.workers import can_fork, map_unordered, resolve_workers, usable_cores
from dropoutlab.train import train_run

CPU = torch.device("cpu")
needs_fork = pytest.mark.skipif(not can_fork(), reason="worker processes are forked, on Linux only")


def test_resolve_workers():
    assert resolve_workers("auto", CPU) == (usable_cores() if can_fork() else 1)
    assert resolve_workers("auto", torch.device("cuda")) == 1
    assert resolve_workers(1, torch.device("cuda")) == 1
    with pytest.raises(DropoutlabError, match="--workers 2: worker processes train on the CPU"):
        resolve_workers(2, torch.device("cuda"))
    for bad in (0, -1, "many", True, 1.5):
        with pytest.raises(DropoutlabError, match="allowed: auto or a whole number >= 1"):
            resolve_workers(bad, CPU)


@needs_fork
def test_workers_store_the_same_runs_as_one_process(tiny_study, tmp_path, float64):
    study = load_study(tiny_study)
    with Store(tmp_path / "one.db") as one, Store(tmp_path / "two.db") as two:
        run_study(study, one, device="cpu", progress=False, stack=2, workers=1)
        outcome = run_study(study, two, device="cpu", progress=False, stack=2, workers=2)
        assert outcome.statuses == {"completed": 4}
        got, want = two.runs().set_index("id"), one.runs().set_index("id")
        assert sorted(got.index) == sorted(want.index)
        # the same stacks, so the same masks and orders: equal up to one vs two threads' rounding
        # (float64, so that rounding stays far below the tolerance on any CPU)
        assert got.loc[want.index, "test_acc"].tolist() == want["test_acc"].tolist()
        for column in ("test_loss", "final_train_loss", "final_val_loss"):
            assert got.loc[want.index, column].tolist() == pytest.approx(want[column].tolist(), rel=F64_RTOL)
        assert {r["env"]["threads"] for r in two.records()} == {1}  # each worker on one core
        assert len(two.history()) == len(one.history()) == 8


@needs_fork
def test_stacks_split_for_the_workers_train_the_same_results(tiny_study, tmp_path, float64):
    # the plan may split stacks to keep every worker busy; a member's masks and order come
    # from its own generators, so its results must not depend on the stack it trained in
    got = {}
    for workers in (1, 2):
        with Store(tmp_path / f"{workers}.db") as store:
            run_study(load_study(tiny_study), store, device="cpu", progress=False, workers=workers)
            got[workers] = store.runs().set_index("id").sort_index()
    assert got[1].index.tolist() == got[2].index.tolist() and len(got[1]) == 4
    assert got[2]["test_acc"].tolist() == got[1]["test_acc"].tolist()
    for column in ("test_loss", "final_train_loss", "final_val_loss"):
        assert got[2][column].tolist() == pytest.approx(got[1][column].tolist(), rel=F64_RTOL)


def _square(x, offset):
    return x * x + offset


def _fail_on_three(x):
    if x == 3:
        raise DropoutlabError("three is not allowed")
    return x


def _die_on_three(x):
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def _sleep(seconds):
    time.sleep(seconds)
    return seconds


def _train_in_turn(run, data, barrier):
    if barrier is not None:  # passed only when two processes hold two items at the same time
        barrier.wait(timeout=60)
    result = dataclasses.asdict(train_run(run, data, CPU))
    assert torch.get_num_threads() == 1
    del result["wall_s"], result["env"]  # all but the timing and the process that trained it
    return result, os.getpid()


@needs_fork
def test_workers_really_fork_two_workers_and_train_as_one_worker_does(digits):
    runs = [make_run(seed=seed, epochs=2) for seed in range(4)]
    data = prepared(digits, runs[0])  # the same data settings for every seed
    # every item waits for a second one to start, so one process cannot train them all
    barrier = multiprocessing.get_context("fork").Barrier(2)
    two = {run.id: out for run, out in map_unordered(_train_in_turn, runs, (data, barrier), workers=2)}
    one = {run.id: out for run, out in map_unordered(_train_in_turn, runs, (data, None), workers=1)}
    two_pids = {pid for _, pid in two.values()}
    one_pids = {pid for _, pid in one.values()}
    assert len(two_pids) == 2 and os.getpid() not in two_pids
    assert len(one_pids) == 1 and os.getpid() not in one_pids
    assert sorted(two) == sorted(one) == sorted(run.id for run in runs)
    for run_id, (result, _) in one.items():
        assert result["status"] == "completed" and len(result["history"]) == 2
        # one thread per worker either way: the same operations, so the same numbers
        # (compared as text, where a NaN equals itself)
        assert repr(two[run_id][0]) == repr(result)


def _where(x):
    return os.getpid(), torch.get_num_threads()


@needs_fork
def test_tail_in_parent_trains_a_lone_last_item_here_with_every_thread():
    parent = (os.getpid(), torch.get_num_threads())
    got = list(map_unordered(_where, [1, 2, 3], (), workers=2, tail_in_parent=True))
    assert got[-1] == (3, parent)  # yielded last, after the workers finished
    assert {item for item, _ in got[:2]} == {1, 2}
    assert all(pid != parent[0] and threads == 1 for _, (pid, threads) in got[:2])
    assert not multiprocessing.active_children()
    # one item and several workers: nothing to fork
    assert list(map_unordered(_where, [7], (), workers=2, tail_in_parent=True)) == [(7, parent)]


@needs_fork
def test_tail_in_parent_only_when_exactly_one_item_would_train_alone():
    parent = os.getpid()
    for items, workers, tail in (([1, 2, 3, 4], 2, True), ([1, 2, 3, 4, 5], 3, True), ([1, 2, 3], 2, False)):
        got = dict(map_unordered(_where, items, (), workers=workers, tail_in_parent=tail))
        assert sorted(got) == items
        assert all(pid != parent for pid, _ in got.values())  # every item in a worker
    got = dict(map_unordered(_where, [1, 2, 3, 4], (), workers=3, tail_in_parent=True))
    assert got[4][0] == parent and all(got[i][0] != parent for i in (1, 2, 3))


@needs_fork
def test_an_error_in_the_parents_tail_reaches_the_caller():
    with pytest.raises(DropoutlabError, match="three is not allowed"):
        list(map_unordered(_fail_on_three, [1, 2, 3], (), workers=2, tail_in_parent=True))
    assert not multiprocessing.active_children()


@needs_fork
def test_map_unordered_shares_arguments_and_returns_every_item():
    results = dict(map_unordered(_square, [1, 2, 3, 4], (10,), workers=2))
    assert results == {1: 11, 2: 14, 3: 19, 4: 26}


@needs_fork
def test_an_error_in_a_worker_reaches_the_caller():
    with pytest.raises(DropoutlabError, match="three is not allowed"):
        list(map_unordered(_fail_on_three, [1, 2, 3], (), workers=2))


@needs_fork
def test_a_killed_worker_ends_the_map_with_one_clear_error():
    with pytest.raises(DropoutlabError, match="a training worker process died"):
        list(map_unordered(_die_on_three, [1, 2, 3, 4], (), workers=2))
    assert not multiprocessing.active_children()


@needs_fork
def test_stopping_early_stops_the_workers_at_once():
    start = time.perf_counter()
    results = map_unordered(_sleep, [0, 60, 60], (), workers=2)
    assert next(results) == (0, 0)
    results.close()  # what an error or Ctrl-C in the caller does
    assert time.perf_counter() - start < 30
    assert not multiprocessing.active_children()


@needs_fork
@pytest.mark.slow
def test_ctrl_c_stops_the_workers_and_keeps_finished_runs(write_study, tmp_path):
    path = write_study(
        """
        name = "interrupt-me"
        dataset = "digits"
        model = "mlp"
        epochs = 4
        batch_size = 16
        seeds = 8
        [grid]
        "dropout.hidden1" = [0.0, 0.5]
        """
    )
    store = tmp_path / "i.db"
    cmd = [sys.executable, "-m", "dropoutlab.cli", "run", str(path), "--store", str(store), "--device", "cpu",
           "--stack", "1", "--workers", "2"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.time() + 120
    while len(stored_ids(store)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends: the whole process group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted; finished runs are stored" in err and "Traceback" not in err
    assert group_ends(proc.pid), "worker processes outlived the interrupted study"
    stored = stored_ids(store)
    assert 2 <= len(stored) < 16, "the interrupt should land mid-study"
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{len(stored)} already stored" in done.stdout
    assert len(set(stored_ids(store))) == len(stored_ids(store)) == 16


@needs_fork
def test_more_workers_than_cores_are_capped_at_the_cores_in_one_line(caplog):
    cores = usable_cores()
    with caplog.at_level(logging.WARNING, logger="dropoutlab.study.workers"):
        assert resolve_workers(cores + 22, CPU) == cores
    assert [r.getMessage() for r in caplog.records] == [
        f"--workers {cores + 22}: this process may run on {cores} cores; training with {cores} worker processes"
    ]
    assert resolve_workers(cores, CPU) == cores and len(caplog.records) == 1
