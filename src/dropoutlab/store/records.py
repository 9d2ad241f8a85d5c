"""Runs and their records: one transaction per finished run (the run, its epochs, its Monte
Carlo dropout metrics, its learned rates, its weights), and the runs read back in the export
layout."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from dropoutlab.runs import EPOCH_METRICS, FINISHED, MC_METRICS, RunResult, kept_epoch
from dropoutlab.store.base import StoreBase, real


def now_text() -> str:
    """The time a row is written, as stored: UTC, ISO 8601, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Records(StoreBase):
    """Writing finished runs and reading them back (part of :class:`~dropoutlab.store.Store`)."""

    def write_run(self, result: RunResult) -> None:
        """Store one finished run and its epochs, all or nothing (a run stored before under the
        same id, failed or taken over, is replaced with everything it had)."""
        run = result.run
        row = {
            "id": run.id, "study": run.study, "params": json.dumps(run.params), "seed": run.seed,
            "status": result.status, "test_loss": real(result.test_loss), "test_acc": real(result.test_acc),
            "best_epoch": result.best_epoch, "stopped_epoch": result.stopped_epoch, "wall_s": result.wall_s,
            "spec": json.dumps(run.spec_dict()), "env": json.dumps(result.env),
            "error": result.error and result.error.replace("\x00", "\\x00"),  # PostgreSQL text holds no NUL
            "finished_at": now_text(),
        }  # fmt: skip
        epochs = [
            {"run_id": run.id, "epoch": h.epoch, **{m: real(getattr(h, m)) for m in EPOCH_METRICS}}
            for h in result.history
        ]
        learned = [
            {"run_id": run.id, "epoch": epoch, "slot": slot, "rate": rate}
            for epoch, slot, rate in result.learned_rates
            if real(rate) is not None  # a diverged epoch's NaN rate: not a rate
        ]
        with self._write(f"run {run.id} (seed {run.seed})") as conn:
            conn.execute(sa.delete(self.tables["runs"]).where(self.tables["runs"].c.id == run.id))  # cascades
            conn.execute(sa.insert(self.tables["runs"]), [row])
            for table, rows in (
                ("epochs", epochs),
                ("mc", _mc_rows(run.id, result.mc)),
                ("learned_rates", learned),
            ):
                if rows:
                    conn.execute(sa.insert(self.tables[table]), rows)
            if result.weights is not None:
                conn.execute(sa.insert(self.tables["weights"]), [{"run_id": run.id, "state": result.weights}])

    def write_mc(self, run_id: str, entries: list[dict[str, Any]]) -> None:
        """Store Monte Carlo dropout ``entries`` (as in :attr:`RunResult.mc`) of a stored run,
        replacing those with the same number of samples, all or nothing."""
        with self._write(f"the MC dropout metrics of run {run_id}") as conn:
            conn.execute(*self._replace("mc", _mc_rows(run_id, entries)))

    def count_runs(self, study: str) -> int:
        """How many runs of ``study`` the store holds, whatever their status (failed ones too)."""
        runs = self.tables["runs"]
        with self._read() as conn:
            return conn.execute(sa.select(sa.func.count()).where(runs.c.study == study)).scalar()

    def finished_ids(self, study: str) -> set[str]:
        """Ids of the runs of ``study`` that need not run again (completed or diverged)."""
        runs = self.tables["runs"]
        query = sa.select(runs.c.id).where(runs.c.study == study, runs.c.status.in_(FINISHED))
        with self._read() as conn:
            return set(conn.execute(query).scalars())

    def _of_study(self, table: str, study: str | None, *order: str) -> sa.Select:
        """The rows of ``table`` (keyed by run) for the runs of ``study`` (all when None)."""
        t, runs = self.tables[table], self.tables["runs"]
        query = sa.select(t).order_by(*(t.c[c] for c in order))
        if study:
            query = query.join(runs, runs.c.id == t.c.run_id).where(runs.c.study == study)
        return query

    def records(self, study: str | None = None) -> list[dict[str, Any]]:
        """Runs in the export layout (see README): one dict per run, history included."""
        runs = self.tables["runs"]
        query = sa.select(*self._run_columns).order_by(self._order)
        if study:
            query = query.where(runs.c.study == study)
        with self._read() as conn:
            stored = [dict(row) for row in conn.execute(query).mappings()]
            histories: dict[str, list[dict[str, Any]]] = {r["id"]: [] for r in stored}
            for run_id, epoch, *values in conn.execute(self._of_study("epochs", study, "run_id", "epoch")):
                histories[run_id].append({"epoch": epoch, **dict(zip(EPOCH_METRICS, values, strict=True))})
            mc: dict[str, list[dict[str, Any]]] = {r["id"]: [] for r in stored}
            for run_id, samples, *values, reliability in conn.execute(
                self._of_study("mc", study, "run_id", "samples")
            ):
                metrics = dict(zip(MC_METRICS, values, strict=True))
                mc[run_id].append({"samples": samples, **metrics, "reliability": json.loads(reliability)})
            learned: dict[str, list[dict[str, Any]]] = {r["id"]: [] for r in stored}
            for run_id, epoch, slot, rate in conn.execute(
                self._of_study("learned_rates", study, "run_id", "epoch", "slot")
            ):
                learned[run_id].append({"epoch": epoch, "slot": slot, "rate": rate})
        records = []
        for r in stored:
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
            record["kept_epoch"] = record_kept_epoch(record)
            records.append(record)
        return records


def record_kept_epoch(record: dict[str, Any]) -> int | None:
    """:func:`~dropoutlab.runs.kept_epoch` of an export record (its ``spec`` as stored)."""
    es = record["spec"].get("early_stopping")
    return kept_epoch(bool(es and es.get("restore_best")), record["best_epoch"], record["stopped_epoch"])


def _mc_rows(run_id: str, entries) -> list[dict[str, Any]]:
    """Rows of the ``mc`` table for a run's Monte Carlo dropout ``entries``."""
    return [
        {"run_id": run_id, "samples": m["samples"], **{k: real(m[k]) for k in MC_METRICS},
         "reliability": json.dumps(m["reliability"])}
        for m in entries
    ]  # fmt: skip
