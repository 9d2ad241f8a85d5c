"""Export the store's runs for other tools: JSON (nested) and CSV (one row per run and epoch)."""

from __future__ import annotations

import io
import json
from typing import Any

import pandas as pd

from dropoutlab.report.text import clean
from dropoutlab.store import EPOCH_METRICS


def export_json(records: list[dict[str, Any]]) -> str:
    """``{"runs": [...]}`` with each run's id, study, params, seed, status, history, test,
    best_epoch, stopped_epoch, kept_epoch, wall_s, spec and env. Accuracies are fractions in
    [0, 1]. ``best_epoch``: the epoch whose monitored metric (early stopping's monitor, else
    ``val_loss``) was best; ``stopped_epoch``: the last epoch trained; ``kept_epoch``: the
    epoch whose weights were tested (the best one with ``restore_best``, else the last);
    see docs/study-files.md. ``mc``: the test metrics of Monte Carlo dropout, one entry per
    number of passes (``samples``; 0 is the deterministic pass), with ``runs.MC_METRICS`` and
    the reliability bins; ``learned_rates``: ``{epoch, slot, rate}`` of concrete dropout."""
    return json.dumps({"runs": clean(records)}, indent=2) + "\n"


def export_csv(records: list[dict[str, Any]]) -> str:
    """One row per run and epoch: run columns, one column per grid parameter, epoch metrics."""
    params: dict[str, None] = {}
    for r in records:
        params.update(dict.fromkeys(r["params"]))
    rows = []
    for r in records:
        base = {"id": r["id"], "study": r["study"], "seed": r["seed"], "status": r["status"]}
        base.update({k: r["params"].get(k) for k in params})
        base.update({"test_loss": r["test"]["loss"], "test_acc": r["test"]["acc"], "best_epoch": r["best_epoch"],
                     "stopped_epoch": r["stopped_epoch"], "kept_epoch": r["kept_epoch"], "wall_s": r["wall_s"]})  # fmt: skip
        for h in r["history"] or [{"epoch": None}]:
            rows.append({**base, "epoch": h["epoch"], **{m: h.get(m) for m in EPOCH_METRICS}})
    columns = ["id", "study", "seed", "status", *params, "test_loss", "test_acc", "best_epoch",
               "stopped_epoch", "kept_epoch", "wall_s", "epoch", *EPOCH_METRICS]  # fmt: skip
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("seed", "best_epoch", "stopped_epoch", "kept_epoch", "epoch"):
        frame[column] = frame[column].astype("Int64")  # whole numbers, blank when missing
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue()
