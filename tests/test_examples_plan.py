"""The example studies' plans, without training: each file loads and expands (as ``run --dry-run``
does) to the runs it promises, and the multi-factor examples cross the factors they name."""

import itertools
from collections import Counter
from pathlib import Path

import pytest

from dropoutlab.models import FAMILIES, PRESETS, dropout_kinds
from dropoutlab.study import expand_runs, load_study

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# file stem: (configurations, seeds)
PLANS = {
    "batchnorm_dropout_digits": (6, 3),
    "cifar10_dropout_sweep": (7, 3),
    "digits_dropout_comparison_mlp": (2, 5),
    "digits_dropout_sweep_cnn": (7, 3),
    "dropout_kinds_cnn_digits": (13, 5),
    "dropout_vs_l2_digits": (9, 5),
    "fashion_mnist_dropout_comparison": (2, 3),
    "model_families_digits": (14, 3),
    "paper_mc_vs_weight_scaling": (1, 5),
    "regularizers_digits": (12, 10),
    "regularizers_fashion_mnist": (12, 5),
}
FILES = sorted(EXAMPLES.glob("*.toml"))


def plan(stem):
    study = load_study(EXAMPLES / f"{stem}.toml")
    return study, expand_runs(study)


def configurations(runs):
    """Each configuration's runs, by its resolved settings (the run id without the seed)."""
    groups = {}
    for run in runs:
        groups.setdefault(repr(run.settings), []).append(run)
    return list(groups.values())


def test_every_example_has_a_plan_here():
    assert sorted(p.stem for p in FILES) == sorted(PLANS)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_every_example_expands_to_its_planned_runs(path):
    study = load_study(path)
    runs = expand_runs(study)
    n_configs, n_seeds = PLANS[path.stem]
    assert len(study.seeds) == n_seeds
    assert len(runs) == n_configs * n_seeds
    assert len({r.id for r in runs}) == len(runs)
    groups = configurations(runs)
    assert len(groups) == n_configs
    # every configuration runs every seed, so configurations are compared seed by seed
    assert all(sorted(r.seed for r in group) == sorted(study.seeds) for group in groups)
    assert study.name == path.stem.replace("_", "-")
    assert path.read_text().startswith("#")  # a header says what the study asks


@pytest.mark.parametrize("stem", ["regularizers_digits", "regularizers_fashion_mnist"])
def test_regularizers_cross_dropout_weight_decay_and_batchnorm(stem):
    study, runs = plan(stem)
    cells = Counter(
        (r.params["dropout.rate"], r.params["optimizer.weight_decay"], r.params["batchnorm"]) for r in runs
    )
    rates, decays, norms = (0.0, 0.3, 0.5), (0.0, 0.001), (False, True)
    assert set(cells) == set(itertools.product(rates, decays, norms))
    assert set(cells.values()) == {len(study.seeds)}
    for run in runs:
        s = run.settings
        assert s.model == "mlp" and s.batchnorm is run.params["batchnorm"]
        assert s.optimizer.weight_decay == run.params["optimizer.weight_decay"]
        # the rate is hidden dropout only: both hidden layers, never the input
        assert s.dropout == {
            "input": 0.0,
            "hidden1": run.params["dropout.rate"],
            "hidden2": run.params["dropout.rate"],
        }
        assert any(layer.type == "batchnorm" for layer in s.layers) is s.batchnorm
    assert {r.settings.dataset for r in runs} == {"digits" if stem.endswith("digits") else "fashion-mnist"}


def test_regularizers_on_fashion_mnist_is_the_digits_design():
    (digits, d_runs), (fashion, f_runs) = plan("regularizers_digits"), plan("regularizers_fashion_mnist")
    assert digits.grid == fashion.grid
    assert {tuple(r.params.items()) for r in d_runs} == {tuple(r.params.items()) for r in f_runs}
    shared = ("model", "batch_size", "normalize", "validation", "optimizer", "dropout")
    assert {k: digits.settings[k] for k in shared} == {k: fashion.settings[k] for k in shared}


def test_dropout_kinds_cross_every_image_kind_with_two_rates_at_the_conv_slot():
    study, runs = plan("dropout_kinds_cnn_digits")
    image_kinds = {name for name, cls in dropout_kinds().items() if "image" in cls.applies_to}
    cells = Counter((r.params["dropout.conv"], r.params["dropout.conv.kind"]) for r in runs)
    kinds = {kind for rate, kind in cells if rate > 0}
    assert {"standard", "gaussian", "spatial", "dropblock", "concrete"} <= kinds <= image_kinds
    assert set(cells) == {(0.0, "standard")} | set(itertools.product((0.1, 0.3), kinds))
    assert set(cells.values()) == {len(study.seeds)} and len(study.seeds) >= 3
    for run in runs:
        s = run.settings
        assert (s.model, s.dataset) == ("cnn", "digits")
        assert s.dropout["dense1"] == s.dropout["dense2"] == 0.0  # dropout at the convolution only
        assert s.kind_of("conv") == run.params["dropout.conv.kind"]


def test_model_families_cross_every_model_with_and_without_dropout():
    study, runs = plan("model_families_digits")
    cells = Counter((r.params["model"], r.params["dropout.rate"]) for r in runs)
    models = {model for model, _ in cells}
    assert set(FAMILIES) <= models <= set(PRESETS) | set(FAMILIES)
    assert len(models & set(PRESETS)) >= 2
    assert set(cells) == set(itertools.product(models, (0.0, 0.2)))
    assert set(cells.values()) == {3} and len(study.seeds) == 3
    for run in runs:
        assert run.settings.dataset == "digits" and run.settings.epochs <= 20
        # "dropout.rate" reaches every slot of whichever model it crosses with
        assert set(run.settings.dropout.values()) == {run.params["dropout.rate"]}
