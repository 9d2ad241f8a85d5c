import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import group_ends, stored_ids

from dropoutlab.errors import DropoutlabError
from dropoutlab.store import NETWORK_FILE_SYSTEMS, Store
from dropoutlab.study import expand_runs, load_study, run_study


def test_run_study_stores_every_run_once_and_skips_them_on_rerun(tiny_study, tmp_path):
    study = load_study(tiny_study)
    with Store(tmp_path / "s.db") as store:
        first = run_study(study, store, device="cpu", progress=False)
        assert first.planned == 4 and first.skipped == 0 and first.statuses["completed"] == 4
        stamps = {r["id"]: r["wall_s"] for r in store.records()}
        second = run_study(study, store, device="cpu", progress=False)
        assert second.skipped == 4 and not second.statuses
        assert {r["id"]: r["wall_s"] for r in store.records()} == stamps
        runs = store.runs()
        assert sorted(runs["id"]) == sorted(r.id for r in expand_runs(study))
        assert runs.attrs["params"] == ["dropout.hidden1"]
        assert set(runs["config"]) == {"dropout.hidden1=0.0", "dropout.hidden1=0.5"}
        assert runs["final_val_acc"].between(0, 1).all()
        assert runs["final_train_eval_acc"].isna().all()  # eval_train = false
        history = store.history()
        assert len(history) == 4 * 2 and set(history["epoch"]) == {1, 2}


@pytest.mark.parametrize("stack", ["off", "auto"])
def test_a_failing_run_is_stored_alone_and_tried_again(tiny_study, tmp_path, monkeypatch, stack):
    import dropoutlab.study.runner as runner

    study = load_study(tiny_study)
    real = runner.train_runs
    poisoned = {expand_runs(study)[0].id}  # this run raises, whatever stack it is in
    batches = []

    def flaky(runs, *args, **kwargs):
        batches.append(len(runs))
        if poisoned & {run.id for run in runs}:
            raise RuntimeError("simulated out-of-memory")
        return real(runs, *args, **kwargs)

    monkeypatch.setattr(runner, "train_runs", flaky)
    with Store(tmp_path / "s.db") as store:  # one worker: the patch lives in this process
        outcome = run_study(study, store, device="cpu", progress=False, stack=stack, workers=1)
        assert outcome.statuses == {"failed": 1, "completed": 3}  # its stack's other runs are not lost
        if stack == "auto":
            assert max(batches) > 1 and batches.count(1) >= 2  # the stack, then its runs one by one
        failed = [r for r in store.records() if r["status"] == "failed"]
        assert [r["id"] for r in failed] == list(poisoned)
        first_line, _, rest = failed[0]["error"].partition("\n\n")
        assert first_line == "RuntimeError: simulated out-of-memory"
        assert rest.startswith("Traceback (most recent call last)") and "in flaky" in rest
        poisoned.clear()
        again = run_study(study, store, device="cpu", progress=False, stack=stack, workers=1)
        assert again.skipped == 3 and again.statuses == {"completed": 1}
        assert sorted(r["status"] for r in store.records()) == ["completed"] * 4


def test_not_a_store_and_missing_store_give_one_line(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DropoutlabError, match="not a dropoutlab store"):
        Store(junk)
    assert junk.read_bytes() == b"this is not sqlite" * 100  # nothing of the user's is lost
    with pytest.raises(DropoutlabError, match="no store here"):
        Store(tmp_path / "missing.db", create=False)


@pytest.mark.slow
@pytest.mark.parametrize("stack", ["off", "3"])
def test_resume_after_kill_runs_each_run_once(write_study, tmp_path, stack):
    path = write_study(
        """
        name = "killme"
        dataset = "digits"
        model = "mlp"
        epochs = 3
        batch_size = 32
        seeds = 6
        [grid]
        "dropout.hidden1" = [0.0, 0.2, 0.5]
        """
    )
    store = tmp_path / "k.db"
    cmd = [sys.executable, "-m", "dropoutlab.cli", "run", str(path), "--store", str(store), "--device", "cpu",
           "--stack", stack]  # fmt: skip
    # its own session: the study and the worker processes it forks form one process group
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while len(stored_ids(store)) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert group_ends(proc.pid), "worker processes outlived the killed study"
    before = stored_ids(store)
    assert 3 <= len(before) < 18, "the kill should land mid-study"
    with sqlite3.connect(store) as conn:
        stamps = {r[0]: r[1:] for r in conn.execute("SELECT id, rowid, wall_s FROM runs")}
        # every stored run has all its epochs: a run is written whole or not at all
        assert conn.execute("SELECT COUNT(*) FROM epochs").fetchone()[0] == 3 * len(before)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{len(before)} already stored" in done.stdout
    after = stored_ids(store)
    assert len(after) == len(set(after)) == 18
    with sqlite3.connect(store) as conn:
        for rid, stamp in stamps.items():  # runs finished before the kill were not trained again
            assert conn.execute("SELECT rowid, wall_s FROM runs WHERE id = ?", (rid,)).fetchone() == stamp
    exported = json.loads(subprocess.run([*cmd[:3], "export", "--store", str(store)], capture_output=True,
                                         text=True, check=True).stdout)  # fmt: skip
    assert len(exported["runs"]) == 18


def test_the_network_file_system_under_a_store_is_found(tmp_path):
    from dropoutlab.store import network_file_system

    mounts = (
        "overlay / overlay rw 0 0\n"
        f"server:/export {tmp_path} nfs4 rw,vers=4.2 0 0\n"
        f"tmpfs {tmp_path / 'local'} tmpfs rw 0 0\n"
        "//host/my\\040share /mnt/my\\040share cifs rw 0 0\n"
    )
    assert network_file_system(tmp_path / "s.db", mounts) == "nfs4"
    assert network_file_system(tmp_path / "local" / "s.db", mounts) is None  # the nearest mount decides
    assert network_file_system(Path("/mnt/my share/s.db"), mounts) == "cifs"
    assert network_file_system(Path("/home/s.db"), mounts) is None
    assert network_file_system(tmp_path / "s.db") in (None, *NETWORK_FILE_SYSTEMS)  # this machine's own


def test_an_sqlite_store_on_a_network_file_system_points_to_postgresql(tmp_path, monkeypatch, caplog):
    import dropoutlab.store.connection

    monkeypatch.setattr(dropoutlab.store.connection, "network_file_system", lambda path: "nfs4")
    with caplog.at_level("WARNING"), Store(tmp_path / "s.db"):
        pass
    assert "is on a network file system (nfs4)" in caplog.text and "--store postgresql://" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"), Store(tmp_path / "s.db", readonly=True):
        pass
    assert not caplog.text  # reading is safe anywhere
