"""Runs and their records: one transaction per finished run (the run, its epochs, its Monte
Carlo dropout metrics, its learned rates, its weights), and the runs read back in the export
layout."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from dropoutlab.errors import DropoutlabError
from dropoutlab.runs import EPOCH_METRICS, FINISHED, MC_METRICS, RunResult, kept_epoch
from dropoutlab.store.base import StoreBase, log, real


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
        log.info("%s: stored run %s (seed %d, %s, %d epochs)", self.name, run.id, run.seed, result.status,
                 len(result.history))  # fmt: skip

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

    def records(self, study: str | None = None, skip_damaged: bool = False) -> list[dict[str, Any]]:
        """Runs in the export layout (see README): one dict per run, history included.

        A run whose stored text was changed outside dropoutlab (a column that is not the JSON
        or the type dropoutlab writes: :class:`Damaged`) is a DropoutlabError naming the run and
        the column; with ``skip_damaged``, it is left out instead and a warning names it, and
        one more says how many were left out (``export``: every intact run still comes out).
        """
        runs = self.tables["runs"]
        query = sa.select(*self._run_columns).order_by(self._order)
        if study:
            query = query.where(runs.c.study == study)
        damaged: dict[str, str] = {}  # run id -> what is wrong, the first thing found

        def harm(run_id: Any, column: str, exc: Damaged) -> None:
            damaged.setdefault(run_id, f"run {shown_id(run_id)}: the column {column} {exc}")

        with self._read() as conn:
            stored = [dict(row) for row in conn.execute(query).mappings()]
            histories: dict[str, list[dict[str, Any]]] = {r["id"]: [] for r in stored}
            for run_id, epoch, *values in conn.execute(self._of_study("epochs", study, "run_id", "epoch")):
                # an epoch whose run is gone (written with foreign keys off) belongs to no record
                if run_id in histories:
                    try:
                        row = {"epoch": whole(epoch, False)} | _numbers("epochs", EPOCH_METRICS, values)
                    except _DamagedColumn as exc:
                        harm(run_id, exc.column, exc.damage)
                        continue
                    histories[run_id].append(row)
            mc: dict[str, list[dict[str, Any]]] = {r["id"]: [] for r in stored}
            for run_id, samples, *values, reliability in conn.execute(
                self._of_study("mc", study, "run_id", "samples")
            ):
                if run_id in mc:
                    try:
                        entry = {"samples": whole(samples, False), **_numbers("mc", MC_METRICS, values)}
                        mc[run_id].append({**entry, "reliability": parse_json(reliability, list)})
                    except _DamagedColumn as exc:
                        harm(run_id, exc.column, exc.damage)
                    except Damaged as exc:
                        harm(run_id, "mc.samples or mc.reliability", exc)
            learned: dict[str, list[dict[str, Any]]] = {r["id"]: [] for r in stored}
            for run_id, epoch, slot, rate in conn.execute(
                self._of_study("learned_rates", study, "run_id", "epoch", "slot")
            ):
                if run_id in learned:
                    try:
                        learned[run_id].append(
                            {"epoch": whole(epoch, False), "slot": str(slot), "rate": number(rate)}
                        )
                    except Damaged as exc:
                        harm(run_id, "learned_rates.epoch or learned_rates.rate", exc)
        records = []
        for r in stored:
            try:
                record = _record(r, histories[r["id"]], mc[r["id"]], learned[r["id"]])
            except _DamagedColumn as exc:
                harm(r["id"], exc.column, exc.damage)
                continue
            if r["id"] not in damaged:
                records.append(record)
        if damaged and not skip_damaged:
            first = next(iter(damaged.values()))
            raise DropoutlabError(
                f"{self.name}: {first}; it was changed outside dropoutlab: delete the run or restore the store "
                f"(`dropoutlab export` leaves out the {len(damaged)} damaged run{'s' * (len(damaged) != 1)})"
            )
        for i, line in enumerate(damaged.values()):
            if i == MAX_DAMAGED_LINES:
                log.warning("%s: ... and %d more damaged runs", self.name, len(damaged) - i)
                break
            log.warning("%s: left out %s", self.name, line)
        log.info("%s: read %d runs%s", self.name, len(records), f" of study {study!r}" if study else "")
        if damaged:
            log.warning(
                "%s: left out %d damaged run%s of %d (changed outside dropoutlab); the %d intact runs follow",
                self.name, len(damaged), "s" * (len(damaged) != 1), len(stored), len(records),
            )  # fmt: skip
        return records


MAX_DAMAGED_LINES = 10  # warnings naming a damaged run, before one line counts the rest


class Damaged(ValueError):
    """What is wrong with one stored value (its text completes "the column X ...")."""


class _DamagedColumn(Exception):
    def __init__(self, column: str, damage: Damaged) -> None:
        super().__init__(column)
        self.column, self.damage = column, damage


def _numbers(table: str, names, values) -> dict[str, Any]:
    """The metrics ``names`` of one row of ``table``, each checked with :func:`number`."""
    out = {}
    for name, value in zip(names, values, strict=True):
        try:
            out[name] = number(value)
        except Damaged as exc:
            raise _DamagedColumn(f"{table}.{name}", exc) from None
    return out


def shown_id(run_id: Any) -> str:
    """A run id as a message shows it: quoted, cut to 80 characters (a tampered id may be long)."""
    text = repr(run_id)
    return text if len(text) <= 80 else text[:77] + "..."


def _kind(value: Any) -> str:
    return {dict: "a JSON object", list: "a JSON list", str: "text", bool: "true/false"}.get(
        type(value), type(value).__name__ if value is not None else "null"
    )


def parse_json(text: Any, kind: type, null: bool = False) -> Any:
    """``text`` (a stored JSON column) decoded and checked to be a ``kind`` (dict or list),
    or None when ``null`` allows it; :class:`Damaged` otherwise."""
    if text is None and null:
        return None
    if not isinstance(text, str | bytes):
        raise Damaged(f"holds {_kind(text)}, not JSON text")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, and nesting past the recursion limit
        raise Damaged(f"is not JSON ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(value, kind):
        raise Damaged(f"holds {_kind(value)}, not {_kind(kind())}")
    return value


def number(value: Any) -> float | int | None:
    """A stored metric: a number, or None (NULL); :class:`Damaged` otherwise."""
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    raise Damaged(f"holds {_kind(value)} {shown_id(value)}, not a number")


def whole(value: Any, null: bool = True) -> int | None:
    """A stored whole number (a seed, an epoch), or None where ``null`` allows it; :class:`Damaged` otherwise."""
    if (value is None and null) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise Damaged(f"holds {_kind(value)} {shown_id(value)}, not a whole number")


def text(value: Any) -> str:
    """A stored text column (a status); :class:`Damaged` otherwise."""
    if isinstance(value, str):
        return value
    raise Damaged(f"holds {_kind(value)} {shown_id(value)}, not text")


def _params(text: Any) -> dict[str, Any]:
    """A run's stored grid values: a JSON object of numbers, text, true/false or null, or lists of them."""
    params = parse_json(text, dict)
    for key, value in params.items():
        if not all(isinstance(v, SCALARS) for v in (value if isinstance(value, list) else [value])):
            raise Damaged(f"holds the value {shown_id(value)[:60]} of {shown_id(key)[:60]}, not a grid value")
    return params


SCALARS = (str, int, float, bool, type(None))


def _spec(text: Any) -> dict[str, Any]:
    """A run's stored ``spec``, with the parts the report reads checked."""
    spec = parse_json(text, dict)
    if not isinstance(spec.get("dropout", {}), dict):
        raise Damaged(f"holds a dropout entry of {_kind(spec['dropout'])}, not a JSON object")
    for slot, rate in spec.get("dropout", {}).items():
        try:
            number(rate)
        except Damaged as exc:
            raise Damaged(f"holds a dropout rate of slot {shown_id(slot)} that {exc}") from None
    if not isinstance(spec.get("early_stopping"), dict | None):
        raise Damaged(f"holds an early_stopping entry of {_kind(spec['early_stopping'])}, not a JSON object")
    return spec


def _record(r: dict[str, Any], history, mc, learned) -> dict[str, Any]:
    """One stored run in the export layout; :class:`_DamagedColumn` names a damaged column."""
    checks = {
        "params": _params, "spec": _spec, "env": lambda v: parse_json(v, dict),
        "seed": whole, "test_loss": number, "test_acc": number, "wall_s": number,
        "best_epoch": whole, "stopped_epoch": whole,
        "status": text,
    }  # fmt: skip
    values = {}
    for column, check in checks.items():
        try:
            values[column] = check(r[column])
        except Damaged as exc:
            raise _DamagedColumn(column, exc) from None
    record = {
        "id": r["id"],
        "study": r["study"],
        "params": values["params"],
        "seed": values["seed"],
        "status": values["status"],
        "history": history,
        "test": {"loss": values["test_loss"], "acc": values["test_acc"]},
        "best_epoch": values["best_epoch"],
        "stopped_epoch": values["stopped_epoch"],
        "kept_epoch": None,
        "wall_s": values["wall_s"],
        "spec": values["spec"],
        "env": values["env"],
        "error": r["error"],
        "finished_at": r["finished_at"],
        "mc": mc,
        "learned_rates": learned,
    }
    record["kept_epoch"] = record_kept_epoch(record)
    return record


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
