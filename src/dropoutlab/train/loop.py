"""The training loop: the one lifecycle of every run, whichever engine trains it.

An engine trains and evaluates K >= 1 members side by side (:class:`SingleEngine`: one run's
own model, ``--stack off``; :class:`StackedEngine`: a stack of runs as one network;
:class:`~dropoutlab.train.functional.FunctionalEngine`: a stack of a factory's models through
``torch.func``). The loop below asks it, epoch by epoch, for each member's numbers, and applies the same code
to every member: record the epoch, stop a member whose training loss is not finite
(``diverged``), early stopping, restore-best, the final test of the kept weights and, when
the run asks for ``mc_samples``, Monte Carlo dropout on the test split.
"""

from __future__ import annotations

import io
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from functools import partial
from typing import Any, Protocol

import torch
from torch import nn

from dropoutlab.data.prepare import PreparedData, Split
from dropoutlab.models import build_network
from dropoutlab.runs import EpochRecord, RunResult, RunSettings, RunSpec
from dropoutlab.train.checkpoints import Checkpoint
from dropoutlab.train.early_stopping import EarlyStopping
from dropoutlab.train.functional import FunctionalEngine
from dropoutlab.train.single import SingleEngine
from dropoutlab.train.stacked import StackedEngine
from dropoutlab.train.uncertainty import mc_sweep
from dropoutlab.version import __version__

Weights = dict[str, torch.Tensor]
log = logging.getLogger(__name__)


class Engine(Protocol):
    """What the loop needs of an engine; positions count the members still training."""

    name: str  # "single" or "stacked", stored with each run
    dtype: str  # "float32" or "bf16-autocast"

    def train_epoch(self) -> list[tuple[float, float]]:
        """One pass over the training split: each member's mean loss and accuracy (dropout on)."""

    def evaluate(self, split: Split) -> list[tuple[float | None, float | None]]:
        """Each member's mean loss and accuracy on ``split`` in eval mode."""

    def member_state(self, position: int) -> Weights:
        """A copy of a member's weights, keyed as in its own model's ``state_dict()``."""

    def keep_members(self, positions: list[int]) -> None:
        """Go on with the members at ``positions`` only."""

    def test(self, indices: list[int], states: list[Weights]) -> list[tuple[float, float]]:
        """Test loss and accuracy of the runs at ``indices`` (of the engine's runs) with ``states``."""

    def learned_rates(self) -> list[dict[str, float]]:
        """Each member's learned dropout rate per slot (``concrete`` dropout; empty otherwise)."""

    def state(self) -> dict[str, Any]:
        """Everything the engine carries to the next epoch (weights, optimizer, generators)."""

    def restore(self, state: dict[str, Any]) -> None:
        """Take up training where :meth:`state` left it (its members already kept)."""


def stacked_engine(runs: list[RunSpec], data: PreparedData, device: torch.device) -> Engine:
    """The engine of a stack: :class:`FunctionalEngine` for a factory's model (``torch.func``),
    :class:`StackedEngine` for a layer list."""
    if runs[0].settings.factory:
        return FunctionalEngine(runs, data, device)
    return StackedEngine(runs, data, device)


ENGINES: dict[str, Callable[[list[RunSpec], PreparedData, torch.device], Engine]] = {
    "single": SingleEngine,
    "stacked": stacked_engine,
}


class RunLifecycle:
    """One run's bookkeeping across epochs: its records, status, best epoch and kept weights."""

    def __init__(self, run: RunSpec) -> None:
        self.run = run
        s = run.settings
        es = s.early_stopping
        self.stopper = EarlyStopping(s.monitor, es.patience if es else None, es.min_delta if es else 0.0,
                                     keep_best=bool(es and es.restore_best))  # fmt: skip
        self.history: list[EpochRecord] = []
        self.learned_rates: list[tuple[int, str, float]] = []
        self.status = "completed"
        self.kept: Weights | None = None

    def end_epoch(self, record: EpochRecord, weights: Callable[[], Weights]) -> bool:
        """Record an epoch; True when the run stops here (diverged, or early stopping)."""
        if record.diverged:
            self.status = "diverged"
            self.history.append(record.as_diverged())
            return True
        self.history.append(record)
        self.stopper.update(record.epoch, getattr(record, self.stopper.monitor), weights)
        return self.stopper.should_stop

    def state(self) -> dict[str, Any]:
        """Everything this run carries to the next epoch, as plain data (for a checkpoint)."""
        stopper = self.stopper
        return {"history": [asdict(record) for record in self.history], "status": self.status,
                "learned_rates": [list(entry) for entry in self.learned_rates], "kept": self.kept,
                "best_value": stopper.best_value, "best_epoch": stopper.best_epoch,
                "best_state": stopper.best_state, "waited": stopper.waited}  # fmt: skip

    def restore(self, state: dict[str, Any]) -> None:
        """Take up the run where :meth:`state` left it."""
        self.history = [EpochRecord(**record) for record in state["history"]]
        self.status, self.kept = state["status"], state["kept"]
        self.learned_rates = [tuple(entry) for entry in state["learned_rates"]]
        stopper = self.stopper
        stopper.best_value, stopper.best_epoch = state["best_value"], state["best_epoch"]
        stopper.best_state, stopper.waited = state["best_state"], state["waited"]

    def finish(self, weights: Callable[[], Weights]) -> None:
        """The run leaves training: keep its best weights (restore-best) or its last ones."""
        if self.status == "completed":  # best_state is kept only with restore_best
            best = self.stopper.best_state
            self.kept = best if best is not None else weights()
        self.stopper.best_state = None

    def result(
        self, test: tuple[float, float] | None, wall_s: float, env: dict[str, Any], mc: tuple[dict, ...] = ()
    ) -> RunResult:
        """The run's :class:`RunResult`."""
        loss, acc = test if test else (None, None)
        return RunResult(
            run=self.run,
            status=self.status,
            history=tuple(self.history),
            test_loss=loss,
            test_acc=acc,
            best_epoch=self.stopper.best_epoch,
            stopped_epoch=self.history[-1].epoch if self.history else None,
            wall_s=wall_s,
            env=env,
            mc=mc,
            learned_rates=tuple(self.learned_rates),
        )


def train_runs(
    runs: list[RunSpec],
    data: PreparedData,
    device: torch.device,
    engine: str = "stacked",
    on_epoch: Callable[[int, int], None] | None = None,
    keep_weights: bool = False,
    checkpoint: Checkpoint | None = None,
) -> list[RunResult]:
    """Train ``runs`` side by side with ``engine`` (``"single"``: one run; ``"stacked"``: runs of
    one stack key) and score each kept model on the test split; one result per run, in order.

    ``on_epoch(epoch, members)`` is called after each epoch with the number of runs that
    trained in it. A run's ``wall_s`` is the engine's wall time divided by its runs. With
    ``keep_weights`` each tested run's result carries its weights (:func:`weights_to_bytes`).
    With ``checkpoint``, the batch saves its state every ``checkpoint.every`` epochs and at the
    end of the first epoch after every ``checkpoint.minutes`` of its wall time and, when a
    checkpoint of these runs exists, resumes from it (:mod:`dropoutlab.train.checkpoints`).
    """
    start = time.perf_counter()
    trainer = ENGINES[engine](runs, data, device)
    lives = [RunLifecycle(run) for run in runs]
    live = list(range(len(runs)))  # the run of each position still training
    s = runs[0].settings
    first = 1
    path = checkpoint.path(runs, trainer.name) if checkpoint else None
    saved = Checkpoint.load(path) if path else None
    if saved is not None:
        try:
            live, first = saved["live"], saved["epoch"] + 1
            start -= saved["elapsed_s"]  # wall_s counts the epochs before the interruption too
            if len(live) < len(runs):  # positions are the runs' indices until members leave
                trainer.keep_members(live)
            trainer.restore(saved["engine"])
            for life, state in zip(lives, saved["lives"], strict=True):
                life.restore(state)
            log.info("%d runs resume from their checkpoint after epoch %d", len(runs), first - 1)
        except Exception as exc:  # a state that does not fit these runs: start afresh rather than fail
            log.warning("checkpoint %s does not fit these runs (%s); training them from epoch 1", path, exc)
            trainer, lives = ENGINES[engine](runs, data, device), [RunLifecycle(run) for run in runs]
            live, first, start = list(range(len(runs))), 1, time.perf_counter()
    saved_at, save_s = time.perf_counter(), 0.0  # the last save's end (or the start here) and its length
    for epoch in range(first, s.epochs + 1):
        trained = len(live)
        train = trainer.train_epoch()
        val = trainer.evaluate(data.val)
        train_eval = trainer.evaluate(data.train_eval) if s.eval_train else [(None, None)] * len(live)
        learned = trainer.learned_rates()
        leaving = []
        for pos, i in enumerate(live):
            lives[i].learned_rates += [(epoch, slot, rate) for slot, rate in learned[pos].items()]
            record = EpochRecord(epoch, *train[pos], *val[pos], *train_eval[pos])
            if lives[i].end_epoch(record, partial(trainer.member_state, pos)) or epoch == s.epochs:
                leaving.append(pos)
        for pos in leaving:
            lives[live[pos]].finish(partial(trainer.member_state, pos))
        staying = [pos for pos in range(len(live)) if pos not in leaving]
        live = [live[pos] for pos in staying]
        if live and leaving:
            trainer.keep_members(staying)
        if path and live and checkpoint.due(epoch, s.epochs, time.perf_counter() - saved_at, save_s):
            began = time.perf_counter()
            checkpoint.save(path, {"epoch": epoch, "live": live, "engine": trainer.state(),
                                   "lives": [life.state() for life in lives],
                                   "elapsed_s": time.perf_counter() - start}, runs, trainer.name)  # fmt: skip
            saved_at = time.perf_counter()
            save_s = saved_at - began
        if on_epoch:
            on_epoch(epoch, trained)
        if not live:
            break

    done = [i for i, life in enumerate(lives) if life.status == "completed"]
    tests = dict(zip(done, trainer.test(done, [lives[i].kept for i in done]), strict=True)) if done else {}
    mc = {i: mc_test(runs[i], lives[i].kept, data, device) for i in done} if s.mc_samples else {}
    wall = time.perf_counter() - start
    env = environment(device, trainer.dtype)
    results = []
    for i, life in enumerate(lives):
        how = {"engine": trainer.name}
        if trainer.name == "stacked":
            how["stack"] = {"size": len(runs), "position": i, "wall_s": wall}
        result = life.result(tests.get(i), wall / len(runs), {**env, **how}, mc.get(i, ()))
        if keep_weights and i in tests:
            result = replace(result, weights=weights_to_bytes(life.kept))
        results.append(result)
    if path:
        Checkpoint.remove(path)
    return results


def weights_to_bytes(state: Weights) -> bytes:
    """``state`` (a model's ``state_dict()``) as the bytes of ``torch.save``, tensors on the CPU."""
    buffer = io.BytesIO()
    torch.save({name: tensor.detach().cpu() for name, tensor in state.items()}, buffer)
    return buffer.getvalue()


def weights_from_bytes(blob: bytes, device: torch.device) -> Weights:
    """The ``state_dict()`` :func:`weights_to_bytes` wrote, on ``device`` (tensors only are read)."""
    return torch.load(io.BytesIO(blob), map_location=device, weights_only=True)


def restored_model(
    settings: RunSettings, kept: Weights, data: PreparedData, device: torch.device
) -> nn.Module:
    """A run's own model (``settings``), rebuilt on ``device`` and loaded with ``kept`` weights,
    leaving the global random state as it was."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model = build_network(settings, data.input_shape, data.num_classes).to(device)
    model.load_state_dict(kept)
    return model


def mc_test(run: RunSpec, kept: Weights, data: PreparedData, device: torch.device) -> tuple[dict, ...]:
    """Monte Carlo dropout on the test split for a run's kept weights: the deterministic pass
    (``samples = 0``), then one entry per value of ``mc_samples``.

    Whatever the engine, the run's own model is rebuilt and loaded with the kept weights
    (:func:`restored_model`), and :func:`~dropoutlab.train.uncertainty.mc_sweep` draws its
    passes with masks seeded by the run's seed, so both engines give a run the same entries.
    """
    model = restored_model(run.settings, kept, data, device)
    samples = (0, *run.settings.mc_samples)  # 0: the deterministic pass, the reference
    return tuple(mc_sweep(model, data.test.x, data.test.y, samples, seed=run.seed))


def train_run(run: RunSpec, data: PreparedData, device: torch.device, engine: str = "single") -> RunResult:
    """Train one run (by default with the single engine, the reference) and test its kept model."""
    return train_runs([run], data, device, engine)[0]


def environment(device: torch.device, dtype: str = "float32") -> dict[str, Any]:
    """How and where runs were trained, stored with every run: versions, device, dtype, threads."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {
        "dropoutlab": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": f"{device.type}: {name}",
        "dtype": dtype,
        "threads": torch.get_num_threads(),
        "pid": os.getpid(),
    }
