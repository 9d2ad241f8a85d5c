"""Checkpoints: a batch interrupted after a saved epoch resumes and ends as if never interrupted."""

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_run, prepared

from dropoutlab.errors import DropoutlabError
from dropoutlab.store import Store
from dropoutlab.study import expand_runs, load_study, run_study
from dropoutlab.train import train_runs
from dropoutlab.train.checkpoints import Checkpoint, checkpoint_folder

CPU = torch.device("cpu")


class Interrupted(Exception):
    pass


def interrupt_after(epoch_to_stop):
    def on_epoch(epoch, members):
        if epoch == epoch_to_stop:
            raise Interrupted

    return on_epoch


def runs_for(engine):
    common = {
        "epochs": 5,
        "dropout": {"input": 0.2, "hidden1": 0.5},
        "optimizer": {"name": "adam", "lr": 0.003},
    }
    if engine == "single":
        return [make_run(0, early_stopping={"patience": 2}, augment=[], **common)]
    # three members: one stops early (patience 1) before the interruption, so the stack shrinks
    return [make_run(seed, early_stopping={"patience": patience}, **common)
            for seed, patience in ((0, 1), (1, 5), (2, 5))]  # fmt: skip


@pytest.mark.parametrize("engine", ["single", "stacked"])
def test_a_resumed_batch_ends_as_one_never_interrupted(digits, tmp_path, engine):
    runs = runs_for(engine)
    data = prepared(digits, runs[0])
    reference = train_runs(runs, data, CPU, engine)
    checkpoint = Checkpoint(tmp_path / "ckpt", every=1)
    with pytest.raises(Interrupted):
        train_runs(runs, data, CPU, engine, on_epoch=interrupt_after(3), checkpoint=checkpoint)
    path = checkpoint.path(runs, engine)
    saved = torch.load(path, weights_only=True)
    assert path.exists() and saved["epoch"] == 3
    resumed = train_runs(runs, data, CPU, engine, checkpoint=checkpoint)
    assert all(r.wall_s >= saved["elapsed_s"] / len(runs) for r in resumed)  # the first 3 epochs count
    assert not path.exists()  # removed once the batch ended
    for got, want in zip(resumed, reference, strict=True):
        assert [dataclasses.asdict(r) for r in got.history] == [dataclasses.asdict(r) for r in want.history]
        assert (got.test_acc, got.test_loss, got.best_epoch, got.stopped_epoch) == (
            want.test_acc, want.test_loss, want.best_epoch, want.stopped_epoch)  # fmt: skip


def test_a_damaged_checkpoint_starts_the_batch_afresh(digits, tmp_path):
    runs = runs_for("single")
    data = prepared(digits, runs[0])
    checkpoint = Checkpoint(tmp_path, every=1)
    checkpoint.path(runs, "single").write_bytes(b"not a checkpoint")
    result = train_runs(runs, data, CPU, "single", checkpoint=checkpoint)[0]
    assert result.status == "completed" and result.history[0].epoch == 1


@pytest.mark.slow
def test_a_killed_study_resumes_its_stack_from_the_checkpoint(write_study, tmp_path):
    path = write_study(
        """
        name = "long"
        dataset = "digits"
        model = "mlp"
        epochs = 4
        seeds = 3
        [dropout]
        hidden1 = 0.5
        """
    )
    cmd = [sys.executable, "-m", "dropoutlab.cli", "run", str(path), "--device", "cpu", "--workers", "1",
           "--stack", "3", "--no-progress"]  # fmt: skip
    whole = subprocess.run([*cmd, "--store", str(tmp_path / "whole.db")], capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    store = tmp_path / "killed.db"
    run_id = sqlite3.connect(tmp_path / "whole.db").execute("SELECT id FROM runs").fetchone()[0]
    env = {**os.environ, "DROPOUTLAB_FAULT": f"kill:{run_id}:2:{tmp_path / 'fired'}"}
    killed = subprocess.run(
        [*cmd, "--store", str(store), "--checkpoint-every", "1"], env=env, capture_output=True
    )
    assert killed.returncode == -signal.SIGKILL and (tmp_path / "fired").exists()
    folder = tmp_path / "killed.db.checkpoints"
    assert len(list(folder.rglob("*.pt"))) == 1  # epoch 2 of the stack, saved before the kill
    again = subprocess.run(
        [*cmd, "--store", str(store), "--checkpoint-every", "1"], capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
    assert not folder.exists()  # the study is complete: its checkpoints are gone
    query = "SELECT run_id, epoch, train_loss, val_loss FROM epochs ORDER BY run_id, epoch"
    assert (
        sqlite3.connect(store).execute(query).fetchall()
        == sqlite3.connect(tmp_path / "whole.db").execute(query).fetchall()
    )  # the same numbers, to the last bit


def test_a_checkpoint_that_does_not_fit_starts_the_batch_afresh(digits, tmp_path):
    runs = runs_for("single")
    data = prepared(digits, runs[0])
    checkpoint = Checkpoint(tmp_path, every=1)
    torch.save(
        {"epoch": 2, "live": [0], "engine": {"model": {}}, "lives": []}, checkpoint.path(runs, "single")
    )
    result = train_runs(runs, data, CPU, "single", checkpoint=checkpoint)[0]
    reference = train_runs(runs, data, CPU, "single")[0]
    assert [r.epoch for r in result.history] == [r.epoch for r in reference.history]
    assert result.test_acc == reference.test_acc


def test_a_studys_leftover_checkpoints_go_once_every_run_is_stored(tiny_study, tmp_path, monkeypatch):
    import dropoutlab.study.runner as runner

    study = load_study(tiny_study)
    runs = expand_runs(study)
    with Store(tmp_path / "s.db") as store:
        folder = checkpoint_folder(store.checkpoint_folder(), study.name)
        folder.mkdir(parents=True)
        (folder / "0123456789abcdef0123.pt").write_bytes(b"a stack that never came back")
        real = runner.train_runs

        def flaky(batch, *args, **kwargs):
            if runs[0].id in {run.id for run in batch}:
                raise RuntimeError("simulated failure")
            return real(batch, *args, **kwargs)

        monkeypatch.setattr(runner, "train_runs", flaky)
        outcome = run_study(study, store, device="cpu", progress=False, workers=1)
        assert outcome.statuses == {"failed": 1, "completed": 3}
        assert folder.exists()  # a run is still to train: a stack of it may yet resume
        monkeypatch.setattr(runner, "train_runs", real)
        run_study(study, store, device="cpu", progress=False, workers=1)
        assert not folder.exists() and not folder.parent.exists()


def test_a_checkpoint_by_minutes_is_due_at_the_first_epoch_end_after_them():
    every_two_minutes = Checkpoint(Path("unused"), minutes=2.0)
    assert not every_two_minutes.due(3, last=10, since_s=119.0)
    assert every_two_minutes.due(3, last=10, since_s=120.0)
    assert not every_two_minutes.due(10, last=10, since_s=600.0)  # the batch ends there: nothing to save
    both = Checkpoint(Path("unused"), every=4, minutes=2.0)
    assert both.due(4, last=10, since_s=0.0) and both.due(5, last=10, since_s=130.0)
    assert not Checkpoint(Path("unused")).due(4, last=10, since_s=1e9)  # 0 and 0: never
    # a save of 6 s would be 5% of 2 minutes: the interval grows to 300 s, where it is 2%
    assert not every_two_minutes.due(3, last=10, since_s=299.0, save_s=6.0)
    assert every_two_minutes.due(3, last=10, since_s=300.0, save_s=6.0)


def test_the_cli_default_minutes_are_the_libraries():
    from dropoutlab import cli
    from dropoutlab.train.checkpoints import DEFAULT_MINUTES

    assert cli.DEFAULT_MINUTES == DEFAULT_MINUTES
    assert cli.build_parser().parse_args(["run", "s.toml"]).checkpoint_minutes == DEFAULT_MINUTES


def test_a_negative_interval_is_refused_in_one_line(tiny_study, tmp_path):
    with Store(tmp_path / "s.db") as store, pytest.raises(DropoutlabError, match="--checkpoint-minutes"):
        run_study(load_study(tiny_study), store, device="cpu", progress=False, checkpoint_minutes=-1.0)


def test_a_manifest_names_each_resumable_batch_and_goes_with_it(digits, tmp_path):
    runs = runs_for("stacked")
    checkpoint = Checkpoint(tmp_path, every=1)
    with pytest.raises(Interrupted):
        train_runs(runs, prepared(digits, runs[0]), CPU, "stacked", interrupt_after(2), checkpoint=checkpoint)
    assert checkpoint.saved_batches() == [("stacked", [run.id for run in runs])]
    assert torch.load(checkpoint.path(runs, "stacked"), weights_only=True)["epoch"] == 2
    (tmp_path / "0123.json").write_text("{not json")  # a damaged manifest is passed over
    assert len(checkpoint.saved_batches()) == 1
    Checkpoint.remove(checkpoint.path(runs, "stacked"))
    assert checkpoint.saved_batches() == [] and not list(tmp_path.glob("*.pt"))


def stored(store, query):
    with sqlite3.connect(store) as conn:
        return conn.execute(query).fetchall()


@pytest.mark.slow
def test_a_study_killed_with_the_default_flags_resumes_its_stack_and_leaves_no_claims(write_study, tmp_path):
    path = write_study(
        """
        name = "killed"
        dataset = "digits"
        model = "mlp"
        epochs = 4
        seeds = 3
        [grid]
        batch_size = [32, 64]
        [dropout]
        hidden1 = 0.5
        """
    )
    # --stack auto (the default): two stacks of 3 runs, one per batch size, trained one after the other
    cmd = [sys.executable, "-m", "dropoutlab.cli", "run", str(path), "--device", "cpu", "--no-progress"]
    one = [*cmd, "--workers", "1"]
    whole = subprocess.run([*one, "--store", str(tmp_path / "whole.db")], capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    last = stored(tmp_path / "whole.db", "SELECT id FROM runs ORDER BY rowid DESC LIMIT 1")[0][0]
    store = tmp_path / "killed.db"
    # as if each epoch took minutes: the first epoch of each stack ends with a save (later ones may
    # wait for the interval that keeps saves under 2% of the time)
    quick = ["--store", str(store), "--checkpoint-minutes", "1e-9"]
    env = {**os.environ, "DROPOUTLAB_FAULT": f"kill:{last}:1:{tmp_path / 'fired'}"}
    killed = subprocess.run([*one, *quick], env=env, capture_output=True)
    assert killed.returncode == -signal.SIGKILL and (tmp_path / "fired").exists()
    assert len(stored(store, "SELECT id FROM runs")) == 3  # the first stack, stored before the kill
    assert len(stored(store, "SELECT run_id FROM claims")) == 6  # the killed driver's claims stay
    folder = tmp_path / "killed.db.checkpoints"
    assert len(list(folder.rglob("*.pt"))) == len(list(folder.rglob("*.json"))) == 1
    # Again, with 2 workers: planned afresh, its 3 runs would be cut into stacks of 2 and 1 (one per
    # worker); the checkpointed stack is trained as it was. Were epoch 1 trained again, the fault
    # would kill this process too.
    env = {**os.environ, "DROPOUTLAB_FAULT": f"kill:{last}:1:{tmp_path / 'again'}"}
    again = subprocess.run([*cmd, "--workers", "2", *quick], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert not (tmp_path / "again").exists(), "epochs before the checkpoint were trained again"
    assert not folder.exists()  # the study is complete: its checkpoints are gone
    assert stored(store, "SELECT run_id FROM claims") == []  # and so are the killed driver's claims
    query = "SELECT run_id, epoch, train_loss, train_acc, val_loss, val_acc FROM epochs ORDER BY 1, 2"
    assert stored(store, query) == stored(tmp_path / "whole.db", query)  # the same numbers, to the last bit
    query = "SELECT id, test_loss, test_acc FROM runs ORDER BY id"
    assert stored(store, query) == stored(tmp_path / "whole.db", query)


def test_a_checkpoint_that_cannot_be_written_costs_the_checkpoint_not_the_runs(digits, tmp_path, caplog):
    runs = runs_for("single")
    (tmp_path / "a-file").write_text("not a folder")
    checkpoint = Checkpoint(tmp_path / "a-file" / "ckpt", every=1)  # mkdir fails: its parent is a file
    result = train_runs(runs, prepared(digits, runs[0]), CPU, "single", checkpoint=checkpoint)[0]
    assert result.status == "completed" and len(result.history) == len(train_runs(runs, prepared(
        digits, runs[0]), CPU, "single")[0].history)  # fmt: skip
    assert "cannot be written" in caplog.text


def test_only_the_claims_of_drivers_no_longer_alive_are_forgotten(store_at):
    with Store(store_at) as store:
        live, dead = f"here:{os.getpid()}:live", "here:1:dead"
        store.claim(["r1", "r2"], dead, lease_s=60, study="s")
        store.claim(["r3"], live, lease_s=60, study="s")
        store.claim(["r4"], dead, lease_s=60, study="other")
        gone = lambda owner: owner == dead  # noqa: E731
        assert store.forget_stale_claims(60, gone, study="s") == 2
        assert store.claimed() == {"r3": live, "r4": dead}  # the live driver's, and another study's
        assert store.forget_stale_claims(0.0, study="s") == 1  # a lease of 0 s: every claim has lapsed
        assert store.claimed() == {"r4": dead}
