"""What the store costs per finished run: dropoutlab's Store (SQLAlchemy Core) on an SQLite file
and on PostgreSQL, against plain ``sqlite3`` writing the same rows in one transaction per run
(what a user would write by hand).

    python benchmarks/bench_store.py --runs 300 --epochs 20 --repeat 3 \\
        [--postgres postgresql://USER@HOST/DB]

With ``--postgres`` the database given is emptied of dropoutlab's tables for each round: give
one made for the benchmark. Each round writes the same synthetic results (nothing trains) and
reads them back (``Store.records``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from dropoutlab.runs import EPOCH_METRICS, EpochRecord, RunResult
from dropoutlab.store import Store
from dropoutlab.store.schema import tables
from dropoutlab.study.grid import expand_runs
from dropoutlab.study.spec import parse_study


def synthetic_results(n_runs: int, epochs: int) -> list[RunResult]:
    study = parse_study({"name": "bench", "dataset": "digits", "seeds": n_runs, "epochs": epochs})
    names = [f.name for f in dataclasses.fields(EpochRecord)]
    results = []
    for run in expand_runs(study):
        history = [EpochRecord(**{f: (e if f == "epoch" else 0.5 + e / 1000) for f in names})
                   for e in range(1, epochs + 1)]  # fmt: skip
        results.append(RunResult(run, "completed", test_loss=0.3, test_acc=0.9, best_epoch=epochs,
                                 stopped_epoch=epochs, wall_s=1.0, history=history, env={"torch": "x"}))  # fmt: skip
    return results


def plain_sqlite(path: Path, results: list[RunResult]) -> float:
    """The hand-written reference: the same rows, ``sqlite3``, one transaction per run."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, study TEXT, params TEXT, seed INTEGER, status TEXT, "
                 "test_loss REAL, test_acc REAL, spec TEXT, env TEXT)")  # fmt: skip
    conn.execute(f"CREATE TABLE epochs (run_id TEXT, epoch INTEGER, {', '.join(f'{m} REAL' for m in EPOCH_METRICS)},"
                 " PRIMARY KEY (run_id, epoch))")  # fmt: skip
    marks = ", ".join("?" * (2 + len(EPOCH_METRICS)))
    start = time.perf_counter()
    for r in results:
        with conn:
            conn.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (r.run.id, r.run.study, json.dumps(r.run.params), r.run.seed, r.status, r.test_loss,
                          r.test_acc, json.dumps(r.run.spec_dict()), json.dumps(r.env)))  # fmt: skip
            conn.executemany(f"INSERT INTO epochs VALUES ({marks})",
                             [(r.run.id, h.epoch, *(getattr(h, m) for m in EPOCH_METRICS)) for h in r.history])  # fmt: skip
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def through_store(location: str | Path, results: list[RunResult]) -> tuple[float, float]:
    """Seconds to write every result with ``Store.write_run``, then to read them all back."""
    with Store(location) as store:
        start = time.perf_counter()
        for r in results:
            store.write_run(r)
        written = time.perf_counter() - start
        start = time.perf_counter()
        assert len(store.records()) == len(results)
        return written, time.perf_counter() - start


def empty_postgres(url: str) -> None:
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    with engine.begin() as conn:
        tables(postgres=True).drop_all(conn)  # every table of the schema, whichever exist
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", metavar="URL", help="also time a PostgreSQL store in this database")
    args = parser.parse_args()
    results = synthetic_results(args.runs, args.epochs)
    times: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            times.setdefault("plain sqlite3 (reference)", []).append(
                plain_sqlite(Path(tmp) / "plain.db", results)
            )
            write, read = through_store(Path(tmp) / "store.db", results)
            times.setdefault("Store, SQLite file", []).append(write)
            times.setdefault("Store, SQLite file: records()", []).append(read)
        if args.postgres:
            empty_postgres(args.postgres)
            write, read = through_store(args.postgres, results)
            times.setdefault("Store, PostgreSQL", []).append(write)
            times.setdefault("Store, PostgreSQL: records()", []).append(read)
    reference = statistics.median(times["plain sqlite3 (reference)"])
    print(f"{args.runs} runs x {args.epochs} epochs, median of {args.repeat} rounds")
    for name, values in times.items():
        median = statistics.median(values)
        what = "all" if "records" in name else f"{median / args.runs * 1e3:.2f} ms/run"
        ratio = "" if "records" in name else f", {median / reference:.2f}x the reference"
        print(f"  {name:32s} {median:.3f} s ({what}{ratio})")


if __name__ == "__main__":
    main()
