"""The SQLite store: the single source of truth, written one transaction per finished run."""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from dropoutlab.errors import DropoutlabError
from dropoutlab.runs import EPOCH_METRICS, FINISHED, MC_METRICS, RunResult, StudySpec, kept_epoch, spec_run_id

DEFAULT_STORE = "dropoutlab.db"
SCHEMA_VERSION = "1"

SQLITE_HEADER = b"SQLite format 3\x00"

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
CREATE TABLE IF NOT EXISTS mc (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    samples INTEGER NOT NULL,
    {", ".join(f"{m} REAL" for m in MC_METRICS)},
    reliability TEXT NOT NULL,
    PRIMARY KEY (run_id, samples)
);
CREATE TABLE IF NOT EXISTS learned_rates (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    slot TEXT NOT NULL,
    rate REAL NOT NULL,
    PRIMARY KEY (run_id, epoch, slot)
);
CREATE TABLE IF NOT EXISTS claims (
    run_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    heartbeat REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS weights (
    run_id TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    state BLOB NOT NULL
);
"""


def check_store_file(path: Path) -> None:
    """Refuse a file that is not SQLite before SQLite sees it (it would say only "file is not a database")."""
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except (FileNotFoundError, NotADirectoryError):  # nothing there yet; check_writable says more
        return
    except OSError as exc:
        raise DropoutlabError(f"{path}: cannot read the store ({exc.strerror})") from None
    if head and head != SQLITE_HEADER:
        raise DropoutlabError(
            f"{path}: not a dropoutlab store: the file is not an SQLite database; "
            "it was left unchanged; choose another --store path"
        )


def check_writable(path: Path, create_folder: bool = True) -> None:
    """Whether a store at ``path`` can be written: the file, and its folder (SQLite writes a journal
    beside the file). Tried for real (a temporary file in the folder), so it holds for root too.
    ``create_folder=False`` creates nothing and tries the nearest folder that exists."""
    folder = path.parent
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise DropoutlabError(f"{path}: cannot create the store: {existing} is a file, not a folder")
    try:
        if create_folder:
            folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder if create_folder else existing):
            pass
    except OSError as exc:
        raise DropoutlabError(
            f"{path}: the folder {folder} is not writable ({exc.strerror}); dropoutlab writes each "
            "finished run into the store: choose a writable --store path"
        ) from None
    if path.exists():
        try:
            with path.open("r+b"):
                pass
        except OSError as exc:
            raise DropoutlabError(
                f"{path}: the store file is not writable ({exc.strerror}); make it writable, or read it "
                "with `dropoutlab report` or `export`, which only read"
            ) from None


class Store:
    """A study store in one SQLite file.

    Every finished run is written in one transaction (the run and all its epochs), so a
    study killed at any moment leaves only whole runs behind and resumes where it stopped.
    The report reads only the store, so a store made on another machine can be reported.

    ``Store(path)`` opens the store for writing: a missing or empty file becomes a new store,
    and anything else that is not a dropoutlab store is refused and left byte-for-byte
    unchanged; the file and its folder must be writable (checked here, before anything
    trains). ``Store(path, readonly=True)`` (``report``, ``export``, the notebook API) opens
    an existing store read-only and never creates anything.
    """

    def __init__(self, path: str | Path = DEFAULT_STORE, create: bool = True, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly or not create
        if self.readonly and not self.path.exists():
            raise DropoutlabError(
                f"{self.path}: no store here; run a study first (`dropoutlab run STUDY.toml`)"
            )
        if self.path.is_dir():
            raise DropoutlabError(f"{self.path}: is a folder; the store is one file, e.g. {DEFAULT_STORE}")
        check_store_file(self.path)
        if not self.readonly:
            check_writable(self.path)
        try:
            if self.readonly:
                self.conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
                self._check_schema(self._tables())
            else:
                self.conn = sqlite3.connect(self.path, timeout=30)
                self._create_schema()
            self.conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            raise DropoutlabError(f"{self.path}: not a dropoutlab store ({exc})") from None
        except DropoutlabError:
            self._close_quietly()
            raise

    def _close_quietly(self) -> None:
        if getattr(self, "conn", None) is not None:
            self.conn.close()

    def _tables(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def _check_schema(self, tables: set[str]) -> None:
        """Refuse an SQLite file that is not a dropoutlab store, or one of another schema version."""
        if not tables:
            raise DropoutlabError(
                f"{self.path}: holds no runs yet; run a study first (`dropoutlab run STUDY.toml`)"
            )
        if "meta" not in tables or "runs" not in tables:
            shown = ", ".join(map(repr, sorted(tables)[:8])) + (", ..." if len(tables) > 8 else "")
            raise DropoutlabError(
                f"{self.path}: not a dropoutlab store: an SQLite database of another program (its tables: "
                f"{shown}); it was left unchanged; choose another --store path"
            )
        try:
            version = self.conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except sqlite3.DatabaseError:
            version = None
        if version is None:
            raise DropoutlabError(
                f"{self.path}: not a dropoutlab store: its meta table has no schema version; "
                "it was left unchanged; choose another --store path"
            )
        if version[0] != SCHEMA_VERSION:
            raise DropoutlabError(
                f"{self.path}: store schema {version[0]}, this dropoutlab reads {SCHEMA_VERSION}"
            )

    def _create_schema(self) -> None:
        """Create the tables in one IMMEDIATE transaction, so processes opening a new store at once
        take turns (the first creates, the others find a store); an existing file is checked first."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            tables = self._tables()
            if tables:
                self._check_schema(tables)
            for statement in filter(str.strip, _SCHEMA.split(";")):
                self.conn.execute(statement)
            self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        except BaseException:
            self.conn.rollback()
            raise
        self.conn.commit()

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
        mc = _mc_rows(run.id, result.mc)
        learned = [(run.id, epoch, slot, rate) for epoch, slot, rate in result.learned_rates]
        with self._writing(f"run {run.id} (seed {run.seed})"), self.conn:
            self.conn.execute("DELETE FROM runs WHERE id = ?", (run.id,))
            self.conn.execute(f"INSERT INTO runs VALUES ({', '.join('?' * len(row))})", row)
            placeholders = ", ".join("?" * (2 + len(EPOCH_METRICS)))
            self.conn.executemany(f"INSERT INTO epochs VALUES ({placeholders})", epochs)
            if mc:
                self.conn.execute("DELETE FROM mc WHERE run_id = ?", (run.id,))
                self.conn.executemany(f"INSERT INTO mc VALUES ({MC_PLACEHOLDERS})", mc)
            if learned:
                self.conn.execute("DELETE FROM learned_rates WHERE run_id = ?", (run.id,))
                self.conn.executemany("INSERT INTO learned_rates VALUES (?, ?, ?, ?)", learned)
            if result.weights is not None:
                self.conn.execute("INSERT OR REPLACE INTO weights VALUES (?, ?)", (run.id, result.weights))

    def claim(
        self,
        run_ids: list[str],
        owner: str,
        lease_s: float,
        gone: Callable[[str], bool] = lambda owner: False,
    ) -> list[str]:
        """Claim the runs of ``run_ids`` that no other driver holds and that are not finished, for
        ``owner``, in one transaction; returns them in order (with those ``owner`` held already).

        A claim is another driver's while its heartbeat (:meth:`renew`) is younger than
        ``lease_s`` seconds and ``gone(its owner)`` is false; an older one, or one whose
        driver is gone (killed), is taken over.
        """
        with self._writing("the claims of this driver's runs"), self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            held = self.live_claims(
                lease_s, gone
            )  # read once the lock is ours, so no heartbeat ages meanwhile
            finished = {
                r[0]
                for r in self.conn.execute(
                    f"SELECT id FROM runs WHERE status IN ({', '.join('?' * len(FINISHED))})", FINISHED
                )
            }
            mine = [rid for rid in run_ids if rid not in finished and held.get(rid, owner) == owner]
            now = time.time()
            self.conn.executemany(
                "INSERT OR REPLACE INTO claims VALUES (?, ?, ?)", [(rid, owner, now) for rid in mine]
            )
        return mine

    def renew(self, owner: str) -> int:
        """Renew the heartbeat of ``owner``'s claims (it is still training them); returns how
        many it still holds (fewer than it claimed when another driver took some over)."""
        with self._writing("the heartbeat of this driver's claims"), self.conn:
            cur = self.conn.execute("UPDATE claims SET heartbeat = ? WHERE owner = ?", (time.time(), owner))
        return cur.rowcount

    def live_claims(
        self, lease_s: float, gone: Callable[[str], bool] = lambda owner: False
    ) -> dict[str, str]:
        """``{run_id: owner}`` of the claims whose driver is alive (heartbeat younger than
        ``lease_s``, not ``gone``)."""
        if "claims" not in self._tables():
            return {}
        now = time.time()
        rows = self.conn.execute("SELECT run_id, owner, heartbeat FROM claims").fetchall()
        return {rid: who for rid, who, beat in rows if now - beat < lease_s and not gone(who)}

    def release(self, owner: str) -> None:
        """Drop ``owner``'s claims (it stopped: its unfinished runs are free for the next driver)."""
        with self._writing("the release of this driver's claims"), self.conn:
            self.conn.execute("DELETE FROM claims WHERE owner = ?", (owner,))

    def holder(self, run_id: str) -> str | None:
        """The owner of the claim on ``run_id``, or None when no driver claims it."""
        row = self.conn.execute("SELECT owner FROM claims WHERE run_id = ?", (run_id,)).fetchone()
        return row[0] if row else None

    def claimed(self, owner: str | None = None) -> dict[str, str]:
        """``{run_id: owner}`` of the claims held now (``owner``'s only, when given)."""
        rows = (
            self.conn.execute("SELECT run_id, owner FROM claims").fetchall()
            if "claims" in self._tables()
            else []
        )
        return {rid: who for rid, who in rows if owner is None or who == owner}

    def write_mc(self, run_id: str, entries: list[dict[str, Any]]) -> None:
        """Store Monte Carlo dropout ``entries`` (as in :attr:`RunResult.mc`) of a stored run,
        replacing those with the same number of samples, all or nothing."""
        with self._writing(f"the MC dropout metrics of run {run_id}"), self.conn:
            self.conn.executemany(
                f"INSERT OR REPLACE INTO mc VALUES ({MC_PLACEHOLDERS})", _mc_rows(run_id, entries)
            )

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Turn a failed write (disk full, file made read-only, I/O error) into one line; the
        transaction was rolled back, so the store keeps every run written before."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            raise DropoutlabError(
                f"{self.path}: cannot write {what} ({exc}); the store keeps every run written before "
                "this one; fix the cause and run the same command again to train the rest"
            ) from None

    def write_study(self, study: StudySpec) -> None:
        """Keep the study's definition (grid, seeds, report settings) beside its runs."""
        with self._writing(f"the definition of study {study.name!r}"), self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO studies VALUES (?, ?)", (study.name, json.dumps(study.definition()))
            )

    def archive_study(self, study: str) -> str | None:
        """Rename the runs and definition of ``study`` to ``STUDY@archived-N`` (the first free N),
        in one transaction; returns that name, or None when the store holds nothing of ``study``.

        Nothing is deleted: the archived runs keep their history and can be reported with
        ``--study``. Their ids become those of the archived name, so the study can run again.
        """
        if not self.count_runs(study) and self.study_definition(study) is None:
            return None
        taken = set(self.studies()) | {r[0] for r in self.conn.execute("SELECT name FROM studies")}
        n = 1
        while f"{study}@archived-{n}" in taken:
            n += 1
        archived = f"{study}@archived-{n}"
        rows = self.conn.execute("SELECT id, spec, seed FROM runs WHERE study = ?", (study,)).fetchall()
        with self._writing(f"the archive of study {study!r}"), self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute("PRAGMA defer_foreign_keys = ON")  # ids change in every table keyed by run
            for old_id, spec, seed in rows:
                settings = {k: v for k, v in json.loads(spec).items() if k != "seed"}
                new_id = spec_run_id(archived, settings, seed)
                self.conn.execute("UPDATE epochs SET run_id = ? WHERE run_id = ?", (new_id, old_id))
                self.conn.execute("UPDATE mc SET run_id = ? WHERE run_id = ?", (new_id, old_id))
                self.conn.execute("UPDATE learned_rates SET run_id = ? WHERE run_id = ?", (new_id, old_id))
                self.conn.execute("UPDATE weights SET run_id = ? WHERE run_id = ?", (new_id, old_id))
                self.conn.execute(
                    "UPDATE runs SET id = ?, study = ? WHERE id = ?", (new_id, archived, old_id)
                )
            self.conn.execute("UPDATE studies SET name = ? WHERE name = ?", (archived, study))
        return archived

    # -- reading ---------------------------------------------------------------------------
    def study_definition(self, study: str) -> dict[str, Any] | None:
        """The definition :meth:`write_study` kept for ``study``, or None (stores made before it)."""
        try:
            row = self.conn.execute("SELECT definition FROM studies WHERE name = ?", (study,)).fetchone()
        except sqlite3.OperationalError:  # a store made before the studies table, opened read-only
            return None
        return json.loads(row[0]) if row else None

    def count_runs(self, study: str) -> int:
        """How many runs of ``study`` the store holds, whatever their status (failed ones too)."""
        return self.conn.execute("SELECT COUNT(*) FROM runs WHERE study = ?", (study,)).fetchone()[0]

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
        mc: dict[str, list[dict[str, Any]]] = {r["id"]: [] for r in runs}
        if "mc" in self._tables():  # a store written before MC dropout, opened read-only, has none
            cur = self.conn.execute(
                f"SELECT m.* FROM mc m JOIN runs r ON r.id = m.run_id {where.replace('study', 'r.study')} "
                "ORDER BY m.run_id, m.samples",
                args,
            )
            for run_id, samples, *values, reliability in cur.fetchall():
                metrics = dict(zip(MC_METRICS, values, strict=True))
                mc[run_id].append({"samples": samples, **metrics, "reliability": json.loads(reliability)})
        learned: dict[str, list[dict[str, Any]]] = {r["id"]: [] for r in runs}
        if "learned_rates" in self._tables():  # not in a store written before concrete dropout
            cur = self.conn.execute(
                f"SELECT l.* FROM learned_rates l JOIN runs r ON r.id = l.run_id "
                f"{where.replace('study', 'r.study')} ORDER BY l.run_id, l.epoch, l.slot",
                args,
            )
            for run_id, epoch, slot, rate in cur.fetchall():
                learned[run_id].append({"epoch": epoch, "slot": slot, "rate": rate})
        records = []
        for r in runs:
            record = {
                "id": r["id"],
                "study": r["study"],
                "params": json.loads(r["params"]),
                "seed": r["seed"],
                "status": r["status"],
                "history": histories[r["id"]],
                "test": {"loss": r["test_loss"], "acc": r["test_acc"]},
                "best_epoch": r["best_epoch"],
                "stopped_epoch": r["stopped_epoch"],
                "kept_epoch": None,
                "wall_s": r["wall_s"],
                "spec": json.loads(r["spec"]),
                "env": json.loads(r["env"]),
                "error": r["error"],
                "finished_at": r["finished_at"],
                "mc": mc[r["id"]],
                "learned_rates": learned[r["id"]],
            }
            record["kept_epoch"] = _kept_epoch(record)
            records.append(record)
        return records

    def weights(self, run_id: str) -> bytes | None:
        """The weights ``dropoutlab run --keep-weights`` stored for a run (``torch.save`` bytes), or None."""
        if "weights" not in self._tables():  # a store written before weights were kept
            return None
        row = self.conn.execute("SELECT state FROM weights WHERE run_id = ?", (run_id,)).fetchone()
        return row[0] if row else None

    def runs_with_weights(self) -> set[str]:
        """Ids of the runs whose weights the store holds (``dropoutlab run --keep-weights``)."""
        if "weights" not in self._tables():
            return set()
        return {r[0] for r in self.conn.execute("SELECT run_id FROM weights")}

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


def _kept_epoch(record: dict[str, Any]) -> int | None:
    """:func:`~dropoutlab.runs.kept_epoch` of an export record (its ``spec`` as stored)."""
    es = record["spec"].get("early_stopping")
    return kept_epoch(bool(es and es.get("restore_best")), record["best_epoch"], record["stopped_epoch"])


# run_id, samples, the metrics, reliability: one row of the mc table
MC_PLACEHOLDERS = ", ".join("?" * (3 + len(MC_METRICS)))


def _mc_rows(run_id: str, entries) -> list[tuple]:
    """Rows of the ``mc`` table for a run's Monte Carlo dropout ``entries``."""
    return [
        (run_id, m["samples"], *(m[k] for k in MC_METRICS), json.dumps(m["reliability"])) for m in entries
    ]


def _cell(value: Any) -> Any:
    """A parameter's value as one table cell: a list (``augment``) as ``"crop+flip"``, ``"none"`` when empty."""
    if isinstance(value, list):
        return "+".join(map(str, value)) or "none"
    return value


def runs_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The runs DataFrame built from export records."""
    params = _param_keys(records)
    rows = []
    for r in records:
        kept = _kept_epoch(r)
        final = next((h for h in r["history"] if h["epoch"] == kept), {})
        row = {
            "id": r["id"], "study": r["study"], "config": config_label(r["params"]), "seed": r["seed"],
            "status": r["status"], "test_loss": r["test"]["loss"], "test_acc": r["test"]["acc"],
            "best_epoch": r["best_epoch"], "stopped_epoch": r["stopped_epoch"], "kept_epoch": kept,
            "wall_s": r["wall_s"],
        }  # fmt: skip
        row.update({f"final_{m}": final.get(m) for m in EPOCH_METRICS})
        row.update({f"dropout.{slot}": rate for slot, rate in r["spec"]["dropout"].items()})
        row.update({k: _cell(r["params"].get(k)) for k in params})
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
        base.update({k: _cell(r["params"].get(k)) for k in params})
        rows.extend({**base, **h} for h in r["history"])
    frame = pd.DataFrame(
        rows,
        columns=None if rows else ["run_id", "study", "config", "seed", "status", "epoch", *EPOCH_METRICS],
    )
    for column in EPOCH_METRICS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    frame.attrs["params"] = params
    return frame
