from dataclasses import replace

import pytest

from dropoutlab.errors import DropoutlabError
from dropoutlab.runs import EarlyStoppingSpec, RunSettings
from dropoutlab.study import expand_runs, load_study

BASE = """
name = "s"
dataset = "digits"
model = "mlp"
epochs = 2
seeds = [0, 1]
"""


def test_issue_example_study_expands_to_grid_times_seeds(write_study):
    path = write_study(
        """
        name = "digits-mlp"
        dataset = "digits"
        model = "mlp"
        epochs = 20
        batch_size = 64
        seeds = [0, 1, 2]
        [optimizer]
        name = "adam"
        lr = 0.001
        [dropout]
        input = 0.0
        [early_stopping]
        monitor = "val_loss"
        patience = 3
        [grid]
        "dropout.hidden1" = [0.0, 0.5]
        "dropout.hidden2" = [0.0, 0.5]
        """
    )
    study = load_study(path)
    runs = expand_runs(study)
    assert len(runs) == 4 * 3
    assert len({r.id for r in runs}) == 12
    assert study.param_keys == ("dropout.hidden1", "dropout.hidden2")
    assert {(r.params["dropout.hidden1"], r.params["dropout.hidden2"]) for r in runs} == {
        (0.0, 0.0), (0.0, 0.5), (0.5, 0.0), (0.5, 0.5)
    }  # fmt: skip
    run = runs[0]
    assert run.settings.early_stopping.patience == 3
    assert run.settings.dropout == {"input": 0.0, "hidden1": 0.0, "hidden2": 0.0}
    spec = run.spec_dict()
    assert spec["optimizer"] == {"name": "adam", "lr": 0.001, "momentum": 0.0, "weight_decay": 0.0}
    assert spec["seed"] == 0 and spec["normalize"] == "unit" and spec["validation"] == 0.1667


def test_a_setting_left_out_takes_the_default_of_its_field_in_run_settings(write_study):
    # the defaults live in the dataclasses of runs.py only; a study naming nothing gets each of them
    path = write_study('name = "d"\ndataset = "digits"\n[early_stopping]\n[optimizer]\n[dropout]\n')
    settings = expand_runs(load_study(path))[0].settings
    defaults = RunSettings(dataset="digits", model="mlp", layers=settings.layers, dropout=settings.dropout)
    assert settings == replace(defaults, early_stopping=EarlyStoppingSpec())
    assert settings.dropout == {"input": 0.0, "hidden1": 0.0, "hidden2": 0.0}


def test_a_slot_given_as_a_rate_and_a_grid_over_its_table_meet(write_study):
    # a kind swept on a slot given as a plain rate, and a rate swept on a slot given as a table
    path = write_study(
        """
        name = "slots"
        dataset = "digits"
        model = "cnn"
        seeds = 1
        [dropout]
        conv = 0.2
        dense1 = {rate = 0.3, kind = "gaussian"}
        [grid]
        "dropout.conv.kind" = ["standard", "spatial"]
        "dropout.dense1" = [0.1, 0.5]
        """
    )
    runs = expand_runs(load_study(path))
    assert sorted((r.settings.kind_of("conv"), r.settings.dropout["conv"]) for r in runs) == [
        ("spatial", 0.2), ("spatial", 0.2), ("standard", 0.2), ("standard", 0.2)]  # fmt: skip
    assert {(r.settings.kind_of("dense1"), r.settings.dropout["dense1"]) for r in runs} == {
        ("gaussian", 0.1), ("gaussian", 0.5)}  # fmt: skip


def test_grid_union_and_table_values_give_consistent_params(write_study):
    path = write_study(
        BASE
        + """
        [[grid]]
        dropout = [{input = 0.0, hidden1 = 0.0, hidden2 = 0.0}, {input = 0.2, hidden1 = 0.5, hidden2 = 0.5}]
        [[grid]]
        "dropout.hidden1" = [0.1, 0.0]
        """
    )
    runs = expand_runs(load_study(path))
    # (0, 0, 0) appears in both sub-grids and is kept once
    configs = sorted({tuple(r.params.values()) for r in runs})
    assert configs == [(0.0, 0.0, 0.0), (0.0, 0.1, 0.0), (0.2, 0.5, 0.5)]
    assert len(runs) == 3 * 2
    assert all(list(r.params) == ["dropout.input", "dropout.hidden1", "dropout.hidden2"] for r in runs)


def test_run_ids_are_stable_and_depend_on_settings_and_seed(write_study):
    a = expand_runs(load_study(write_study(BASE, "a.toml")))
    b = expand_runs(load_study(write_study(BASE, "b.toml")))
    assert [r.id for r in a] == [r.id for r in b]
    c = expand_runs(load_study(write_study(BASE.replace("epochs = 2", "epochs = 3"), "c.toml")))
    assert not {r.id for r in a} & {r.id for r in c}


def test_seed_count_means_range(write_study):
    study = load_study(write_study(BASE.replace("seeds = [0, 1]", "seeds = 4")))
    assert study.seeds == (0, 1, 2, 3)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("epochs = 0", "epochs: 0 is out of range; allowed: >= 1"),
        ('epochs = "ten"', "epochs: expected a whole number, got 'ten'"),
        ("batch_size = 0", "batch_size: 0 is out of range"),
        ('dataset = "mnsit"', "unknown dataset 'mnsit'"),
        ('model = "resnet50"', "model: 'resnet50' is not allowed; allowed: mlp, cnn, lenet5, resnet, gru"),
        ('batchnorm = "yes"', "batchnorm: expected true or false"),
        (
            'model = "gru"\nbatchnorm = true',
            "batchnorm: applies to the presets mlp, cnn, lenet5; gru has none",
        ),
        ("label_smoothing = 1.0", r"label_smoothing: 1.0 is out of range; allowed: \[0.0, 1.0\)"),
        ("max_norm = 0", "max_norm: 0 is out of range; allowed: > 0"),
        ('augment = ["rotate"]', "augment\\[0\\]: 'rotate' is not allowed; allowed: crop, flip"),
        ('augment = ["flip", "flip"]', "augment: .* repeats an augmentation"),
        ("mc_samples = [0]", "mc_samples\\[0\\]: 0 is out of range; allowed: >= 1"),
        ("mc_samples = [5000]", "mc_samples: .* out of range; allowed: 1 to 1000"),
        ("[dropout]\nkind = 'bernoulli'", "dropout.kind: 'bernoulli' is not allowed; allowed: standard, "),
        (
            "[dropout]\nhidden1 = {rate = 0.2, size = 3}",
            "dropout.hidden1.size: unknown key; allowed: block_size, kind, rate",
        ),
        (
            'model = "resnet"\n[dropout]\nblock = {rate = 0.1, kind = "standard"}\nhead = {rate = 0.1, kind = "variational"}',
            "dropout.head: resnet's slot 'head' uses standard dropout, not 'variational'",
        ),
        (
            "[dropout]\nhidden1 = 1.0",
            r"dropout.hidden1: a dropout rate must be a number in \[0, 1\), got 1.0",
        ),
        ("[dropout]\nhidden1 = -0.1", r"dropout.hidden1: a dropout rate must be a number in \[0, 1\)"),
        (
            "[dropout]\nconv = 0.1",
            "dropout.conv: unknown slot for model 'mlp'; its slots: input, hidden1, hidden2",
        ),
        (
            "learning_rate = 0.1",
            r"learning_rate: unknown key \(did you mean 'lr' in \[optimizer\]\?\); allowed: ",
        ),
        (
            '[optimizer]\nname = "rmsprop"',
            "optimizer.name: 'rmsprop' is not allowed; allowed: sgd, adam, adamw",
        ),
        ("[optimizer]\nlr = -1", "optimizer.lr: -1 is out of range"),
        ("[optimizer]\nlr = 0.1\nbeta = 0.9", "optimizer.beta: unknown key"),
        ('[optimizer]\nname = "adam"\nmomentum = 0.9', "only sgd takes a momentum"),
        ('normalize = "minmax"', "normalize: 'minmax' is not allowed; allowed: unit, symmetric, standard"),
        ("validation = 1.0", r"validation: 1.0 is out of range; allowed: \[0.0, 1.0\)"),
        ('init = "he"', "init: 'he' is not allowed; allowed: torch, keras"),
        ("validation = 0\n[early_stopping]\npatience = 2", "early_stopping: needs a validation split"),
        ('[early_stopping]\nmonitor = "val_f1"', "early_stopping.monitor: 'val_f1' is not allowed"),
        (
            '[grid]\n"dropout.hidden3" = [0.1]',
            "dropout.hidden3: unknown slot .* \\(in the grid point dropout.hidden3=0.1\\)",
        ),
        ('[grid]\n"dropout.hidden1" = [0.1, 1.5]', r"in the grid point dropout.hidden1=1.5"),
        ('[grid]\n"optimiser.lr" = [0.1]', "unknown setting 'optimiser'"),
        ('[grid]\n"dropout.hidden1" = 0.5', "expected a non-empty list of values"),
        ("eval_train = 1", "eval_train: expected true or false"),
    ],
)
def test_bad_study_values_are_refused_naming_file_key_and_allowed(write_study, change, message):
    top = change.split("[")[0]
    replaced = {line.split("=")[0].strip() for line in top.splitlines() if "=" in line}
    base = "\n".join(line for line in BASE.splitlines() if line.split("=")[0].strip() not in replaced)
    path = write_study(base + "\n" + change + "\n")
    with pytest.raises(DropoutlabError, match=message) as info:
        load_study(path)
    text = str(info.value)
    assert text.startswith(str(path))
    assert "\n" not in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = \n", "not valid TOML"),
        ('dataset = "digits"\n', "name: missing"),
        ('name = "x"\n', "dataset: missing"),
        ('name = "x"\ndataset = "digits"\nseeds = [1, 1]\n', "repeats a seed"),
        ('name = "x"\ndataset = "digits"\nseeds = []\n', "seeds: expected a list of whole numbers"),
    ],
)
def test_broken_study_files_get_one_line(write_study, text, message):
    with pytest.raises(DropoutlabError, match=message):
        load_study(write_study(text))


def test_missing_study_file_is_named(tmp_path):
    with pytest.raises(DropoutlabError, match="no such study file"):
        load_study(tmp_path / "nope.toml")


def test_custom_model_in_study_file(write_study):
    path = write_study(
        BASE.replace('model = "mlp"\n', "")
        + """
        [[model.layers]]
        type = "flatten"
        [[model.layers]]
        type = "dense"
        units = 32
        activation = "relu"
        [[model.layers]]
        type = "dropout"
        slot = "hidden"
        [[model.layers]]
        type = "dense"
        units = "classes"
        [grid]
        "dropout.hidden" = [0.0, 0.3]
        """
    )
    runs = expand_runs(load_study(path))
    assert {r.settings.model for r in runs} == {"custom"}
    assert sorted({r.params["dropout.hidden"] for r in runs}) == [0.0, 0.3]


def test_custom_model_that_does_not_fit_the_dataset_is_refused_before_training(write_study):
    path = write_study(
        BASE.replace('model = "mlp"\n', "")
        + """
        [[model.layers]]
        type = "flatten"
        [[model.layers]]
        type = "dense"
        units = 3
        """
    )
    with pytest.raises(DropoutlabError, match="dataset has 10 classes"):
        load_study(path)


def test_a_top_level_list_is_told_to_move_into_a_grid(write_study):
    path = write_study(
        """
        name = "s"
        dataset = "digits"
        model = ["mlp", "cnn"]
        [[grid]]
        "dropout.rate" = [0.0, 0.2]
        """
    )
    with pytest.raises(DropoutlabError, match=r"to sweep model, put the list in a \[\[grid\]\] table"):
        expand_runs(load_study(path))


def test_a_grid_over_every_slots_rate_labels_each_point_with_its_own_value(write_study):
    path = write_study(
        """
        name = "s"
        dataset = "digits"
        model = "mlp"
        [dropout]
        input = 0.2
        hidden2 = 0.2
        [[grid]]
        "dropout.rate" = [0.0, 0.5]
        """
    )
    runs = expand_runs(load_study(path))
    assert sorted({r.params["dropout.rate"] for r in runs}) == [0.0, 0.5]  # not 0.2 for both
