"""Stores that are not ours, stores that cannot be written, and studies that changed.

A file that is neither empty nor a dropoutlab store is refused and left byte-for-byte
unchanged; commands that only read open the store read-only; a store that cannot be written
is refused before anything trains; a run that cannot be written is one line and loses
nothing; a study whose definition changed is refused unless the change only adds seeds or
grid values (or ``--replace`` archives the old runs).
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_STUDY

from dropoutlab.cli import main
from dropoutlab.errors import DropoutlabError
from dropoutlab.store import SCHEMA_VERSION, Store
from dropoutlab.study import load_study, run_study

DATA = Path(__file__).parent / "data"


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_error(capsys, *args) -> str:
    code, out, err = run_cli(capsys, *args)
    assert code == 2 and err.startswith("dropoutlab: error: ") and err.count("\n") == 1, (code, out, err)
    assert "Traceback" not in err
    return err


def foreign_db(path: Path, *tables: str) -> bytes:
    with sqlite3.connect(path) as conn:
        for table in tables:
            conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, note TEXT)")
            conn.execute(f"INSERT INTO {table} (note) VALUES ('theirs')")
    conn.close()
    return path.read_bytes()


# ---------------------------------------------------------------- files that are not ours


@pytest.mark.parametrize("tables", [("contacts",), ("runs", "notes")], ids=["other-tables", "own-runs-table"])
def test_another_programs_sqlite_file_is_refused_and_left_unchanged(capsys, tiny_study, tmp_path, tables):
    path = tmp_path / "other.db"
    before = foreign_db(path, *tables)
    for args in (
        ["run", tiny_study, "--store", path, "--no-progress"],
        ["run", tiny_study, "--store", path, "--dry-run"],
        ["export", "--store", path],
        ["report", "--store", path, "--out", tmp_path / "r"],
    ):
        err = one_error(capsys, *args)
        assert f"{path}: not a dropoutlab store: an SQLite database of another program (its tables: " in err
        assert "left unchanged" in err
        assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db", "study.toml"]  # no journal, no report


def test_a_file_that_is_not_sqlite_is_refused_in_words_and_left_unchanged(capsys, tiny_study, tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("my notes\n" * 50)
    for args in (["run", tiny_study, "--store", path], ["export", "--store", path]):
        err = one_error(capsys, *args)
        assert "not a dropoutlab store: the file is not an SQLite database" in err
        assert "file is not a database" not in err
    assert path.read_text() == "my notes\n" * 50


def test_an_empty_file_becomes_a_store(tiny_study, tmp_path):
    path = tmp_path / "empty.db"
    path.touch()
    with Store(path) as store:
        assert store.studies() == []


def test_export_and_report_only_read_even_a_store_made_before_the_studies_table(
    capsys, caplog, tiny_study, tmp_path
):
    path = tmp_path / "old.db"  # written by the first store (tests/data/README.md): no studies table
    shutil.copyfile(DATA / "store-v1.sqlite", path)
    before = path.read_bytes()
    assert run_cli(capsys, "export", "--store", path)[0] == 0
    assert run_cli(capsys, "report", "--store", path, "--format", "json", "--out", tmp_path / "r")[0] == 0
    assert path.read_bytes() == before
    # and the old store still runs, upgraded: its runs are taken as the study's definition
    with caplog.at_level("WARNING", logger="dropoutlab.store"):
        code, out, _ = run_cli(capsys, "run", tiny_study, "--store", path, "--no-progress")
    assert code == 0 and "4 already stored" in out
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        f"{path}: upgraded the store from schema 1 to {SCHEMA_VERSION}"
    ]


def open_store_at_barrier(location, barrier):
    """In a forked child: open a store at ``location`` once all children reach ``barrier``;
    exit 0 if that worked, else 1 (the parent fails the test)."""
    barrier.wait()
    try:
        Store(location).close()
    except Exception as exc:  # reported to the parent, which fails the test
        print(f"FAILED {type(exc).__name__}: {exc}", flush=True)
        os._exit(1)
    os._exit(0)


def race_to_open(location, processes: int = 6) -> list[int]:
    """Fork ``processes`` children that open a store at ``location`` at the same instant;
    their exit codes (0: it opened)."""
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(processes)
    procs = [ctx.Process(target=open_store_at_barrier, args=(location, barrier)) for _ in range(processes)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    return [p.exitcode for p in procs]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks")
def test_six_processes_creating_one_store_at_once_all_get_it(tmp_path):
    for round_ in range(25):
        path = tmp_path / f"race{round_}.db"
        assert race_to_open(path) == [0] * 6, round_
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT key, value FROM meta").fetchall() == [("schema", str(SCHEMA_VERSION))]
        conn.close()


# ---------------------------------------------------------------- stores that cannot be written


def test_a_store_under_a_file_is_refused_before_training(capsys, tiny_study, tmp_path):
    (tmp_path / "afile").write_text("x")
    err = one_error(capsys, "run", tiny_study, "--store", tmp_path / "afile" / "s.db", "--no-progress")
    assert f"cannot create the store: {tmp_path / 'afile'} is a file, not a folder" in err


def _without_root_powers():  # pragma: no cover (runs in the child)
    # Root writes read-only files: drop the capabilities that let it (CAP_DAC_OVERRIDE,
    # CAP_DAC_READ_SEARCH) from the bounding set, so the exec'd child obeys file modes.
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP


def run_unprivileged(*args) -> subprocess.CompletedProcess:
    """``dropoutlab ARGS`` in a child that file permissions apply to, even when the tests run as root."""
    return subprocess.run(
        [sys.executable, "-m", "dropoutlab.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_without_root_powers if os.geteuid() == 0 else None,
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="capabilities are Linux's")
def test_a_read_only_store_or_folder_is_refused_before_anything_trains(capsys, tiny_study, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "s.db"
    assert run_cli(capsys, "run", tiny_study, "--store", path, "--no-progress", "--workers", "1")[0] == 0
    more = tmp_path / "more.toml"
    more.write_text(TINY_STUDY.replace("seeds = [0, 1]", "seeds = [0, 1, 2]"))  # 2 runs to train
    before = path.read_bytes()
    try:
        path.chmod(0o444)
        done = run_unprivileged("run", more, "--store", path, "--no-progress")
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert f"{path}: the store file is not writable (Permission denied)" in done.stderr
        assert done.stdout == ""  # nothing planned, nothing trained
        path.chmod(0o644)
        folder.chmod(0o555)
        done = run_unprivileged("run", more, "--store", path, "--no-progress")
        assert done.returncode == 2 and f"the folder {folder} is not writable" in done.stderr, done.stderr
        done = run_unprivileged("export", "--store", path)  # reading needs no write access
        assert done.returncode == 0 and len(json.loads(done.stdout)["runs"]) == 4, done.stderr
    finally:
        folder.chmod(0o755)
        path.chmod(0o644)
    assert path.read_bytes() == before


def test_a_run_that_cannot_be_written_is_one_line_and_loses_nothing(tiny_study, tmp_path, write_study):
    path = tmp_path / "full.db"
    with Store(path) as store:
        run_study(load_study(tiny_study), store, device="cpu", progress=False, workers=1)
    more = load_study(
        write_study(TINY_STUDY.replace("seeds = [0, 1]", "seeds = [0, 1, 2, 3, 4, 5]"), "m.toml")
    )
    with Store(path) as store:
        with store.engine.connect() as conn:  # the store's one SQLite connection
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
            conn.exec_driver_sql(f"PRAGMA max_page_count = {pages}")  # the disk is full: SQLITE_FULL
        with pytest.raises(
            DropoutlabError, match=r"full\.db: cannot write run .*database or disk is full"
        ) as info:
            run_study(more, store, device="cpu", progress=False, workers=1)
        assert "\n" not in str(info.value) and "run the same command again" in str(info.value)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        per_run = conn.execute("SELECT r.id, COUNT(e.epoch) FROM runs r LEFT JOIN epochs e ON e.run_id = r.id "
                               "GROUP BY r.id").fetchall()  # fmt: skip
    conn.close()
    assert len(per_run) >= 4 and all(n == 2 for _, n in per_run)  # whole runs only, the first 4 kept
    with Store(path) as store:  # space again: the rest trains
        again = run_study(more, store, device="cpu", progress=False, workers=1)
        assert again.skipped == len(per_run) and again.statuses == {"completed": 12 - len(per_run)}


# ---------------------------------------------------------------- studies that changed


def test_a_changed_study_is_refused_naming_the_keys_and_the_ways_out(capsys, tiny_study, tmp_path):
    store = tmp_path / "s.db"
    assert run_cli(capsys, "run", tiny_study, "--store", store, "--no-progress", "--workers", "1")[0] == 0
    before = store.read_bytes()
    changed = tmp_path / "changed.toml"
    changed.write_text(TINY_STUDY.replace("epochs = 2", "epochs = 3").replace("[0.0, 0.5]", "[0.5]"))
    for extra in ([], ["--dry-run"]):
        err = one_error(capsys, "run", changed, "--store", store, "--no-progress", *extra)
        assert (
            "study 'tiny' in " in err
            and "was run with another design (changed: epochs, grid.dropout.hidden1)" in err
        )
        assert "give the study a new name, or run with --replace" in err and "'tiny@archived-N'" in err
    assert store.read_bytes() == before
    # the case: a grid added to a study that had none
    plain = tmp_path / "plain.toml"
    plain.write_text(TINY_STUDY.split("[grid]")[0].replace('"tiny"', '"plain"'))
    assert run_cli(capsys, "run", plain, "--store", store, "--no-progress", "--workers", "1")[0] == 0
    plain.write_text(TINY_STUDY.replace('"tiny"', '"plain"'))
    assert "(changed: grid.dropout.hidden1)" in one_error(capsys, "run", plain, "--store", store)


def test_adding_seeds_or_grid_values_extends_the_study(capsys, tiny_study, tmp_path):
    store = tmp_path / "s.db"
    assert run_cli(capsys, "run", tiny_study, "--store", store, "--no-progress", "--workers", "1")[0] == 0
    more = tmp_path / "more.toml"
    more.write_text(
        TINY_STUDY.replace("seeds = [0, 1]", "seeds = [0, 1, 2]").replace("[0.0, 0.5]", "[0.0, 0.5, 0.2]")
    )
    code, out, _ = run_cli(capsys, "run", more, "--store", store, "--dry-run")
    assert code == 0 and "tiny: extends the stored study with 1 value of dropout.hidden1, 1 seed" in out
    code, out, err = run_cli(capsys, "run", more, "--store", store, "--no-progress", "--workers", "1")
    assert code == 0, err
    assert out.splitlines()[0] == "tiny: extends the stored study with 1 value of dropout.hidden1, 1 seed"
    assert "tiny: 9 runs planned, 4 already stored, 5 completed" in out
    code, out, _ = run_cli(capsys, "run", more, "--store", store, "--no-progress")
    assert code == 0 and "extends" not in out and "9 already stored" in out
    # the old file is now a narrower design: refused, naming what it removes
    assert "(changed: grid.dropout.hidden1, seeds)" in one_error(capsys, "run", tiny_study, "--store", store)


def test_replace_keeps_the_old_runs_under_an_archived_name(capsys, tiny_study, tmp_path):
    store = tmp_path / "s.db"
    assert run_cli(capsys, "run", tiny_study, "--store", store, "--no-progress", "--workers", "1")[0] == 0
    changed = tmp_path / "changed.toml"
    changed.write_text(TINY_STUDY.replace("epochs = 2", "epochs = 3"))
    code, out, _ = run_cli(capsys, "run", changed, "--store", store, "--dry-run", "--replace")
    assert code == 0 and "would keep the 4 stored runs as 'tiny@archived-N'" in out
    for n in (1, 2):
        code, out, err = run_cli(capsys, "run", changed, "--store", store, "--no-progress", "--workers", "1",
                                 "--replace")  # fmt: skip
        assert code == 0, err
        assert f"tiny: kept the 4 stored runs as 'tiny@archived-{n}'" in out and "4 completed" in out
    with Store(store, readonly=True) as s:
        assert s.studies() == ["tiny@archived-1", "tiny@archived-2", "tiny"]
        records = s.records()
        assert len(records) == 12 and len({r["id"] for r in records}) == 12
        assert {r["spec"]["epochs"] for r in records if r["study"] == "tiny@archived-1"} == {2}
        assert all(len(r["history"]) == r["stopped_epoch"] for r in records)  # epochs moved with their runs
        assert s.study_definition("tiny@archived-1")["settings"]["epochs"] == 2
        assert s.study_definition("tiny")["settings"]["epochs"] == 3
    code, out, _ = run_cli(
        capsys, "report", "--store", store, "--study", "tiny@archived-1", "--format", "json"
    )
    assert code == 0 and json.loads(out)["study"] == "tiny@archived-1"


def test_description_and_min_effect_may_change_without_replacing(capsys, tiny_study, tmp_path):
    store = tmp_path / "s.db"
    assert run_cli(capsys, "run", tiny_study, "--store", store, "--no-progress", "--workers", "1")[0] == 0
    edited = tmp_path / "edited.toml"
    edited.write_text(
        TINY_STUDY.replace(
            'name = "tiny"', 'name = "tiny"\ndescription = "now with words"\nmin_effect = 0.02'
        )
    )
    code, out, _ = run_cli(capsys, "run", edited, "--store", store, "--no-progress")
    assert code == 0 and "4 already stored" in out
    with Store(store, readonly=True) as s:
        assert s.study_definition("tiny")["min_effect"] == 0.02


# ---------------------------------------------------------------- rows changed outside dropoutlab


@pytest.fixture(scope="module")
def stored_tiny(tmp_path_factory) -> Path:
    """A store holding the tiny study's 4 runs, written once for the tests that damage a copy."""
    folder = tmp_path_factory.mktemp("stored")
    (folder / "tiny.toml").write_text(TINY_STUDY)
    with Store(folder / "s.db") as store:
        run_study(load_study(folder / "tiny.toml"), store, device="cpu", progress=False)
    return folder / "s.db"


def damaged_copy(stored: Path, tmp_path: Path, statement: str) -> tuple[Path, str]:
    """A copy of ``stored`` changed by one SQL ``statement`` on its second run; that run's id."""
    path = tmp_path / "t.db"
    shutil.copyfile(stored, path)
    conn = sqlite3.connect(path)
    with conn:
        run_id = conn.execute("SELECT id FROM runs WHERE rowid = 2").fetchone()[0]
        conn.execute(statement.replace("RUN", f"'{run_id}'"))
    conn.close()
    return path, run_id


@pytest.mark.parametrize(
    ("statement", "column", "why"),
    [
        ("UPDATE runs SET params = '{bad' WHERE id = RUN", "params", "is not JSON"),
        (
            "UPDATE runs SET params = '[1, 2]' WHERE id = RUN",
            "params",
            "holds a JSON list, not a JSON object",
        ),
        (
            'UPDATE runs SET params = \'{"dropout.hidden1": {"a": 1}}\' WHERE id = RUN',
            "params",
            "holds the value {'a': 1}",
        ),
        ("UPDATE runs SET spec = 'null' WHERE id = RUN", "spec", "holds null, not a JSON object"),
        ("UPDATE runs SET spec = '{\"dropout\": 3}' WHERE id = RUN", "spec", "dropout entry of int"),
        ("UPDATE runs SET spec = '{\"early_stopping\": [1]}' WHERE id = RUN", "spec", "early_stopping entry"),
        ("UPDATE runs SET env = 'not json' WHERE id = RUN", "env", "is not JSON"),
        ("UPDATE runs SET env = '\"text\"' WHERE id = RUN", "env", "holds text, not a JSON object"),
        ("UPDATE runs SET seed = 'x' WHERE id = RUN", "seed", "holds text 'x', not a whole number"),
        ("UPDATE runs SET seed = 1.5 WHERE id = RUN", "seed", "holds float 1.5, not a whole number"),
        ("UPDATE runs SET test_acc = 'high' WHERE id = RUN", "test_acc", "not a number"),
        ("UPDATE epochs SET val_loss = 'zz' WHERE run_id = RUN", "epochs.val_loss", "not a number"),
        ("UPDATE runs SET params = '" + "[" * 100_000 + "' WHERE id = RUN", "params", "is not JSON"),
    ],
)
def test_a_tampered_run_is_one_line_naming_run_and_column_and_export_keeps_the_rest(
    capsys, caplog, stored_tiny, tmp_path, statement, column, why
):
    path, run_id = damaged_copy(stored_tiny, tmp_path, statement)
    for command in (("report", "--out", tmp_path / "r"), ("report", "--format", "json")):
        err = one_error(capsys, *command, "--store", path)
        assert f"run '{run_id}': the column {column} " in err and why in err and len(err) < 600
    assert not (tmp_path / "r" / "report.html").exists()
    with caplog.at_level("WARNING", logger="dropoutlab.store"):
        code, out, err = run_cli(capsys, "export", "--store", path)
    assert code == 0 and "Traceback" not in err
    exported = json.loads(out)["runs"]
    assert len(exported) == 3 and run_id not in {r["id"] for r in exported}
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2 and all("\n" not in w for w in warnings)
    assert f"left out run '{run_id}': the column {column}" in warnings[0]
    assert "left out 1 damaged run of 4" in warnings[1]
    code, out, err = run_cli(capsys, "export", "--store", path, "--format", "csv")
    assert code == 0 and run_id not in out and out.count("\n") == 1 + 3 * 2  # header + 3 runs x 2 epochs


@pytest.mark.parametrize(
    ("definition", "why"),
    [
        ("{bad", "is not JSON"),
        ("[]", "holds a JSON list"),
        ('{"grid": 5}', "grid entry of the wrong type"),
        ('{"seeds": ["a"]}', "seeds entry"),
        ('{"min_effect": "big"}', "not a number"),
    ],  # fmt: skip
)
def test_a_tampered_definition_is_one_line_for_report_and_run(capsys, stored_tiny, tmp_path, definition, why):
    path, _ = damaged_copy(stored_tiny, tmp_path, f"UPDATE studies SET definition = '{definition}'")
    err = one_error(capsys, "report", "--store", path, "--format", "json")
    assert "study 'tiny': the column definition " in err and why in err
    study = tmp_path / "tiny.toml"
    study.write_text(TINY_STUDY)
    err = one_error(capsys, "run", study, "--store", path, "--dry-run")
    assert "the column definition" in err
    assert run_cli(capsys, "export", "--store", path)[0] == 0  # the runs themselves are intact


def test_a_tampered_look_is_one_line(stored_tiny, tmp_path):
    path, _ = damaged_copy(
        stored_tiny,
        tmp_path,
        "INSERT INTO looks (study, look, record, written_at) VALUES ('tiny', 1, '{x', 'now')",
    )
    with (
        Store(path, readonly=True) as store,
        pytest.raises(DropoutlabError, match=r"look 1 of study 'tiny'.*not JSON"),
    ):
        store.looks("tiny")


def test_replace_archives_a_study_whose_definition_was_damaged(capsys, stored_tiny, tmp_path):
    path, _ = damaged_copy(stored_tiny, tmp_path, "UPDATE studies SET definition = '{bad'")
    study = tmp_path / "tiny.toml"
    study.write_text(TINY_STUDY)
    assert "--replace" in one_error(capsys, "run", study, "--store", path, "--no-progress")
    code, out, err = run_cli(
        capsys, "run", study, "--store", path, "--no-progress", "--replace", "--workers", "1"
    )
    assert code == 0, err
    assert "kept the 4 stored runs as 'tiny@archived-1'" in out
    with Store(path, readonly=True) as store:
        assert store.study_definition("tiny")["seeds"] == [0, 1]
        assert len(store.records("tiny")) == 4
