"""The PostgreSQL store: the same study, the same numbers, the same refusals as an SQLite file.

Tests that need a server take a fresh database from the ``postgres_url`` fixture and are
skipped, with one line saying why, where no server is given (``.ci/run`` starts one).
"""

import json
import sys

import pytest
import sqlalchemy as sa
from conftest import TINY_STUDY
from test_store_hostile import one_error, race_to_open, run_cli

from dropoutlab.errors import DropoutlabError
from dropoutlab.store import SCHEMA_VERSION, Store, holds_store
from dropoutlab.study import load_study, run_study

TIMING = ("wall_s", "env", "finished_at")  # what differs between two trainings of the same runs


def same_numbers(records):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def psycopg_url(url: str) -> sa.URL:
    return sa.make_url(url).set(drivername="postgresql+psycopg")


def test_a_study_in_postgresql_holds_the_numbers_of_the_same_study_in_sqlite(
    tiny_study, tmp_path, postgres_url
):
    study = load_study(tiny_study)
    with Store(tmp_path / "s.db") as lite, Store(postgres_url) as pg:
        for store in (lite, pg):
            assert run_study(study, store, device="cpu", progress=False, workers=1).statuses == {
                "completed": 4
            }
        assert same_numbers(pg.records()) == same_numbers(lite.records())
        assert pg.studies() == ["tiny"] and pg.finished_ids("tiny") == lite.finished_ids("tiny")
        again = run_study(study, pg, device="cpu", progress=False, workers=1)
        assert again.skipped == 4 and not again.statuses
    with Store(postgres_url, readonly=True) as pg:
        assert len(pg.records()) == 4
        with pytest.raises(
            DropoutlabError, match="cannot write"
        ):  # a read-only session, refused by the server
            pg.release("anyone")


def test_the_cli_runs_reports_and_archives_on_a_postgresql_url(capsys, tiny_study, tmp_path, postgres_url):
    code, out, err = run_cli(capsys, "run", tiny_study, "--store", postgres_url, "--dry-run")
    assert code == 0 and "4 runs" in out, err
    assert not holds_store(postgres_url)  # a dry run writes nothing, not even the tables
    code, out, err = run_cli(
        capsys, "run", tiny_study, "--store", postgres_url, "--no-progress", "--workers", "1"
    )
    assert code == 0 and "4 completed" in out and f"store: {postgres_url}" in out, err
    changed = tmp_path / "changed.toml"
    changed.write_text(TINY_STUDY.replace("epochs = 2", "epochs = 3"))
    err = one_error(capsys, "run", changed, "--store", postgres_url, "--no-progress")
    assert f"study 'tiny' in {postgres_url} was run with another design (changed: epochs" in err
    code, out, err = run_cli(capsys, "run", changed, "--store", postgres_url, "--no-progress", "--workers", "1",
                             "--replace")  # fmt: skip
    assert code == 0 and "kept the 4 stored runs as 'tiny@archived-1'" in out, err
    with Store(postgres_url, readonly=True) as pg:
        assert pg.studies() == ["tiny@archived-1", "tiny"]  # ids renamed in every table, order kept
        records = pg.records()
        assert len({r["id"] for r in records}) == 8 and all(
            len(r["history"]) == r["stopped_epoch"] for r in records
        )
    code, out, _ = run_cli(capsys, "report", "--store", postgres_url, "--study", "tiny", "--format", "json")
    assert code == 0 and json.loads(out)["study"] == "tiny"


def test_another_programs_database_is_refused_and_left_unchanged(capsys, tiny_study, tmp_path, postgres_url):
    with sa.create_engine(psycopg_url(postgres_url)).begin() as conn:
        conn.exec_driver_sql("CREATE TABLE contacts (id INTEGER PRIMARY KEY, note TEXT)")
        conn.exec_driver_sql("INSERT INTO contacts VALUES (1, 'theirs')")
    for args in (
        ["run", tiny_study, "--store", postgres_url, "--no-progress"],
        ["run", tiny_study, "--store", postgres_url, "--dry-run"],
        ["report", "--store", postgres_url, "--out", tmp_path / "r"],
    ):
        err = one_error(capsys, *args)
        assert (
            "not a dropoutlab store: a PostgreSQL database of another program (its tables: 'contacts')" in err
        )
    with sa.create_engine(psycopg_url(postgres_url)).connect() as conn:
        assert sa.inspect(conn).get_table_names() == ["contacts"]
        assert conn.exec_driver_sql("SELECT * FROM contacts").all() == [(1, "theirs")]
    assert not (tmp_path / "r").exists()


def test_an_empty_database_is_no_store_to_read(capsys, postgres_url):
    assert "holds no runs yet" in one_error(capsys, "report", "--store", postgres_url)
    assert "holds no runs yet" in one_error(capsys, "evaluate", "--store", postgres_url, "--mc", "2")
    assert not holds_store(postgres_url)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks")
def test_six_processes_creating_one_postgresql_store_at_once_all_get_it(postgres_url):
    assert race_to_open(postgres_url) == [0] * 6
    with sa.create_engine(psycopg_url(postgres_url)).connect() as conn:
        assert conn.exec_driver_sql("SELECT key, value FROM meta").all() == [("schema", str(SCHEMA_VERSION))]


# ---------------------------------------------------------------- no server needed


@pytest.mark.parametrize(
    "url, words",
    [
        ("postgresql://nobody@127.0.0.1:1/none", "cannot open the PostgreSQL store (connection failed"),
        ("mysql://user@host/db", "a store is an SQLite file path or a PostgreSQL URL"),
        ("postgresql://user@host:notaport/db", "not a database URL"),
        ("postgresql+nosuchdriver://user@host/db", "SQLAlchemy knows no driver 'postgresql+nosuchdriver'"),
    ],
)
def test_a_store_url_that_cannot_serve_is_one_line(capsys, tiny_study, url, words):
    for args in (["run", tiny_study, "--store", url, "--no-progress"], ["report", "--store", url]):
        assert words in one_error(capsys, *args)


def test_the_largest_seed_fits_a_postgresql_store(write_study, postgres_url):
    study = load_study(write_study(TINY_STUDY.replace("seeds = [0, 1]", "seeds = [9223372036854775807]")))
    with Store(postgres_url) as pg:
        assert run_study(study, pg, device="cpu", progress=False, workers=1).statuses == {"completed": 2}
        assert {r["seed"] for r in pg.records()} == {2**63 - 1}


def test_kept_weights_and_mc_dropout_round_trip_through_postgresql(tiny_study, postgres_url):
    from dropoutlab.study.evaluate import evaluate_mc

    with Store(postgres_url) as pg:
        run_study(load_study(tiny_study), pg, device="cpu", progress=False, workers=1, keep_weights=True)
        assert len(pg.runs_with_weights()) == 4
        assert evaluate_mc(pg, "tiny", (2, 4), device="cpu", progress=False).evaluated == 4
        assert evaluate_mc(pg, "tiny", (4,), device="cpu", progress=False).evaluated == 4  # replaces T=4
        mc = [m for r in pg.records() for m in r["mc"]]
        assert sorted({m["samples"] for m in mc}) == [0, 2, 4] and len(mc) == 12  # 0: the usual pass
        assert all(0 <= m["acc"] <= 1 for m in mc)


def test_odd_results_read_back_alike_from_both_stores(store_at):
    from conftest import make_run

    from dropoutlab.runs import RunResult

    run = make_run(seed=3)
    with Store(store_at) as store:
        store.write_run(RunResult(run, "failed", error="RuntimeError: a \x00 byte\n\nTraceback ..."))
        store.write_run(RunResult(make_run(seed=4), "diverged", test_loss=float("nan"),
                                  learned_rates=[(1, "hidden1", 0.2), (2, "hidden1", float("nan"))]))  # fmt: skip
        records = {r["seed"]: r for r in store.records()}
    assert records[3]["error"] == "RuntimeError: a \\x00 byte\n\nTraceback ..."
    assert records[4]["test"]["loss"] is None  # NaN is stored as NULL by both
    assert records[4]["learned_rates"] == [{"epoch": 1, "slot": "hidden1", "rate": 0.2}]


def test_a_postgresql_store_that_goes_away_is_one_line(postgres_url):
    with Store(postgres_url) as pg:
        admin = sa.create_engine(
            psycopg_url(postgres_url).set(database="postgres"), isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE "{sa.make_url(postgres_url).database}" WITH (FORCE)')
        admin.dispose()
        with pytest.raises(DropoutlabError, match="cannot read the store") as info:
            pg.finished_ids("tiny")
        assert "\n" not in str(info.value)
        with pytest.raises(DropoutlabError, match="cannot write the release"):
            pg.release("anyone")
