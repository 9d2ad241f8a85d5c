"""The store: the single source of truth, written one transaction per finished run.

A store is one SQLite file (the default, ``dropoutlab.db``) or a PostgreSQL database
(``--store postgresql://USER@HOST/DB``), for a study that several machines write at once or
whose folder sits on a network file system, where SQLite cannot serve. Both go through
SQLAlchemy Core with the same tables, so everything above this module reads one kind of store.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import re
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from dropoutlab.errors import DropoutlabError

if TYPE_CHECKING:
    import pandas as pd
from dropoutlab.runs import (
    DEFAULT_STORE,
    EPOCH_METRICS,
    FINISHED,
    MC_METRICS,
    RunResult,
    StudySpec,
    kept_epoch,
    spec_run_id,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1"

SQLITE_HEADER = b"SQLite format 3\x00"
POSTGRES_DRIVER = "postgresql+psycopg"  # what a plain postgresql:// URL is opened with
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SCHEMA_LOCK = 0x64726F70  # pg_advisory_xact_lock key: drivers creating one PostgreSQL store take turns


def is_url(location: str | Path) -> bool:
    """Whether a ``--store`` value is a database URL (``postgresql://...``) rather than a file path."""
    return isinstance(location, str) and bool(_URL.match(location))


def _schema(postgres: bool) -> sa.MetaData:
    """The store's tables. SQLite orders runs by its implicit ``rowid``; PostgreSQL has none, so
    there ``runs`` has a ``seq`` column that numbers the runs in the order they were written."""
    md = sa.MetaData()

    def run_ref() -> sa.Column:
        # DEFERRABLE: archiving a study renames run ids in every table within one transaction
        fk = sa.ForeignKey("runs.id", ondelete="CASCADE", deferrable=True, initially="IMMEDIATE")
        return sa.Column("run_id", sa.Text, fk, primary_key=True)

    sa.Table(
        "meta", md, sa.Column("key", sa.Text, primary_key=True), sa.Column("value", sa.Text, nullable=False)
    )
    sa.Table(
        "runs", md,
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("study", sa.Text, nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),  # seeds go up to 2^63 - 1
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("test_loss", sa.Float),
        sa.Column("test_acc", sa.Float),
        sa.Column("best_epoch", sa.Integer),
        sa.Column("stopped_epoch", sa.Integer),
        sa.Column("wall_s", sa.Float),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("env", sa.Text, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("finished_at", sa.Text, nullable=False),
        *([sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False)] if postgres else []),
        sa.Index("runs_by_study", "study"),
    )  # fmt: skip
    sa.Table("epochs", md, run_ref(), sa.Column("epoch", sa.Integer, primary_key=True),
             *(sa.Column(m, sa.Float) for m in EPOCH_METRICS))  # fmt: skip
    sa.Table("studies", md, sa.Column("name", sa.Text, primary_key=True),
             sa.Column("definition", sa.Text, nullable=False))  # fmt: skip
    sa.Table("mc", md, run_ref(), sa.Column("samples", sa.Integer, primary_key=True),
             *(sa.Column(m, sa.Float) for m in MC_METRICS), sa.Column("reliability", sa.Text, nullable=False))  # fmt: skip
    sa.Table("learned_rates", md, run_ref(), sa.Column("epoch", sa.Integer, primary_key=True),
             sa.Column("slot", sa.Text, primary_key=True), sa.Column("rate", sa.Float, nullable=False))  # fmt: skip
    sa.Table("claims", md, sa.Column("run_id", sa.Text, primary_key=True),
             sa.Column("owner", sa.Text, nullable=False), sa.Column("heartbeat", sa.Float, nullable=False),
             sa.Column("study", sa.Text))  # fmt: skip
    sa.Table("weights", md, run_ref(), sa.Column("state", sa.LargeBinary, nullable=False))
    return md


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


def holds_store(location: str | Path) -> bool:
    """Whether ``location`` holds something already (a non-empty file, a database with tables),
    which ``Store(location, readonly=True)`` then opens or refuses. Reads nothing else."""
    if not is_url(location):
        path = Path(location)
        return path.exists() and (path.is_dir() or path.stat().st_size > 0)
    engine, shown = _postgres_engine(str(location), readonly=True)
    try:
        with engine.connect() as conn:
            return bool(_table_names(conn))
    except sa.exc.DBAPIError as exc:
        raise _cannot_open(shown, True, exc) from None
    finally:
        engine.dispose()


def _table_names(conn: sa.Connection) -> set[str]:
    return set(sa.inspect(conn).get_table_names())


def _cannot_open(name: str, postgres: bool, exc: sa.exc.DBAPIError) -> DropoutlabError:
    """The one line for a database that refused to open: a PostgreSQL server's words, or an
    SQLite file that is not a store."""
    what = "cannot open the PostgreSQL store" if postgres else "not a dropoutlab store"
    return DropoutlabError(f"{name}: {what} ({_reason(exc)})")


def _reason(exc: sa.exc.DBAPIError) -> str:
    """The database's own words for ``exc``, on one line."""
    return str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)


NETWORK_FILE_SYSTEMS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "fuse.sshfs", "ceph", "glusterfs",
                        "fuse.glusterfs", "lustre", "gpfs", "beegfs", "fuse.s3fs", "fuse.gcsfuse"}  # fmt: skip


def network_file_system(path: Path, mounts: str | None = None) -> str | None:
    """The type of the network file system ``path`` lies on (``nfs4``, ``cifs``...), or None
    (a local disk, or not Linux). ``mounts`` is ``/proc/self/mounts``'s text, read when None."""
    if mounts is None:
        try:
            mounts = Path("/proc/self/mounts").read_text()
        except OSError:
            return None
    folder = path.resolve().parent
    best, kind = -1, None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = Path(fields[1].replace("\\040", " "))
        if (folder == point or point in folder.parents) and len(point.parts) > best:
            best, kind = len(point.parts), fields[2]
    return kind if kind in NETWORK_FILE_SYSTEMS else None


def _sqlite_engine(path: Path, readonly: bool) -> sa.Engine:
    """One SQLite connection for the store's life. SQLAlchemy emits the BEGIN itself, so that a
    write takes the file's lock from its first statement (``BEGIN IMMEDIATE``): two drivers
    writing one file take turns instead of failing on a lock upgrade."""
    target = f"{path.resolve().as_uri()}?mode=ro" if readonly else str(path)
    engine = sa.create_engine(
        "sqlite://",
        creator=lambda: sqlite3.connect(target, uri=readonly, timeout=30, check_same_thread=False),
        poolclass=sa.StaticPool,
    )

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # no implicit BEGIN from the sqlite3 module
        dbapi_connection.execute("PRAGMA foreign_keys = ON")

    @sa.event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        immediate = connection.get_execution_options().get("immediate")
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _postgres_engine(url: str, readonly: bool) -> tuple[sa.Engine, str]:
    """An engine on a PostgreSQL URL (a plain ``postgresql://`` is opened with psycopg), and the
    URL as shown in messages (without its password)."""
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise DropoutlabError(
            f"{url}: not a database URL; give a file path or postgresql://USER@HOST/DB"
        ) from None
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() != "postgresql":
        raise DropoutlabError(
            f"{shown}: a store is an SQLite file path or a PostgreSQL URL (postgresql://USER@HOST/DB), "
            f"not a {parsed.get_backend_name()!r} URL"
        )
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername=POSTGRES_DRIVER)
    try:  # a server that does not answer is said so in 10 s, not after the system's TCP timeout
        engine = sa.create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    except sa.exc.NoSuchModuleError:
        raise DropoutlabError(
            f"{shown}: SQLAlchemy knows no driver {parsed.drivername!r}; write postgresql://USER@HOST/DB"
        ) from None
    except ModuleNotFoundError as exc:
        raise DropoutlabError(
            f"{shown}: a PostgreSQL store needs its driver ({exc.name} is not installed): "
            'pip install "dropoutlab[postgres]"'
        ) from None
    return (engine.execution_options(postgresql_readonly=True) if readonly else engine), shown


def _real(value: Any) -> Any:
    """A metric as stored: NaN becomes NULL in both databases (SQLite does so by itself)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


class Store:
    """A study store: one SQLite file, or a PostgreSQL database given by URL.

    Every finished run is written in one transaction (the run and all its epochs), so a
    study killed at any moment leaves only whole runs behind and resumes where it stopped.
    The report reads only the store, so a store made on another machine can be reported.

    ``Store(location)`` opens the store for writing: a missing or empty file (or an empty
    database) becomes a new store, and anything else that is not a dropoutlab store is
    refused and left unchanged; a file and its folder must be writable (checked here, before
    anything trains). ``create=False`` (``evaluate``) writes only to a store that exists.
    ``Store(location, readonly=True)`` (``report``, ``export``, the notebook API) opens an
    existing store read-only and never creates anything.
    """

    def __init__(
        self, location: str | Path = DEFAULT_STORE, create: bool = True, readonly: bool = False
    ) -> None:
        self.location = location
        self.readonly = readonly
        self.create = create and not readonly
        self.postgres = is_url(location)
        if self.postgres:
            self.path = None
            self.engine, self.name = _postgres_engine(str(location), self.readonly)
        else:
            self.path = Path(location)
            self.name = str(self.path)
            self._check_file()
            self.engine = _sqlite_engine(self.path, self.readonly)
            network = None if self.readonly else network_file_system(self.path)
            if network:
                log.warning(
                    "%s is on a network file system (%s), where SQLite's locks are not to be trusted with "
                    "several writers: for drivers on several machines use --store postgresql://USER@HOST/DB",
                    self.path, network,
                )  # fmt: skip
        md = _schema(self.postgres)
        self.tables = md.tables
        runs = self.tables["runs"]
        self._order = runs.c.seq if self.postgres else sa.literal_column("runs.rowid")
        self._run_columns = [c for c in runs.c if c.name != "seq"]
        try:
            with self.engine.connect():  # a server that is down or refuses us: said here, in one line
                pass
            if self.readonly:
                with self._read() as conn:
                    self._present = _table_names(conn)
                    self._check_schema(conn, self._present)
            else:
                with self._write("the store's tables") as conn:
                    if self.postgres:
                        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
                    tables = _table_names(conn)
                    if tables or not self.create:
                        self._check_schema(conn, tables)
                    md.create_all(conn)
                    if "study" not in {c["name"] for c in sa.inspect(conn).get_columns("claims")}:
                        conn.exec_driver_sql("ALTER TABLE claims ADD COLUMN study TEXT")  # a store of before
                    conn.execute(
                        self._insert("meta")
                        .values(key="schema", value=SCHEMA_VERSION)
                        .on_conflict_do_nothing()
                    )
                self._present = set(md.tables)
        except sa.exc.DBAPIError as exc:
            self.engine.dispose()
            raise _cannot_open(self.name, self.postgres, exc) from None
        except DropoutlabError:
            self.engine.dispose()
            raise

    def _check_file(self) -> None:
        if not self.create and not self.path.exists():
            raise DropoutlabError(
                f"{self.path}: no store here; run a study first (`dropoutlab run STUDY.toml`)"
            )
        if self.path.is_dir():
            raise DropoutlabError(f"{self.path}: is a folder; the store is one file, e.g. {DEFAULT_STORE}")
        check_store_file(self.path)
        if not self.readonly:
            check_writable(self.path)

    def _check_schema(self, conn: sa.Connection, tables: set[str]) -> None:
        """Refuse a database that is not a dropoutlab store, or one of another schema version."""
        kind = "a PostgreSQL database" if self.postgres else "an SQLite database"
        if not tables:
            raise DropoutlabError(
                f"{self.name}: holds no runs yet; run a study first (`dropoutlab run STUDY.toml`)"
            )
        if "meta" not in tables or "runs" not in tables:
            shown = ", ".join(map(repr, sorted(tables)[:8])) + (", ..." if len(tables) > 8 else "")
            raise DropoutlabError(
                f"{self.name}: not a dropoutlab store: {kind} of another program (its tables: "
                f"{shown}); it was left unchanged; choose another --store"
            )
        try:
            with conn.begin_nested():
                version = conn.execute(sa.text("SELECT value FROM meta WHERE key = 'schema'")).scalar()
        except sa.exc.DBAPIError:
            version = None
        if version is None:
            raise DropoutlabError(
                f"{self.name}: not a dropoutlab store: its meta table has no schema version; "
                "it was left unchanged; choose another --store"
            )
        if version != SCHEMA_VERSION:
            raise DropoutlabError(
                f"{self.name}: store schema {version}, this dropoutlab reads {SCHEMA_VERSION}"
            )

    def new_connection(self) -> Store:
        """The same store through a connection of its own, for another thread (the lease's
        heartbeat). It skips the checks of a first open on purpose: they open and close the
        store's file, and closing any descriptor of a file drops every POSIX lock this process
        holds on it, SQLite's included, so another process could write in the middle of one
        of our transactions and corrupt the file."""
        twin = copy.copy(self)
        if self.postgres:
            twin.engine = _postgres_engine(str(self.location), self.readonly)[0]
        else:
            twin.engine = _sqlite_engine(self.path, self.readonly)
        return twin

    def close(self) -> None:
        """Close the database connection."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        """A connection whose reads see one snapshot; rolled back (nothing to keep) at the end.
        A failed read (the server gone, the file damaged) becomes one line."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except sa.exc.DBAPIError as exc:
            raise DropoutlabError(
                f"{self.name}: cannot read the store ({_reason(exc)}); nothing was changed"
            ) from None

    @contextmanager
    def _write(self, what: str) -> Iterator[sa.Connection]:
        """One transaction, committed at the end. A failed write (disk full, file made read-only,
        server gone) becomes one line; the transaction was rolled back, so the store keeps every
        run written before."""
        try:
            with self.engine.connect() as conn:
                conn.execution_options(immediate=True)
                with conn.begin():
                    yield conn
        except (sa.exc.OperationalError, sa.exc.InternalError, sa.exc.DataError) as exc:
            raise DropoutlabError(
                f"{self.name}: cannot write {what} ({_reason(exc)}); the store keeps every run written before "
                "this one; fix the cause and run the same command again to train the rest"
            ) from None

    def _insert(self, table: str):
        """An INSERT on ``table`` that can say what to do on a key conflict (both dialects agree)."""
        return (postgresql.insert if self.postgres else sqlite.insert)(self.tables[table])

    def _replace(self, table: str, rows: list[dict[str, Any]]) -> Any:
        """INSERT ``rows``, replacing those with the same key."""
        statement = self._insert(table)
        keys = [c.name for c in self.tables[table].primary_key]
        others = {c.name: statement.excluded[c.name] for c in self.tables[table].c if c.name not in keys}
        return statement.on_conflict_do_update(index_elements=keys, set_=others), rows

    # -- writing ---------------------------------------------------------------------------
    def write_run(self, result: RunResult) -> None:
        """Store one finished run and its epochs, all or nothing (a run stored before under the
        same id, failed or taken over, is replaced with everything it had)."""
        run = result.run
        row = {
            "id": run.id, "study": run.study, "params": json.dumps(run.params), "seed": run.seed,
            "status": result.status, "test_loss": _real(result.test_loss), "test_acc": _real(result.test_acc),
            "best_epoch": result.best_epoch, "stopped_epoch": result.stopped_epoch, "wall_s": result.wall_s,
            "spec": json.dumps(run.spec_dict()), "env": json.dumps(result.env),
            "error": result.error and result.error.replace("\x00", "\\x00"),  # PostgreSQL text holds no NUL
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }  # fmt: skip
        epochs = [
            {"run_id": run.id, "epoch": h.epoch, **{m: _real(getattr(h, m)) for m in EPOCH_METRICS}}
            for h in result.history
        ]
        learned = [
            {"run_id": run.id, "epoch": epoch, "slot": slot, "rate": rate}
            for epoch, slot, rate in result.learned_rates
            if _real(rate) is not None  # a diverged epoch's NaN rate: not a rate
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

    def claim(
        self,
        run_ids: list[str],
        owner: str,
        lease_s: float,
        gone: Callable[[str], bool] = lambda owner: False,
        study: str | None = None,
    ) -> list[str]:
        """Claim the runs of ``run_ids`` (of ``study``) that no other driver holds and that are not
        finished, for ``owner``, in one transaction; returns them in order (with those ``owner``
        held already).

        A claim is another driver's while its heartbeat (:meth:`renew`) is younger than
        ``lease_s`` seconds and ``gone(its owner)`` is false; an older one, or one whose
        driver is gone (killed), is taken over.
        """
        runs = self.tables["runs"]
        with self._write("the claims of this driver's runs") as conn:
            if self.postgres:  # SQLite's BEGIN IMMEDIATE already locked the whole file
                conn.execute(sa.text("LOCK TABLE claims IN EXCLUSIVE MODE"))
            held = self._live_claims(conn, lease_s, gone)  # read under the lock: no heartbeat ages meanwhile
            finished = set(conn.execute(sa.select(runs.c.id).where(runs.c.status.in_(FINISHED))).scalars())
            mine = [rid for rid in run_ids if rid not in finished and held.get(rid, owner) == owner]
            if mine:
                now = self._now(conn)
                conn.execute(
                    *self._replace(
                        "claims",
                        [{"run_id": r, "owner": owner, "heartbeat": now, "study": study} for r in mine],
                    )
                )
        return mine

    def renew(self, owner: str) -> int:
        """Renew the heartbeat of ``owner``'s claims (it is still training them); returns how
        many it still holds (fewer than it claimed when another driver took some over)."""
        claims = self.tables["claims"]
        with self._write("the heartbeat of this driver's claims") as conn:
            result = conn.execute(
                sa.update(claims).where(claims.c.owner == owner).values(heartbeat=self._now(conn))
            )
        return result.rowcount

    def live_claims(
        self, lease_s: float, gone: Callable[[str], bool] = lambda owner: False, study: str | None = None
    ) -> dict[str, str]:
        """``{run_id: owner}`` of the claims whose driver is alive (heartbeat younger than
        ``lease_s``, not ``gone``); only those on runs of ``study`` when given (whatever their
        design: an extension or an older one), with those whose study is unknown."""
        if "claims" not in self._present:
            return {}
        with self._read() as conn:
            return self._live_claims(conn, lease_s, gone, study)

    def _now(self, conn: sa.Connection) -> float:
        """The time heartbeats are measured in: the server's clock for PostgreSQL, whose drivers
        may run on machines whose clocks differ; this machine's for an SQLite file."""
        if self.postgres:
            return float(
                conn.execute(sa.select(sa.func.extract("epoch", sa.func.clock_timestamp()))).scalar()
            )
        return time.time()

    def _live_claims(
        self, conn: sa.Connection, lease_s: float, gone: Callable[[str], bool], study: str | None = None
    ) -> dict[str, str]:
        now = self._now(conn)
        claims = self.tables["claims"]
        query = sa.select(claims.c.run_id, claims.c.owner, claims.c.heartbeat)
        if study is not None:
            query = query.where(sa.or_(claims.c.study == study, claims.c.study.is_(None)))
        rows = conn.execute(query).all()
        return {rid: who for rid, who, beat in rows if now - beat < lease_s and not gone(who)}

    def release(self, owner: str) -> None:
        """Drop ``owner``'s claims (it stopped: its unfinished runs are free for the next driver)."""
        claims = self.tables["claims"]
        with self._write("the release of this driver's claims") as conn:
            conn.execute(sa.delete(claims).where(claims.c.owner == owner))

    def holder(self, run_id: str) -> str | None:
        """The owner of the claim on ``run_id``, or None when no driver claims it."""
        claims = self.tables["claims"]
        with self._read() as conn:
            return conn.execute(sa.select(claims.c.owner).where(claims.c.run_id == run_id)).scalar()

    def claimed(self, owner: str | None = None) -> dict[str, str]:
        """``{run_id: owner}`` of the claims held now (``owner``'s only, when given)."""
        if "claims" not in self._present:
            return {}
        claims = self.tables["claims"]
        with self._read() as conn:
            rows = conn.execute(sa.select(claims.c.run_id, claims.c.owner)).all()
        return {rid: who for rid, who in rows if owner is None or who == owner}

    def write_mc(self, run_id: str, entries: list[dict[str, Any]]) -> None:
        """Store Monte Carlo dropout ``entries`` (as in :attr:`RunResult.mc`) of a stored run,
        replacing those with the same number of samples, all or nothing."""
        with self._write(f"the MC dropout metrics of run {run_id}") as conn:
            conn.execute(*self._replace("mc", _mc_rows(run_id, entries)))

    def write_study(self, study: StudySpec) -> None:
        """Keep the study's definition (grid, seeds, report settings) beside its runs."""
        with self._write(f"the definition of study {study.name!r}") as conn:
            conn.execute(
                *self._replace(
                    "studies", [{"name": study.name, "definition": json.dumps(study.definition())}]
                )
            )

    def archive_study(self, study: str) -> str | None:
        """Rename the runs and definition of ``study`` to ``STUDY@archived-N`` (the first free N),
        in one transaction; returns that name, or None when the store holds nothing of ``study``.

        Nothing is deleted: the archived runs keep their history and can be reported with
        ``--study``. Their ids become those of the archived name, so the study can run again.
        """
        if not self.count_runs(study) and self.study_definition(study) is None:
            return None
        runs, studies = self.tables["runs"], self.tables["studies"]
        taken = set(self.studies())
        with self._read() as conn:  # one connection at a time: an SQLite store has only one
            taken |= set(conn.execute(sa.select(studies.c.name)).scalars())
            rows = conn.execute(
                sa.select(runs.c.id, runs.c.spec, runs.c.seed).where(runs.c.study == study)
            ).all()
        n = 1
        while f"{study}@archived-{n}" in taken:
            n += 1
        archived = f"{study}@archived-{n}"
        with self._write(f"the archive of study {study!r}") as conn:
            # ids change in every table keyed by run: check the references at commit
            conn.exec_driver_sql(
                "SET CONSTRAINTS ALL DEFERRED" if self.postgres else "PRAGMA defer_foreign_keys = ON"
            )
            for old_id, spec, seed in rows:
                settings = {k: v for k, v in json.loads(spec).items() if k != "seed"}
                new_id = spec_run_id(archived, settings, seed)
                for table in ("epochs", "mc", "learned_rates", "weights"):
                    t = self.tables[table]
                    conn.execute(sa.update(t).where(t.c.run_id == old_id).values(run_id=new_id))
                conn.execute(sa.update(runs).where(runs.c.id == old_id).values(id=new_id, study=archived))
            conn.execute(sa.update(studies).where(studies.c.name == study).values(name=archived))
        return archived

    # -- reading ---------------------------------------------------------------------------
    def study_definition(self, study: str) -> dict[str, Any] | None:
        """The definition :meth:`write_study` kept for ``study``, or None (stores made before it)."""
        if "studies" not in self._present:  # a store made before the studies table, opened read-only
            return None
        studies = self.tables["studies"]
        with self._read() as conn:
            text = conn.execute(sa.select(studies.c.definition).where(studies.c.name == study)).scalar()
        return json.loads(text) if text is not None else None

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

    def studies(self) -> list[str]:
        """Names of the studies in the store, in the order they were first written."""
        runs = self.tables["runs"]
        query = sa.select(runs.c.study).group_by(runs.c.study).order_by(sa.func.min(self._order))
        with self._read() as conn:
            return list(conn.execute(query).scalars())

    def resolve_study(self, study: str | None) -> str:
        """``study`` if stored, or the only study; otherwise a DropoutlabError listing them."""
        names = self.studies()
        if not names:
            raise DropoutlabError(f"{self.name}: the store has no runs yet")
        if study is None:
            if len(names) > 1:
                raise DropoutlabError(
                    f"{self.name} holds several studies; choose one with --study: {', '.join(names)}"
                )
            return names[0]
        if study not in names:
            raise DropoutlabError(f"study {study!r} is not in {self.name}; it holds: {', '.join(names)}")
        return study

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
            if "mc" in self._present:  # a store written before MC dropout, opened read-only, has none
                for run_id, samples, *values, reliability in conn.execute(
                    self._of_study("mc", study, "run_id", "samples")
                ):
                    metrics = dict(zip(MC_METRICS, values, strict=True))
                    mc[run_id].append({"samples": samples, **metrics, "reliability": json.loads(reliability)})
            learned: dict[str, list[dict[str, Any]]] = {r["id"]: [] for r in stored}
            if "learned_rates" in self._present:  # not in a store written before concrete dropout
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
            record["kept_epoch"] = _kept_epoch(record)
            records.append(record)
        return records

    def weights(self, run_id: str) -> bytes | None:
        """The weights ``dropoutlab run --keep-weights`` stored for a run (``torch.save`` bytes), or None."""
        if "weights" not in self._present:  # a store written before weights were kept
            return None
        weights = self.tables["weights"]
        with self._read() as conn:
            return conn.execute(sa.select(weights.c.state).where(weights.c.run_id == run_id)).scalar()

    def runs_with_weights(self) -> set[str]:
        """Ids of the runs whose weights the store holds (``dropoutlab run --keep-weights``)."""
        if "weights" not in self._present:
            return set()
        with self._read() as conn:
            return set(conn.execute(sa.select(self.tables["weights"].c.run_id)).scalars())

    def checkpoint_folder(self) -> Path:
        """Where ``--checkpoint-every`` saves stacks: ``STORE.checkpoints`` beside an SQLite file;
        for a PostgreSQL store, ``HOST-PORT-DB.checkpoints`` in the current folder."""
        if self.path is not None:
            return self.path.with_name(self.path.name + ".checkpoints").resolve()
        url = self.engine.url
        database = url.database or url.username  # PostgreSQL's default database is the user's
        return Path(f"{url.host or 'local'}-{url.port or 5432}-{database}.checkpoints").resolve()

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


def _mc_rows(run_id: str, entries) -> list[dict[str, Any]]:
    """Rows of the ``mc`` table for a run's Monte Carlo dropout ``entries``."""
    return [
        {"run_id": run_id, "samples": m["samples"], **{k: _real(m[k]) for k in MC_METRICS},
         "reliability": json.dumps(m["reliability"])}
        for m in entries
    ]  # fmt: skip


def _cell(value: Any) -> Any:
    """A parameter's value as one table cell: a list (``augment``) as ``"crop+flip"``, ``"none"`` when empty."""
    if isinstance(value, list):
        return "+".join(map(str, value)) or "none"
    return value


def runs_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The runs DataFrame built from export records."""
    import pandas as pd  # here, not at the top: `dropoutlab run` trains without pandas

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
    import pandas as pd

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
