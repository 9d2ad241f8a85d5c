"""The SQLite store: the single source of truth, written one transaction per finished run."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from dropoutlab.errors import DropoutlabError
from dropoutlab.runs import EPOCH_METRICS, FINISHED, RunResult, StudySpec, kept_epoch

DEFAULT_STORE = "dropoutlab.db"
SCHEMA_VERSION = "1"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    study TEXT NOT NULL,
    params TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,
    test_loss REAL,
    test_acc REAL,
    best_epoch INTEGER,
    stopped_epoch INTEGER,
    wall_s REAL,
    spec TEXT NOT NULL,
    env TEXT NOT NULL,
    error TEXT,
    finished_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    {", ".join(f"{m} REAL" for m in EPOCH_METRICS)},
    PRIMARY KEY (run_id, epoch)
);
CREATE INDEX IF NOT EXISTS runs_by_study ON runs(study);
CREATE TABLE IF NOT EXISTS studies (name TEXT PRIMARY KEY, definition TEXT NOT NULL);
"""


class Store:
    """A study store in one SQLite file.

    Every finished run is written in one transaction (the run and all its epochs), so a
    study killed at any moment leaves only whole runs behind and resumes where it stopped.
    The report reads only the store, so a store made on another machine can be reported.
    """

    def __init__(self, path: str | Path = DEFAULT_STORE, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.exists():
            raise DropoutlabError(
                f"{self.path}: no store here; run a study first (`dropoutlab run STUDY.toml`)"
            )
        if self.path.is_dir():
            raise DropoutlabError(f"{self.path}: is a folder; the store is one file, e.g. {DEFAULT_STORE}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path)
            self.conn.execute("PRAGMA foreign_keys = ON")
            self.conn.executescript(_SCHEMA)
            version = self.conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if version is None:
                with self.conn:
                    self.conn.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            elif version[0] != SCHEMA_VERSION:
                raise DropoutlabError(
                    f"{self.path}: store schema {version[0]}, this dropoutlab reads {SCHEMA_VERSION}"
                )
        except sqlite3.DatabaseError as exc:
            raise DropoutlabError(f"{self.path}: not a dropoutlab store ({exc})") from None

    def close(self) -> None:
        """Close the database connection."""
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------
    def write_run(self, result: RunResult) -> None:
        """Store one finished run and its epochs, all or nothing."""
        run = result.run
        row = (
            run.id, run.study, json.dumps(run.params), run.seed, result.status,
            result.test_loss, result.test_acc, result.best_epoch, result.stopped_epoch,
            result.wall_s, json.dumps(run.spec_dict()), json.dumps(result.env), result.error,
            datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )  # fmt: skip
        epochs = [(run.id, h.epoch, *(getattr(h, m) for m in EPOCH_METRICS)) for h in result.history]
        with self.conn:
            self.conn.execute("DELETE FROM runs WHERE id = ?", (run.id,))
            self.conn.execute(f"INSERT INTO runs VALUES ({', '.join('?' * len(row))})", row)
            placeholders = ", ".join("?" * (2 + len(EPOCH_METRICS)))
            self.conn.executemany(f"INSERT INTO epochs VALUES ({placeholders})", epochs)

    def write_study(self, study: StudySpec) -> None:
        """Keep the study's definition (grid, seeds, report settings) beside its runs."""
        definition = {"description": study.description, "settings": study.settings, "grid": list(study.grid),
                      "seeds": list(study.seeds), "min_effect": study.min_effect}  # fmt: skip
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO studies VALUES (?, ?)", (study.name, json.dumps(definition))
            )

    # -- reading ---------------------------------------------------------------------------
    def study_definition(self, study: str) -> dict[str, Any] | None:
        """The definition :meth:`write_study` kept for ``study``, or None (stores made before it)."""
        row = self.conn.execute("SELECT definition FROM studies WHERE name = ?", (study,)).fetchone()
        return json.loads(row[0]) if row else None

    def finished_ids(self, study: str) -> set[str]:
        """Ids of the runs of ``study`` that need not run again (completed or diverged)."""
        rows = self.conn.execute(
            f"SELECT id FROM runs WHERE study = ? AND status IN ({', '.join('?' * len(FINISHED))})",
            (study, *FINISHED),
        )
        return {r[0] for r in rows}

    def studies(self) -> list[str]:
        """Names of the studies in the store, in the order they were first written."""
        rows = self.conn.execute("SELECT study FROM runs GROUP BY study ORDER BY MIN(rowid)")
        return [r[0] for r in rows]

    def resolve_study(self, study: str | None) -> str:
        """``study`` if stored, or the only study; otherwise a DropoutlabError listing them."""
        names = self.studies()
        if not names:
            raise DropoutlabError(f"{self.path}: the store has no runs yet")
        if study is None:
            if len(names) > 1:
                raise DropoutlabError(
                    f"{self.path} holds several studies; choose one with --study: {', '.join(names)}"
                )
            return names[0]
        if study not in names:
            raise DropoutlabError(f"study {study!r} is not in {self.path}; it holds: {', '.join(names)}")
        return study

    def records(self, study: str | None = None) -> list[dict[str, Any]]:
        """Runs in the export layout (see README): one dict per run, history included."""
        where, args = ("WHERE study = ?", (study,)) if study else ("", ())
        cur = self.conn.execute(f"SELECT * FROM runs {where} ORDER BY rowid", args)
        names = [d[0] for d in cur.description]
        runs = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        histories: dict[str, list[dict[str, Any]]] = {r["id"]: [] for r in runs}
        cur = self.conn.execute(
            f"SELECT e.* FROM epochs e JOIN runs r ON r.id = e.run_id {where.replace('study', 'r.study')} "
            "ORDER BY e.run_id, e.epoch",
            args,
        )
        for row in cur.fetchall():
            histories[row[0]].append({"epoch": row[1], **dict(zip(EPOCH_METRICS, row[2:], strict=True))})
        return [
            {
                "id": r["id"],
                "study": r["study"],
                "params": json.loads(r["params"]),
                "seed": r["seed"],
                "status": r["status"],
                "history": histories[r["id"]],
                "test": {"loss": r["test_loss"], "acc": r["test_acc"]},
                "best_epoch": r["best_epoch"],
                "stopped_epoch": r["stopped_epoch"],
                "kept_epoch": _kept_epoch(r["best_epoch"], r["stopped_epoch"], json.loads(r["spec"])),
                "wall_s": r["wall_s"],
                "spec": json.loads(r["spec"]),
                "env": json.loads(r["env"]),
                "error": r["error"],
                "finished_at": r["finished_at"],
            }
            for r in runs
        ]

    def runs(self, study: str | None = None) -> pd.DataFrame:
        """One row per run (see DEVELOPERS.md, "Store DataFrames"); ``attrs["params"]`` lists the grid keys."""
        return runs_frame(self.records(study))

    def history(self, study: str | None = None) -> pd.DataFrame:
        """One row per run and epoch, with the run's configuration columns."""
        return history_frame(self.records(study))


def config_label(params: dict[str, Any]) -> str:
    """A readable label for a configuration: ``"dropout.conv=0.05, optimizer.lr=0.01"``."""
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "default"


def _param_keys(records: list[dict[str, Any]]) -> list[str]:
    keys: dict[str, None] = {}
    for r in records:
        keys.update(dict.fromkeys(r["params"]))
    return list(keys)


def _kept_epoch(best: int | None, stopped: int | None, spec: dict[str, Any]) -> int | None:
    es = spec.get("early_stopping")
    return kept_epoch(bool(es and es.get("restore_best")), best, stopped)


def runs_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The runs DataFrame built from export records."""
    params = _param_keys(records)
    rows = []
    for r in records:
        kept = _kept_epoch(r["best_epoch"], r["stopped_epoch"], r["spec"])
        final = next((h for h in r["history"] if h["epoch"] == kept), {})
        row = {
            "id": r["id"], "study": r["study"], "config": config_label(r["params"]), "seed": r["seed"],
            "status": r["status"], "test_loss": r["test"]["loss"], "test_acc": r["test"]["acc"],
            "best_epoch": r["best_epoch"], "stopped_epoch": r["stopped_epoch"], "kept_epoch": kept,
            "wall_s": r["wall_s"],
        }  # fmt: skip
        row.update({f"final_{m}": final.get(m) for m in EPOCH_METRICS})
        row.update({f"dropout.{slot}": rate for slot, rate in r["spec"]["dropout"].items()})
        row.update({k: r["params"].get(k) for k in params})
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in ("test_loss", "test_acc", *(f"final_{m}" for m in EPOCH_METRICS)):
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    frame.attrs["params"] = params
    return frame


def history_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The history DataFrame (one row per run and epoch) built from export records."""
    params = _param_keys(records)
    rows = []
    for r in records:
        base = {"run_id": r["id"], "study": r["study"], "config": config_label(r["params"]), "seed": r["seed"],
                "status": r["status"]}  # fmt: skip
        base.update({k: r["params"].get(k) for k in params})
        rows.extend({**base, **h} for h in r["history"])
    frame = pd.DataFrame(
        rows,
        columns=None if rows else ["run_id", "study", "config", "seed", "status", "epoch", *EPOCH_METRICS],
    )
    for column in EPOCH_METRICS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    frame.attrs["params"] = params
    return frame
