"""Shared fixtures: small study files on the bundled digits data."""

from __future__ import annotations

import os
import sqlite3
import textwrap
import time

import pytest

from dropoutlab.data import load_dataset
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
