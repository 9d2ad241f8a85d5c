"""Schema versions: stores written by older dropoutlab (``tests/data``, made by old commits) are
read as they are when opened read-only, upgraded in one transaction when opened for writing,
and report the numbers the old code reported; a newer store is refused; the looks of a
sequential study are written once each and move with their study."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from test_store_hostile import one_error

from dropoutlab.errors import DropoutlabError
from dropoutlab.store import SCHEMA_VERSION, Store
from dropoutlab.store.schema import STEPS, added, tables

DATA = Path(__file__).parent / "data"
UPGRADED = "upgraded the store from schema"


def expected_frames(fixture: str) -> dict[str, pd.DataFrame]:
    """``runs()`` and ``history()`` as the commit that wrote ``fixture`` computed them."""
    raw = json.loads((DATA / f"{fixture}-frames.json").read_text())
    return {name: pd.DataFrame(rows) for name, rows in raw.items()}


def frames(store: Store) -> dict[str, pd.DataFrame]:
    return {"runs": store.runs(), "history": store.history()}


def assert_same_numbers(got: dict[str, pd.DataFrame], expected: dict[str, pd.DataFrame], skip=()) -> None:
    """Every column the old code had holds the same values now (new columns may be added)."""
    for name, old in expected.items():
        columns = [c for c in old.columns if c not in skip]
        assert set(columns) <= set(got[name].columns), name
        pd.testing.assert_frame_equal(got[name][columns], old[columns], check_dtype=False)


def upgrade_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if UPGRADED in r.getMessage()]


def layout(conn: sa.Connection, types: bool = True, schema: str | None = None) -> dict[str, set[tuple]]:
    """Each table's columns as the database describes them: name, whether a key, and (with
    ``types``) the declared type and whether nullable."""
    inspector = sa.inspect(conn)
    found = {}
    for name in inspector.get_table_names(schema):
        keys = inspector.get_pk_constraint(name, schema)["constrained_columns"]
        found[name] = {
            (c["name"], c["name"] in keys, *((str(c["type"]), c["nullable"]) if types else ()))
            for c in inspector.get_columns(name, schema)
        }
    return found


# ---------------------------------------------------------------- the steps themselves


def test_each_step_adds_tables_or_nullable_columns_and_the_last_is_the_schema_version():
    assert sorted(STEPS) == list(range(1, SCHEMA_VERSION + 1))
    for postgres in (False, True):
        for version in STEPS:
            new_tables, new_columns = added(postgres, version)
            assert new_tables or new_columns, version
            assert all(c.nullable for c in new_columns), version  # rows that exist get NULL
        assert set(tables(postgres).tables) == {
            "meta", "runs", "epochs", "studies", "mc", "learned_rates", "weights", "claims", "looks"
        }  # fmt: skip


# ---------------------------------------------------------------- SQLite stores of older commits


@pytest.mark.parametrize("fixture, version", [("store-v1", 1), ("store-v6", 6)])
def test_an_older_sqlite_store_is_read_as_it_is_then_upgraded_once_with_the_same_frames(
    tmp_path, caplog, fixture, version
):
    path = tmp_path / "old.db"
    shutil.copyfile(DATA / f"{fixture}.sqlite", path)
    claims = {}
    if version >= 6:  # a claim of a driver of then, whose study the claims table did not record
        claims = {"someone's-run": "them"}
        with sqlite3.connect(path) as conn:
            conn.execute("INSERT INTO claims VALUES ('someone''s-run', 'them', ?)", (time.time(),))
        conn.close()
    before = path.read_bytes()
    caplog.set_level("INFO", logger="dropoutlab.store")
    with Store(path, readonly=True) as old:
        assert old.schema_version == version
        as_it_is = frames(old)
        assert old.looks("tiny") == [] and old.runs_with_weights() == set()
        assert (old.study_definition("tiny") is None) == (version < 2)  # no studies table before 2
        assert old.live_claims(60.0, study="tiny") == claims == old.claimed()
    assert path.read_bytes() == before and not upgrade_lines(caplog)
    assert_same_numbers(as_it_is, expected_frames(fixture))

    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        upgraded = frames(store)
        assert store.studies() == ["tiny"] and len(store.finished_ids("tiny")) == 4
        assert store.live_claims(60.0, study="tiny") == claims == store.live_claims(60.0, study="other")
    (line,) = upgrade_lines(caplog)
    assert line.startswith(f"{path}: {UPGRADED} {version} to {SCHEMA_VERSION} (added ")
    assert STEPS[SCHEMA_VERSION] in line and (version > 1 or STEPS[2] in line)
    for name, frame in as_it_is.items():
        pd.testing.assert_frame_equal(upgraded[name], frame)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchall() == [
            (str(SCHEMA_VERSION),)
        ]
    conn.close()

    caplog.clear()
    with Store(path) as store:  # upgraded once: the next open says nothing
        assert store.archive_study("tiny") == "tiny@archived-1"  # ids renamed under the old keys
        assert len(store.history("tiny@archived-1")) == len(as_it_is["history"])
    assert not upgrade_lines(caplog)


# The first store declared its columns in its own SQL (REAL, a key that may be NULL), which
# SQLite reads as SQLAlchemy's FLOAT and NOT NULL key: compared by names and keys alone.
@pytest.mark.parametrize("fixture, types", [("store-v1", False), ("store-v6", True)])
def test_an_upgraded_sqlite_store_has_the_layout_of_a_new_one(tmp_path, fixture, types):
    shutil.copyfile(DATA / f"{fixture}.sqlite", tmp_path / "old.db")
    Store(tmp_path / "old.db").close()
    Store(tmp_path / "new.db").close()
    layouts = []
    for name in ("old.db", "new.db"):
        engine = sa.create_engine(f"sqlite:///{tmp_path / name}")
        with engine.connect() as conn:
            layouts.append(layout(conn, types))
        engine.dispose()
    assert layouts[0] == layouts[1]


def test_an_upgrade_is_all_or_nothing(tmp_path):
    path = tmp_path / "old.db"
    shutil.copyfile(DATA / "store-v6.sqlite", path)
    with sqlite3.connect(path) as conn:  # a last step that cannot be taken: its table is there
        conn.execute("CREATE TABLE looks (anything TEXT)")
    conn.close()
    with pytest.raises(DropoutlabError, match="looks already exists"):
        Store(path)
    with sqlite3.connect(path) as conn:  # step 7 (claims.study) was rolled back with it
        assert "study" not in {row[1] for row in conn.execute("PRAGMA table_info(claims)")}
        assert conn.execute("SELECT value FROM meta").fetchall() == [("1",)]
    conn.close()


def test_a_store_of_a_newer_dropoutlab_is_refused_in_one_line_naming_both_versions(capsys, tmp_path):
    path = tmp_path / "new.db"
    Store(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION + 1),))
    conn.close()
    before = path.read_bytes()
    for readonly in (False, True):
        with pytest.raises(DropoutlabError) as refused:
            Store(path, readonly=readonly)
        message = str(refused.value)
        assert f"store schema {SCHEMA_VERSION + 1} was written by a newer dropoutlab" in message
        assert f"reads schemas 1 to {SCHEMA_VERSION}" in message and "\n" not in message
    assert "written by a newer dropoutlab" in one_error(capsys, "export", "--store", path)
    assert path.read_bytes() == before


# ---------------------------------------------------------------- PostgreSQL


def load_v6_dump(url: str) -> None:
    """The PostgreSQL store that commit ca820cd wrote (``pg_dump``, tests/data/README.md)."""
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    with engine.begin() as conn:
        conn.exec_driver_sql((DATA / "store-v6-postgres.sql").read_text())
    engine.dispose()


def load_v1_rows(url: str) -> None:
    """The first layout in PostgreSQL (which it never had: PostgreSQL came at 6): its tables as
    schema 1 declares them, and the rows of the first commit's SQLite store."""
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    first = tables(True, 1)
    source = sqlite3.connect(DATA / "store-v1.sqlite")
    source.row_factory = sqlite3.Row
    with engine.begin() as conn:
        first.create_all(conn)
        for name in ("meta", "runs", "epochs"):
            rows = [dict(r) for r in source.execute(f"SELECT * FROM {name} ORDER BY rowid")]
            conn.execute(sa.insert(first.tables[name]), rows)
    source.close()
    engine.dispose()


@pytest.mark.parametrize(
    "load, version, fixture, skip",
    [(load_v1_rows, 1, "store-v1", ()), (load_v6_dump, 6, "store-v6", ("wall_s",))],
    ids=["v1-rows", "v6-dump"],
)
def test_an_older_postgresql_store_is_read_as_it_is_then_upgraded_with_the_same_frames(
    postgres_url, caplog, load, version, fixture, skip
):
    load(postgres_url)
    caplog.set_level("INFO", logger="dropoutlab.store")
    with Store(postgres_url, readonly=True) as old:
        assert old.schema_version == version
        as_it_is = frames(old)
        assert old.looks("tiny") == [] and old.live_claims(60.0, study="tiny") == {}
    assert not upgrade_lines(caplog)
    assert_same_numbers(as_it_is, expected_frames(fixture), skip)
    with Store(postgres_url) as store:
        upgraded = frames(store)
        store.write_look("tiny", 1, {"decision": "continue"})
        assert store.looks("tiny") == [{"decision": "continue", "look": 1}]
        with store.engine.connect() as conn:
            upgraded_layout = layout(conn)
            assert conn.exec_driver_sql("SELECT value FROM meta").scalar() == str(SCHEMA_VERSION)
    assert len(upgrade_lines(caplog)) == 1
    for name, frame in as_it_is.items():
        pd.testing.assert_frame_equal(upgraded[name], frame)
    with Store(postgres_url) as store:  # the old foreign keys let a study be archived
        assert store.archive_study("tiny") == "tiny@archived-1"
        assert len(store.history("tiny@archived-1")) == len(as_it_is["history"])
        assert store.looks("tiny@archived-1") == [{"decision": "continue", "look": 1}]
    # the same layout as a new store's
    engine = sa.create_engine(sa.make_url(postgres_url).set(drivername="postgresql+psycopg"))
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA fresh")
        conn.exec_driver_sql("SET LOCAL search_path TO fresh")
        tables(True).create_all(conn)
        fresh = layout(conn, schema="fresh")
    assert set(fresh) == set(tables(True).tables) and fresh == upgraded_layout
    engine.dispose()


# ---------------------------------------------------------------- the looks of a sequential study


def test_looks_are_kept_in_order_once_each_and_move_with_their_archived_study(store_at):
    with Store(store_at) as store:
        store.write_look("seq", 2, {"decision": "stop", "p": 0.01})
        store.write_look("seq", 1, {"decision": "continue", "p": 0.2, "seeds": [0, 1]})
        store.write_look("other", 1, {"decision": "continue"})
        assert store.looks("seq") == [
            {"decision": "continue", "p": 0.2, "seeds": [0, 1], "look": 1},
            {"decision": "stop", "p": 0.01, "look": 2},
        ]
        with pytest.raises(
            DropoutlabError, match=r"look 2 of study 'seq' is stored already .* next look is 3"
        ):
            store.write_look("seq", 2, {"decision": "continue"})
        for bad in (0, -1, 1.5, True):
            with pytest.raises(DropoutlabError, match="not a look number"):
                store.write_look("seq", bad, {})
        assert [look["decision"] for look in store.looks("seq")] == ["continue", "stop"]  # unchanged

        assert store.archive_study("seq") == "seq@archived-1"
        assert store.looks("seq") == []
        assert [look["look"] for look in store.looks("seq@archived-1")] == [1, 2]
        assert store.looks("other") == [{"decision": "continue", "look": 1}]
        store.write_look("seq", 1, {"decision": "continue"})  # the study starts its looks again
        assert store.archive_study("seq") == "seq@archived-2"
    with Store(store_at, readonly=True) as store:
        assert len(store.looks("seq@archived-1")) == 2 and len(store.looks("seq@archived-2")) == 1


def test_replace_archives_a_studys_looks_with_its_runs(capsys, tiny_study, store_at):
    from test_store_hostile import run_cli

    assert run_cli(capsys, "run", tiny_study, "--store", store_at, "--no-progress", "--workers", "1")[0] == 0
    with Store(store_at) as store:
        store.write_look("tiny", 1, {"decision": "continue"})
    args = ("run", tiny_study, "--store", store_at, "--no-progress", "--workers", "1", "--replace")
    assert run_cli(capsys, *args)[0] == 0
    with Store(store_at, readonly=True) as store:
        assert store.looks("tiny") == []
        assert store.looks("tiny@archived-1") == [{"decision": "continue", "look": 1}]
        assert store.count_runs("tiny@archived-1") == 4


def take_look_at_barrier(location, barrier, who):
    """In a forked child: write look 1 of study ``seq`` once all children reach ``barrier``;
    exit 0 if it was written, 3 if refused as taken, 1 otherwise."""
    with Store(location) as store:
        barrier.wait()
        try:
            store.write_look("seq", 1, {"by": who})
        except DropoutlabError as exc:
            os._exit(3 if "stored already" in str(exc) else 1)
        except Exception:
            os._exit(1)
    os._exit(0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks")
def test_drivers_taking_one_look_at_once_take_it_once(store_at):
    Store(store_at).close()
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=take_look_at_barrier, args=(store_at, barrier, who)) for who in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    codes = [p.exitcode for p in procs]
    assert sorted(codes) == [0, 3, 3, 3]
    with Store(store_at, readonly=True) as store:
        assert store.looks("seq") == [{"by": codes.index(0), "look": 1}]
