"""Shared fixtures: small study files on the bundled digits data."""

from __future__ import annotations

import textwrap

import pytest


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
