"""The store's tables and their numbered migrations.

:func:`tables` declares every table and column with the schema version that added it, and
:data:`STEPS` names each version. A migration is the difference between two consecutive
versions of that one declaration: the tables and the columns the newer one adds (every
change so far adds; one that does not, a renamed column or rewritten rows, would need code
of its own in :func:`upgrade`).
:func:`upgrade` applies the steps a store lacks, in the caller's transaction, so that an
older store is upgraded whole or not at all; :func:`readable` gives a store opened
read-only (and so not upgraded) the tables of today, its missing ones empty and its missing
columns NULL, so no reader asks which layout it has.

Why not Alembic (as Optuna's RDB storage does): every step is an addition that the table
declaration already describes for both SQLite and PostgreSQL, so a step is one line here
instead of a revision script, an ``env.py`` and a second version table beside ``meta``;
Alembic would be a new dependency and import for ``dropoutlab run``, and it could not tell
the layouts of the stores written before versions were counted (all say ``1``, see
:func:`stored_version`) without the same look at their tables that this module does once.

Versions 1 to 7 are the layouts dropoutlab had before this module, all stamped ``1`` in
``meta``; version 8 is the first stamped with its number.
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa

from dropoutlab.errors import DropoutlabError
from dropoutlab.runs import EPOCH_METRICS, MC_METRICS
from dropoutlab.version import __version__

STEPS: dict[int, str] = {  # the commit that made each change, before versions were counted
    1: "runs, epochs: runs and their epochs",  # 985120d
    2: "studies: study definitions",  # 6e608a2
    3: "mc: Monte Carlo dropout metrics",  # 5da716b
    4: "learned_rates: learned dropout rates",  # 1c5a2d5
    5: "weights: kept weights",  # 07cb431
    6: "claims: which driver trains which run",  # 4432765 (PostgreSQL stores begin at 5c31054)
    7: "claims.study: the study of each claim",  # 65bdd42
    8: "looks: the looks of sequential studies",
}
SCHEMA_VERSION: int = max(STEPS)
UNCOUNTED = 1  # what every store written before versions were counted says, whatever its layout


def tables(postgres: bool, version: int = SCHEMA_VERSION) -> sa.MetaData:
    """The store's tables as of schema ``version`` (0: none). SQLite orders runs by its implicit
    ``rowid``; PostgreSQL has none, so there ``runs`` has a ``seq`` column that numbers the runs
    in the order they were written (there since the first PostgreSQL store, at version 6)."""
    md = sa.MetaData()

    def table(since: int, name: str, *items: sa.SchemaItem) -> None:
        if version >= since:
            sa.Table(name, md, *items)

    def since(added: int, *columns: sa.Column) -> tuple[sa.Column, ...]:
        return columns if version >= added else ()

    def run_ref() -> sa.Column:
        # DEFERRABLE: archiving a study renames run ids in every table within one transaction
        fk = sa.ForeignKey("runs.id", ondelete="CASCADE", deferrable=True, initially="IMMEDIATE")
        return sa.Column("run_id", sa.Text, fk, primary_key=True)

    table(1, "meta", sa.Column("key", sa.Text, primary_key=True), sa.Column("value", sa.Text, nullable=False))
    table(
        1, "runs",
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
    table(1, "epochs", run_ref(), sa.Column("epoch", sa.Integer, primary_key=True),
          *(sa.Column(m, sa.Float) for m in EPOCH_METRICS))  # fmt: skip
    table(2, "studies", sa.Column("name", sa.Text, primary_key=True),
          sa.Column("definition", sa.Text, nullable=False))  # fmt: skip
    table(3, "mc", run_ref(), sa.Column("samples", sa.Integer, primary_key=True),
          *(sa.Column(m, sa.Float) for m in MC_METRICS), sa.Column("reliability", sa.Text, nullable=False))  # fmt: skip
    table(4, "learned_rates", run_ref(), sa.Column("epoch", sa.Integer, primary_key=True),
          sa.Column("slot", sa.Text, primary_key=True), sa.Column("rate", sa.Float, nullable=False))  # fmt: skip
    table(5, "weights", run_ref(), sa.Column("state", sa.LargeBinary, nullable=False))
    table(6, "claims", sa.Column("run_id", sa.Text, primary_key=True),
          sa.Column("owner", sa.Text, nullable=False), sa.Column("heartbeat", sa.Float, nullable=False),
          *since(7, sa.Column("study", sa.Text)))  # fmt: skip
    table(8, "looks", sa.Column("study", sa.Text, primary_key=True), sa.Column("look", sa.Integer, primary_key=True),
          sa.Column("record", sa.Text, nullable=False), sa.Column("written_at", sa.Text, nullable=False))  # fmt: skip
    return md


def added(postgres: bool, version: int) -> tuple[list[sa.Table], list[sa.Column]]:
    """What step ``version`` adds to the layout of ``version - 1``: new tables, new columns."""
    old, new = tables(postgres, version - 1).tables, tables(postgres, version).tables
    new_tables = [t for name, t in new.items() if name not in old]
    new_columns = [c for name, t in new.items() if name in old for c in t.c if c.name not in old[name].c]
    return new_tables, new_columns


def create(conn: sa.Connection, postgres: bool) -> None:
    """Create the tables of a new store, at :data:`SCHEMA_VERSION`."""
    tables(postgres).create_all(conn)
    _stamp(conn, SCHEMA_VERSION)


def upgrade(conn: sa.Connection, postgres: bool, found: int) -> None:
    """Bring a store at schema ``found`` to :data:`SCHEMA_VERSION` inside the transaction of
    ``conn`` (both SQLite and PostgreSQL change tables transactionally: all steps or none)."""
    for version in range(found + 1, SCHEMA_VERSION + 1):
        new_tables, new_columns = added(postgres, version)
        for table in new_tables:
            table.create(conn)
        for column in new_columns:  # nullable, as a column added to rows that exist must be
            name = conn.dialect.identifier_preparer.format_table(column.table)
            ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE {name} ADD COLUMN {ddl}")
    _stamp(conn, SCHEMA_VERSION)


def upgrade_line(name: str, found: int) -> str:
    """The one line that says a store was upgraded, and what that added."""
    steps = "; ".join(STEPS[v] for v in range(found + 1, SCHEMA_VERSION + 1))
    return (
        f"{name}: upgraded the store from schema {found} to {SCHEMA_VERSION} (added {steps}); "
        "a dropoutlab that reads an older schema can no longer open it"
    )


def _stamp(conn: sa.Connection, version: int) -> None:
    meta = tables(False, 1).tables["meta"]
    changed = conn.execute(sa.update(meta).where(meta.c.key == "schema").values(value=str(version)))
    if not changed.rowcount:
        conn.execute(sa.insert(meta).values(key="schema", value=str(version)))


def stored_version(conn: sa.Connection, name: str, postgres: bool, present: set[str]) -> int:
    """The schema version of the store on ``conn`` whose tables are ``present``; a DropoutlabError
    (one line) for a database that is not a dropoutlab store or one of a newer dropoutlab."""
    kind = "a PostgreSQL database" if postgres else "an SQLite database"
    if not present:
        raise DropoutlabError(f"{name}: holds no runs yet; run a study first (`dropoutlab run STUDY.toml`)")
    if "meta" not in present or "runs" not in present:
        shown = ", ".join(map(repr, sorted(present)[:8])) + (", ..." if len(present) > 8 else "")
        raise DropoutlabError(
            f"{name}: not a dropoutlab store: {kind} of another program (its tables: "
            f"{shown}); it was left unchanged; choose another --store"
        )
    try:
        with conn.begin_nested():  # a meta table of another program may lack these columns
            text = conn.execute(sa.text("SELECT value FROM meta WHERE key = 'schema'")).scalar()
    except sa.exc.DBAPIError:
        text = None
    if text is None or not str(text).isdigit() or int(text) < 1:
        raise DropoutlabError(
            f"{name}: not a dropoutlab store: its meta table has no schema version; "
            "it was left unchanged; choose another --store"
        )
    version = int(text)
    if version > SCHEMA_VERSION:
        raise DropoutlabError(
            f"{name}: store schema {version} was written by a newer dropoutlab; this one ({__version__}) "
            f"reads schemas 1 to {SCHEMA_VERSION}: pip install -U dropoutlab"
        )
    if version == UNCOUNTED:
        return _uncounted_layout(conn, postgres, present)
    return version


def _uncounted_layout(conn: sa.Connection, postgres: bool, present: set[str]) -> int:
    """The version of a store stamped ``1`` before versions were counted: the last step whose
    tables and columns it has (steps only added, so it has those of every earlier step)."""
    inspector = sa.inspect(conn)
    columns = {name: {c["name"] for c in inspector.get_columns(name)} for name in present}
    found = 0
    for version in range(1, SCHEMA_VERSION + 1):
        new_tables, new_columns = added(postgres, version)
        if not all(t.name in present for t in new_tables) or not all(
            c.name in columns.get(c.table.name, ()) for c in new_columns
        ):
            break
        found = version
    return found


def readable(latest: Mapping[str, sa.Table], postgres: bool, version: int) -> dict[str, sa.FromClause]:
    """The ``latest`` tables (:func:`tables` at :data:`SCHEMA_VERSION`) as a store at ``version``
    can serve them without being changed (opened read-only): a table it lacks reads as an
    empty one, a column it lacks as NULL. Only for reading."""
    old = tables(postgres, version).tables
    shown: dict[str, sa.FromClause] = {}
    for name, table in latest.items():
        if name in old and all(c.name in old[name].c for c in table.c):
            shown[name] = table
            continue
        has = old[name].c if name in old else None
        columns = [
            table.c[c.name] if has is not None and c.name in has else sa.cast(sa.null(), c.type).label(c.name)
            for c in table.c
        ]
        query = sa.select(*columns)
        shown[name] = (query if has is not None else query.where(sa.false())).subquery(name)
    return shown
