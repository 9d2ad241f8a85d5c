"""Shared fixtures: small study files on the bundled digits data."""

from __future__ import annotations

import os
import sqlite3
import textwrap
import time
import uuid

import pytest
import sqlalchemy as sa
import torch

from dropoutlab.data import known, load_dataset
from dropoutlab.data.prepare import prepare_data
from dropoutlab.runs import RunSpec, run_id
from dropoutlab.study.settings import parse_settings


def make_run(seed=0, **overrides) -> RunSpec:
    """One MLP run on digits (3 epochs, batch 64) with settings ``overrides``."""
    raw = {"dataset": "digits", "model": "mlp", "epochs": 3, "batch_size": 64, **overrides}
    settings = parse_settings(raw)
    return RunSpec(run_id("t", settings, seed), "t", settings, seed, {})


def prepared(dataset, run):
    """The run's data, prepared on the CPU."""
    s = run.settings
    return prepare_data(dataset, s.validation, s.split_seed, s.normalize, "cpu")


def pytest_collection_modifyitems(items):
    """Every test that trains in float64 compares two code paths: mark it ``engine_parity``."""
    for item in items:
        if "float64" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.engine_parity)


@pytest.fixture(autouse=True)
def no_data_from_other_tests(monkeypatch):
    """Data made in Python is known by name for the rest of the process: each test starts with none,
    so what one test makes never shows in another's messages or studies."""
    monkeypatch.setattr(known, "_KNOWN", {})


@pytest.fixture
def float64():
    """Train in float64 during this test (prepared data and new models follow torch's default dtype).

    Two code paths that add in another order (the stacked and single engines, another stack,
    another CPU's kernels, another thread count) differ by float32's last digits, and over a few
    epochs those differences grow to 1e-3. In float64 they stay near 1e-16 per operation, so
    engines compared at a relative 1e-9 agree on any CPU, and every early stop falls alike.
    """
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits, decoded once."""
    return load_dataset("digits")


@pytest.fixture
def write_study(tmp_path):
    """Write a TOML study file from text (dedented) and return its path."""

    def write(text: str, name: str = "study.toml"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


TINY_STUDY = """
name = "tiny"
dataset = "digits"
model = "mlp"
epochs = 2
batch_size = 128
seeds = [0, 1]
eval_train = false

[grid]
"dropout.hidden1" = [0.0, 0.5]
"""


@pytest.fixture
def tiny_study(write_study):
    """A 2-configuration x 2-seed study of 2 epochs on digits (well under a second each)."""
    return write_study(TINY_STUDY)


def group_ends(pgid, timeout=10.0):
    """Whether every process of group ``pgid`` has exited within ``timeout`` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def stored_ids(path):
    """Ids of the runs in the store at ``path`` (none while it does not exist yet)."""
    try:
        with sqlite3.connect(path) as conn:
            return [r[0] for r in conn.execute("SELECT id FROM runs")]
    except sqlite3.OperationalError:
        return []


@pytest.fixture(scope="session")
def postgres_server():
    """The URL of the PostgreSQL server the store tests use (``.ci/run`` starts one)."""
    url = os.environ.get("DROPOUTLAB_TEST_POSTGRES")
    if url:
        return url
    reason = "no PostgreSQL server: set DROPOUTLAB_TEST_POSTGRES=postgresql://USER@HOST:PORT/DB (.ci/run starts one)"
    if os.environ.get("DROPOUTLAB_REQUIRE_POSTGRES"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def postgres_url(postgres_server):
    """A new, empty PostgreSQL database for one test (dropped afterwards), as a store URL."""
    server = sa.make_url(postgres_server)
    admin = sa.create_engine(server.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    name = f"dropoutlab_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield server.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_at(request, tmp_path):
    """A new store of each kind: an SQLite file's path, then a PostgreSQL database's URL."""
    if request.param == "sqlite":
        return str(tmp_path / "s.db")
    return request.getfixturevalue("postgres_url")
