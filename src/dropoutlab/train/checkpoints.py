"""Checkpoints: a long batch of runs saves its state every few minutes (or epochs) and, tried again, resumes.

A checkpoint holds everything the loop and its engine carry from one epoch to the next: the
weights and optimizer state, every random generator (batch order, dropout masks,
augmentation), each run's history, early-stopping state and kept weights, and which runs are
still training. Resumed from it, a batch ends with the same history as one never
interrupted (on the CPU; a test checks both engines). One file per batch of runs (a stack,
or a run), named by its runs and engine, so only the same batch resumes from it: the same
Ray task tried again, or the same stack after a restart. Files are written whole
(``os.replace``) and read with ``torch.load(weights_only=True)``.

By default a batch saves at the end of the first epoch after :data:`DEFAULT_MINUTES` of its
wall time since its start or its last save, so that a kill (Ctrl-C, ``kill -9``, a node lost)
loses minutes of training rather than whole stacks. Beside each file, a small JSON manifest
names the batch's runs and engine (:func:`saved_batches`), so that a restarted study can
train that same batch again even when it would now plan its stacks differently.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dropoutlab.runs import RunSpec

log = logging.getLogger(__name__)

#: The layout of a checkpoint's state; part of its file name, so another layout is not read.
FORMAT = 2

#: Minutes of a batch's wall time between two saves, by default (``--checkpoint-minutes``): a kill
#: loses at most this much training, plus the epoch under way. A save of the CIFAR-10 CNN's stack
#: costs about a second (``benchmarks/bench_checkpoints.py``), well under 1% of 5 minutes.
DEFAULT_MINUTES = 5.0

#: The most of a batch's wall time its time checkpoints may take: where one save takes longer than
#: this share of ``minutes`` (a large stack on a slow disk), the interval grows to keep it so.
MAX_SHARE = 0.02


def checkpoint_folder(root: Path, study: str) -> Path:
    """The folder of ``study``'s checkpoints under ``root`` (the store's): its name, made safe
    for a file system, and a hash that keeps two names apart."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", study).strip(".-")[:40] or "study"
    return root / f"{safe}-{hashlib.sha256(study.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class Checkpoint:
    """Where one batch of runs keeps its checkpoint, and how often: every ``every`` epochs
    (0: not by epochs), and at the end of the first epoch after ``minutes`` of the batch's wall
    time since its start or its last save (0: not by time)."""

    folder: Path
    every: int = 0
    minutes: float = 0.0

    def path(self, runs: list[RunSpec], engine: str) -> Path:
        """The file of the batch ``runs`` (in this order: a checkpoint's state is by position)
        trained by ``engine``, with this code's :data:`FORMAT`."""
        return self.folder / f"{_key(engine, [run.id for run in runs])}.pt"

    def due(self, epoch: int, last: int, since_s: float = 0.0, save_s: float = 0.0) -> bool:
        """Whether to save after ``epoch``, ``since_s`` seconds after the batch's start or last
        save, which took ``save_s`` seconds (never after the ``last`` epoch: the batch then ends).
        By time, the interval is ``minutes``, or longer where saves would take more than
        :data:`MAX_SHARE` of it."""
        if epoch >= last:
            return False
        by_epochs = self.every > 0 and epoch % self.every == 0
        return by_epochs or (self.minutes > 0 and since_s >= max(60 * self.minutes, save_s / MAX_SHARE))

    def save(
        self, path: Path, state: dict[str, Any], runs: list[RunSpec] | None = None, engine: str = ""
    ) -> None:
        """Write ``state`` to ``path`` whole: a kill mid-write leaves the previous checkpoint.
        With ``runs``, the manifest beside it names them and ``engine`` (:func:`saved_batches`).
        A folder that cannot be written (a full disk, a Ray node without the driver's file system)
        costs the checkpoint, not the training: one warning, and the batch goes on."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            if runs is not None and not path.with_suffix(".json").exists():
                manifest = {"format": FORMAT, "engine": engine, "runs": [run.id for run in runs]}
                _write_whole(path.with_suffix(".json"), lambda to: to.write_text(json.dumps(manifest)))
            _write_whole(path, lambda to: torch.save(state, to))
        except OSError as exc:
            log.warning("checkpoint %s cannot be written (%s); training goes on without it", path, exc)

    @staticmethod
    def load(path: Path) -> dict[str, Any] | None:
        """The state saved at ``path`` (tensors on the CPU, as generator states must be), or None
        when there is none (or it cannot be read)."""
        if not path.exists():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a damaged file: start the batch afresh rather than fail it
            log.warning("checkpoint %s cannot be read (%s); training its runs from epoch 1", path, exc)
            return None

    @staticmethod
    def remove(path: Path) -> None:
        """Drop the checkpoint of a batch that finished (and its manifest)."""
        for file in (path, path.with_suffix(".json")):
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # none was written
                file.unlink()

    def saved_batches(self) -> list[tuple[str, list[str]]]:
        """``(engine, run ids)`` of every batch with a checkpoint in :attr:`folder` that this
        code can resume (its manifest and its file, of this :data:`FORMAT`), oldest first."""
        if not self.folder.is_dir():
            return []
        batches = []
        for manifest in sorted(self.folder.glob("*.json"), key=_modified):
            try:
                entry = json.loads(manifest.read_text())
                engine, ids = entry["engine"], entry["runs"]
                ok = entry["format"] == FORMAT and isinstance(engine, str) and isinstance(ids, list)
                ok = ok and all(isinstance(i, str) for i in ids) and bool(ids)
            except (OSError, ValueError, TypeError, KeyError):  # damaged or foreign: not ours to resume
                continue
            if ok and manifest.stem == _key(engine, ids) and manifest.with_suffix(".pt").exists():
                batches.append((engine, ids))
        return batches


def _key(engine: str, run_ids: list[str]) -> str:
    return hashlib.sha256(f"{FORMAT}/{engine}/{'/'.join(run_ids)}".encode()).hexdigest()[:20]


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _write_whole(path: Path, write: Any) -> None:
    partial = path.with_suffix(f".{os.getpid()}.partial")
    write(partial)
    os.replace(partial, path)
