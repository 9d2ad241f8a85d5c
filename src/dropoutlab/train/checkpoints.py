"""Checkpoints: a long batch of runs saves its state every few epochs and, tried again, resumes.

A checkpoint holds everything the loop and its engine carry from one epoch to the next: the
weights and optimizer state, every random generator (batch order, dropout masks,
augmentation), each run's history, early-stopping state and kept weights, and which runs are
still training. Resumed from it, a batch ends with the same history as one never
interrupted (on the CPU; a test checks both engines). One file per batch of runs (a stack,
or a run), named by its runs and engine, so only the same batch resumes from it: the same
Ray task tried again, or the same stack after a restart. Files are written whole
(``os.replace``) and read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
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


def checkpoint_folder(root: Path, study: str) -> Path:
    """The folder of ``study``'s checkpoints under ``root`` (the store's): its name, made safe
    for a file system, and a hash that keeps two names apart."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", study).strip(".-")[:40] or "study"
    return root / f"{safe}-{hashlib.sha256(study.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class Checkpoint:
    """Where one batch of runs keeps its checkpoint, and how often (``every`` epochs)."""

    folder: Path
    every: int

    def path(self, runs: list[RunSpec], engine: str) -> Path:
        """The file of the batch ``runs`` (in this order: a checkpoint's state is by position)
        trained by ``engine``, with this code's :data:`FORMAT`."""
        batch = "/".join(run.id for run in runs)
        key = hashlib.sha256(f"{FORMAT}/{engine}/{batch}".encode()).hexdigest()[:20]
        return self.folder / f"{key}.pt"

    def due(self, epoch: int, last: int) -> bool:
        """Whether to save after ``epoch`` (never after the ``last``: the batch then ends)."""
        return self.every > 0 and epoch % self.every == 0 and epoch < last

    def save(self, path: Path, state: dict[str, Any]) -> None:
        """Write ``state`` to ``path`` whole: a kill mid-write leaves the previous checkpoint."""
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        torch.save(state, partial)
        os.replace(partial, path)

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
        """Drop the checkpoint of a batch that finished."""
        path.unlink(missing_ok=True)
