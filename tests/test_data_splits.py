"""Degenerate splits are refused in one line before anything trains: where the study is
validated (so ``--dry-run`` refuses them, from the dataset's declared size) and again where
the split is made (``prepare_data``, from the size of the files actually read)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_data_helpers import isolated, write_idx_set, write_npz  # noqa: F401  (isolated is an autouse fixture)

from dropoutlab.cli import main
from dropoutlab.data import load_dataset
from dropoutlab.data.prepare import MIN_SPLIT, check_split, prepare_data
from dropoutlab.errors import DropoutlabError
from dropoutlab.study import load_study

STUDY = 'name = "s"\ndataset = "digits"\nepochs = 1\nseeds = [0]\n'


@pytest.mark.parametrize(
    ("validation", "train", "val"),
    [(1e-9, "1,437", 0), (0.0007, "1,436", 1), (0.9999, 0, "1,437"), (0.9993, 1, "1,436")],
)
def test_a_split_leaving_fewer_than_two_images_on_either_side_is_refused(validation, train, val):
    with pytest.raises(DropoutlabError) as err:
        check_split(1437, validation, "digits")
    assert str(err.value) == (
        f"validation: {validation:g} of the 1,437 training images of digits leaves {train} to train on and "
        f"{val} to validate on; each part needs at least 2 images: set validation = 0 (no split) or between "
        "0.0014 and 0.9986"
    )


@pytest.mark.parametrize("validation", [0.0, 0.0014, 0.1667, 0.9986])
def test_splits_of_two_images_or_more_on_each_side_and_no_split_are_accepted(validation):
    check_split(1437, validation, "digits")


@given(n=st.integers(2 * MIN_SPLIT, 10**7), validation=st.floats(0, 1, exclude_max=True))
def test_the_validation_fractions_a_refusal_advises_are_accepted(n, validation):
    try:
        check_split(n, validation, "x")
    except DropoutlabError as exc:
        low, high = re.search(r"or (?:between )?([0-9.e-]+)(?: and ([0-9.e-]+))?$", str(exc)).groups()
        for advised in (float(low), float(high or low)):
            check_split(n, advised, "x")
        n_val = round(n * validation)
        assert min(n - n_val, n_val) < MIN_SPLIT


def test_too_few_images_for_any_split_are_told_to_use_no_split():
    with pytest.raises(
        DropoutlabError, match=r"leaves 1 to train on and 2 to validate on; .*: set validation = 0$"
    ):
        check_split(3, 0.5, "npz:tiny.npz")
    with pytest.raises(DropoutlabError, match=r"use a dataset of at least 2 training images$"):
        check_split(1, 0.0, "npz:one.npz")


def test_validation_of_1e_9_with_early_stopping_is_refused_at_load(tmp_path):
    # it held out 0 images: every run stopped after one epoch and was stored as completed
    path = tmp_path / "s.toml"
    path.write_text(STUDY + "validation = 1e-9\n[early_stopping]\npatience = 2\n")
    with pytest.raises(DropoutlabError, match=r"validation: 1e-09 of the 1,437 training images of digits leaves "
                       r"1,437 to train on and 0 to validate on"):  # fmt: skip
        load_study(path)


def test_dry_run_refuses_a_grid_point_that_leaves_nothing_to_train_on(tmp_path, capsys):
    # validation = 0.9999 was accepted, then every run of the point failed with a traceback
    path = tmp_path / "s.toml"
    path.write_text(STUDY + '[grid]\n"validation" = [0.2, 0.9999]\n')
    assert main(["run", str(path), "--dry-run", "--store", str(tmp_path / "s.db")]) == 2
    err = capsys.readouterr().err
    assert "validation: 0.9999 of the 1,437 training images of digits leaves 0 to train on" in err
    assert len(err.strip().splitlines()) == 1


def test_dry_run_refuses_npz_images_of_no_pixels(tmp_path, capsys):
    write_npz(
        tmp_path / "z.npz", x_train=np.zeros((10, 0, 0), np.uint8), x_test=np.zeros((4, 0, 0), np.uint8)
    )
    path = tmp_path / "s.toml"
    path.write_text(STUDY.replace('"digits"', f'"npz:{tmp_path / "z.npz"}"'))
    assert main(["run", str(path), "--dry-run", "--store", str(tmp_path / "s.db")]) == 2
    err = capsys.readouterr().err
    assert "x_train has shape (10, 0, 0); an image needs at least one pixel and one channel" in err
    assert len(err.strip().splitlines()) == 1


def test_npz_split_is_checked_against_the_images_the_file_holds(tmp_path):
    write_npz(tmp_path / "t.npz", n=(5, 2))
    path = tmp_path / "s.toml"
    path.write_text(STUDY.replace('"digits"', f'"npz:{tmp_path / "t.npz"}"') + "validation = 0.1\n")
    with pytest.raises(DropoutlabError, match=r"0.1 of the 5 training images of npz:.*t\.npz leaves 5 to train on "
                       r"and 0 to validate on; .* between 0.4 and 0.6"):  # fmt: skip
        load_study(path)


def test_prepare_data_checks_the_split_of_the_files_actually_read(tmp_path):
    # the study is checked against MNIST's published 60,000 images; these files hold 4
    write_idx_set(tmp_path, gz=False, n=(4, 2))
    dataset = load_dataset("mnist", tmp_path, download=False)
    with pytest.raises(
        DropoutlabError, match=r"0.1667 of the 4 training images of mnist leaves 3 to train on and 1"
    ):
        prepare_data(dataset, 0.1667, 0, "unit", "cpu")
    assert len(prepare_data(dataset, 0.5, 0, "unit", "cpu").val) == 2
