"""Leases: two drivers on one store never train a run twice; a dead driver's runs are taken over."""

import os
import re
import socket
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from dropoutlab.errors import DropoutlabError
from dropoutlab.store import Store
from dropoutlab.study import expand_runs, load_study, run_study
from dropoutlab.study.leases import Lease, driver_gone, process_space

STUDY = """
name = "shared"
dataset = "digits"
model = "mlp"
epochs = 2
seeds = 4
[grid]
"dropout.hidden1" = [0.0, 0.3, 0.5]
"""

HERE = socket.gethostname()


def dead_pid() -> int:
    """The pid of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_claims_are_exclusive_until_they_lapse_or_their_driver_is_gone(store_at):
    with Store(store_at) as store:
        a, b = f"{HERE}:{os.getpid()}:a", f"{HERE}:{os.getpid()}:b"
        assert store.claim(["r1", "r2"], a, lease_s=60) == ["r1", "r2"]
        assert store.claim(["r1", "r2", "r3"], b, lease_s=60) == ["r3"]  # a is alive and renewing
        assert store.claim(["r1"], a, lease_s=60) == ["r1"]  # its own claims stay its own
        assert store.claim(["r1", "r2"], b, lease_s=0.0) == ["r1", "r2"]  # a's lease lapsed
        assert store.claimed(b) == {"r1": b, "r2": b, "r3": b}
        assert store.claim(["r2"], a, lease_s=60, gone=lambda owner: owner == b) == ["r2"]  # b is gone
        store.release(a)
        assert store.claimed() == {"r1": b, "r3": b}
        space = process_space()
        assert driver_gone(f"{HERE}:{dead_pid()}:{space}:x") and not driver_gone(
            f"{HERE}:{os.getpid()}:{space}:x"
        )
        assert not driver_gone(f"another-host:{dead_pid()}:{space}:x")  # elsewhere: only the lease tells
        assert not driver_gone(f"{HERE}:{dead_pid()}:other-container:x")  # same name, other pids


def test_a_run_held_by_a_live_driver_is_left_to_it_then_trained_once_released(write_study, store_at):
    study = load_study(write_study(STUDY))
    with Store(store_at) as store:
        other = f"{HERE}:{os.getpid()}:other"  # a live process: this one
        ids = [r.id for r in expand_runs(study)]
        assert store.claim(ids[:5], other, lease_s=60) == ids[:5]
        outcome = run_study(study, store, progress=False, workers=1)
        assert outcome.busy == 5 and sum(outcome.statuses.values()) == 7
        assert any("being trained by another `dropoutlab run`" in note for note in outcome.plan_notes)
        assert store.finished_ids("shared") == set(ids[5:])
        assert store.claimed() == {rid: other for rid in ids[:5]}  # ours were released, its kept
        store.release(other)
        again = run_study(study, store, progress=False, workers=1)
        assert again.busy == 0 and sum(again.statuses.values()) == 5 and again.skipped == 7
        assert store.claimed() == {}


def test_a_lease_renews_its_claims_while_inside(store_at):
    with Store(store_at) as store, Lease(store, lease_s=0.2) as lease:
        lease.claim(["r1"])
        time.sleep(0.5)  # two lease lengths: without renewal another driver would take it
        assert store.claim(["r1"], "other-host:1:x", lease_s=0.2) == []
    with Store(store_at) as store:
        assert store.claimed() == {}  # released on exit


@pytest.mark.slow
def test_two_drivers_on_one_store_train_each_run_exactly_once(write_study, store_at):
    path = write_study(STUDY.replace("seeds = 4", "seeds = 6"))
    store = store_at
    cmd = [sys.executable, "-m", "dropoutlab.cli", "run", str(path), "--store", str(store), "--device", "cpu",
           "--workers", "1", "--stack", "1", "--no-progress"]  # fmt: skip
    drivers = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = [d.communicate(timeout=300) for d in drivers]
    assert all(d.returncode == 0 for d in drivers), [err for _, err in outputs]
    trained = [
        int(re.search(r"(\d+) completed", out).group(1)) if "completed" in out else 0 for out, _ in outputs
    ]
    assert sum(trained) == 18, outputs  # every run trained by exactly one of the two
    with Store(store, readonly=True) as s:
        assert len(s.finished_ids("shared")) == 18 and s.claimed() == {}


def test_replace_waits_for_a_live_driver_and_a_taken_over_run_is_not_written(
    write_study, store_at, monkeypatch
):
    import dropoutlab.study.runner as runner

    study = load_study(write_study(STUDY))
    ids = [r.id for r in expand_runs(study)]
    with Store(store_at) as store:
        other = f"{HERE}:{os.getpid()}:{process_space()}:other"  # alive: this process
        store.claim(ids[:1], other, lease_s=60)
        with pytest.raises(DropoutlabError, match="another `dropoutlab run` is training 1 of its runs"):
            run_study(study, store, progress=False, workers=1, replace=True)
        store.release(other)
        real = runner.train_runs

        def lapsed(runs, *args, **kwargs):  # another driver takes this batch's first run over mid-training
            claims = store.tables["claims"]
            with store.engine.begin() as conn:
                conn.execute(sa.update(claims).where(claims.c.run_id == runs[0].id).values(owner=other))
            return real(runs, *args, **kwargs)

        monkeypatch.setattr(runner, "train_runs", lapsed)
        outcome = run_study(study, store, progress=False, workers=1, stack="off")
        assert outcome.busy == 12 and not outcome.statuses and store.finished_ids("shared") == set()


def test_a_study_that_another_driver_extends_keeps_its_checkpoints_and_is_not_replaced(
    write_study, tiny_study, store_at
):
    from conftest import TINY_STUDY

    from dropoutlab.train.checkpoints import checkpoint_folder

    study = load_study(tiny_study)
    extended = load_study(write_study(TINY_STUDY.replace("seeds = [0, 1]", "seeds = [0, 1, 2]"), "more.toml"))
    seed_2 = [r.id for r in expand_runs(extended) if r.seed == 2]
    with Store(store_at) as store:
        run_study(study, store, device="cpu", progress=False, workers=1)
        folder = checkpoint_folder(store.checkpoint_folder(), "tiny")
        folder.mkdir(parents=True)
        (folder / "0123456789abcdef0123.pt").write_bytes(b"the other driver's stack")
        other = f"{HERE}:{os.getpid()}:{process_space()}:other"  # alive: this process
        assert store.claim(seed_2, other, lease_s=60, study="tiny") == seed_2  # it trains the extension
        run_study(study, store, device="cpu", progress=False, workers=1)  # nothing to train here
        assert folder.exists()  # the extension's stacks may still resume from it
        changed = load_study(write_study(TINY_STUDY.replace("epochs = 2", "epochs = 3"), "changed.toml"))
        with pytest.raises(DropoutlabError, match="another `dropoutlab run` is training 2 of its runs"):
            run_study(changed, store, progress=False, workers=1, replace=True)
        store.release(other)
        run_study(study, store, device="cpu", progress=False, workers=1)
        assert not folder.exists()


def _another_process_can_write(path) -> bool:
    probe = "import sqlite3, sys\ntry:\n    sqlite3.connect(sys.argv[1], timeout=0).execute('BEGIN IMMEDIATE')\nexcept sqlite3.OperationalError:\n    sys.exit(1)\n"
    return subprocess.run([sys.executable, "-c", probe, str(path)]).returncode == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX advisory locks")
def test_the_heartbeats_connection_leaves_this_process_s_lock_in_place(tmp_path):
    path = tmp_path / "s.db"
    with Store(path) as store, store.engine.connect() as conn:
        conn.execution_options(immediate=True)
        with conn.begin():  # a write transaction of this driver: the file is locked
            assert not _another_process_can_write(path)
            store.new_connection().close()  # what the lease's heartbeat thread opens
            assert not _another_process_can_write(path)
            Store(path, readonly=True).close()  # a first open reads the file: closing it drops our lock
            assert _another_process_can_write(path)  # (why the heartbeat must not do that)
