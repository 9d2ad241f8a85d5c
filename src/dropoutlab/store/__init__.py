"""The store: the single source of truth, written one transaction per finished run.

A store is one SQLite file (the default, ``dropoutlab.db``) or a PostgreSQL database
(``--store postgresql://USER@HOST/DB``), for a study that several machines write at once or
whose folder sits on a network file system, where SQLite cannot serve. Both go through
SQLAlchemy Core with the same tables, so everything above this package reads one kind of store.

:class:`Store` is the one public face; its parts live one job to a module:

- ``schema``: the tables, with the version that added each, and the numbered migrations
- ``connection``: where a store lives (file checks, URLs, network file systems), its engine
- ``base``: opening (checks, creation, upgrade of an older store), transactions
- ``records``: runs and their records; ``studies``: definitions, looks, archives
- ``claims``: claims, leases and heartbeats; ``weights``: kept weights, checkpoint folders
- ``frames``: the DataFrame views (``runs()``, ``history()``)
"""

from __future__ import annotations

from dropoutlab.runs import DEFAULT_STORE, EPOCH_METRICS
from dropoutlab.store.base import StoreBase
from dropoutlab.store.claims import Claims
from dropoutlab.store.connection import (
    NETWORK_FILE_SYSTEMS,
    POSTGRES_DRIVER,
    SQLITE_HEADER,
    check_store_file,
    check_writable,
    holds_store,
    is_url,
    network_file_system,
)
from dropoutlab.store.frames import Frames, config_label, history_frame, runs_frame
from dropoutlab.store.schema import SCHEMA_VERSION
from dropoutlab.store.studies import Studies
from dropoutlab.store.weights import Weights

__all__ = [
    "DEFAULT_STORE",
    "EPOCH_METRICS",
    "NETWORK_FILE_SYSTEMS",
    "POSTGRES_DRIVER",
    "SCHEMA_VERSION",
    "SQLITE_HEADER",
    "Store",
    "check_store_file",
    "check_writable",
    "config_label",
    "history_frame",
    "holds_store",
    "is_url",
    "network_file_system",
    "runs_frame",
]


class Store(Studies, Claims, Weights, Frames, StoreBase):
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

    A store written by an older dropoutlab is upgraded to :data:`SCHEMA_VERSION` when opened
    for writing, in one transaction, and the ``dropoutlab.store`` logger says so in one line
    (a warning: older versions can no longer open it); opened read-only it is read as it is,
    the tables it lacks empty. A store of a newer dropoutlab is refused in one line naming
    both versions.
    """
