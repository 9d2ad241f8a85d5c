"""Opening a store (its checks, and the upgrade of an older schema), its connections, and the
two kinds of transaction every other part of the store goes through: :meth:`StoreBase._read`
and :meth:`StoreBase._write`."""

from __future__ import annotations

import copy
import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from dropoutlab.errors import DropoutlabError
from dropoutlab.runs import DEFAULT_STORE
from dropoutlab.store import connection, schema
from dropoutlab.store.connection import (
    cannot_open,
    check_store_file,
    check_writable,
    corrupt,
    is_malformed,
    is_url,
    postgres_engine,
    reason,
    sqlite_damage,
    sqlite_engine,
    table_names,
    url_secrets,
)

log = logging.getLogger("dropoutlab.store")  # the package's one logger, whichever module speaks

_Store = TypeVar("_Store", bound="StoreBase")
_SCHEMA_LOCK = 0x64726F70  # pg_advisory_xact_lock key: drivers creating one PostgreSQL store take turns


def real(value: Any) -> Any:
    """A metric as stored: NaN becomes NULL in both databases (SQLite does so by itself)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


class StoreBase:
    """The part of :class:`~dropoutlab.store.Store` that opens, checks, upgrades and closes a
    store, and runs its transactions; ``Store`` documents the arguments.

    ``tables`` maps each table name to what a query selects from: the table itself, or, for
    an older store opened read-only, a stand-in of today's layout (:func:`schema.readable`).
    ``schema_version`` is the version the store is at (after any upgrade).
    """

    def __init__(
        self, location: str | Path = DEFAULT_STORE, create: bool = True, readonly: bool = False
    ) -> None:
        self.location = location
        self.readonly = readonly
        self.create = create and not readonly
        self.postgres = is_url(location)
        self._secrets = url_secrets(location)  # masked in every message a driver gives
        if self.postgres:
            self.path = None
            self.engine, self.name = postgres_engine(str(location), self.readonly)
        else:
            self.path = Path(location)
            self.name = str(self.path)
            self._check_file()
            self.engine = sqlite_engine(self.path, self.readonly)
            network = None if self.readonly else connection.network_file_system(self.path)
            if network:
                log.warning(
                    "%s is on a network file system (%s), where SQLite's locks are not to be trusted with "
                    "several writers: for drivers on several machines use --store postgresql://USER@HOST/DB",
                    self.path, network,
                )  # fmt: skip
        self.tables: dict[str, Any] = dict(schema.tables(self.postgres).tables)
        try:
            with self.engine.connect():  # a server that is down or refuses us: said here, in one line
                pass
            found = self._open()
        except sa.exc.DBAPIError as exc:
            self.engine.dispose()
            raise cannot_open(self.name, self.postgres, exc, self._secrets) from None
        except DropoutlabError:
            self.engine.dispose()
            raise
        if found < schema.SCHEMA_VERSION and self.readonly:
            self.tables = schema.readable(self.tables, self.postgres, found)
        elif found < schema.SCHEMA_VERSION:
            log.warning(schema.upgrade_line(self.name, found))
        self.schema_version = found if self.readonly else schema.SCHEMA_VERSION
        log.info(
            "%s: store opened %s (schema %d)",
            self.name,
            "read-only" if self.readonly else "for writing",
            found,
        )
        runs = self.tables["runs"]
        self._order = runs.c.seq if self.postgres else sa.literal_column("runs.rowid")
        self._run_columns = [c for c in runs.c if c.name != "seq"]

    def _open(self) -> int:
        """Check the store (create it when new, upgrade it when older and writable); the schema
        version it was found at."""
        if self.readonly:
            with self._read() as conn:
                return self._stored_version(conn, table_names(conn))
        with self._write("the store's tables") as conn:
            if self.postgres:
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
            present = table_names(conn)
            if not present and self.create:
                schema.create(conn, self.postgres)
                return schema.SCHEMA_VERSION
            found = self._stored_version(conn, present)
            if found < schema.SCHEMA_VERSION:
                schema.upgrade(conn, self.postgres, found)
            return found

    def _stored_version(self, conn: sa.Connection, present: set[str]) -> int:
        """``schema.stored_version``; an SQLite file whose pages are damaged is called corrupt,
        not "no schema version" (a damaged page can hide the meta table's rows)."""
        try:
            return schema.stored_version(conn, self.name, self.postgres, present)
        except DropoutlabError:
            damage = None if self.postgres else sqlite_damage(conn)
            if damage:
                raise corrupt(self.name, damage) from None
            raise

    def _check_file(self) -> None:
        if self.path.is_symlink() and not self.path.exists():
            raise DropoutlabError(
                f"{self.path}: a dangling symbolic link (to {os.readlink(self.path)}, which does not exist); "
                "restore what it points to, or remove the link and choose another --store"
            )
        if not self.create and not self.path.exists():
            raise DropoutlabError(
                f"{self.path}: no store here; run a study first (`dropoutlab run STUDY.toml`)"
            )
        if self.path.is_dir():
            raise DropoutlabError(f"{self.path}: is a folder; the store is one file, e.g. {DEFAULT_STORE}")
        check_store_file(self.path)
        if not self.readonly:
            check_writable(self.path)

    def new_connection(self: _Store) -> _Store:
        """The same store through a connection of its own, for another thread (the lease's
        heartbeat). It skips the checks of a first open on purpose: they open and close the
        store's file, and closing any descriptor of a file drops every POSIX lock this process
        holds on it, SQLite's included, so another process could write in the middle of one
        of our transactions and corrupt the file."""
        twin = copy.copy(self)
        if self.postgres:
            twin.engine = postgres_engine(str(self.location), self.readonly)[0]
        else:
            twin.engine = sqlite_engine(self.path, self.readonly)
        return twin

    def close(self) -> None:
        """Close the database connection."""
        self.engine.dispose()

    def __enter__(self: _Store) -> _Store:
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
            if is_malformed(exc):
                raise corrupt(self.name, reason(exc)) from None
            raise DropoutlabError(
                f"{self.name}: cannot read the store ({reason(exc, self._secrets)}); nothing was changed"
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
                f"{self.name}: cannot write {what} ({reason(exc, self._secrets)}); the store keeps every run written before "
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
