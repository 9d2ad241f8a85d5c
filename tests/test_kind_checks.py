"""Slot, kind and option checks that must refuse a study before anything trains, and what a
concrete-dropout run records as its training loss in both engines."""

from __future__ import annotations

import pytest
import torch
from conftest import make_run, prepared

from dropoutlab.cli import main
from dropoutlab.errors import DropoutlabError
from dropoutlab.layers.kinds import DropBlock
from dropoutlab.models import build_network
from dropoutlab.study import expand_runs, load_study
from dropoutlab.train import ENGINES, single, stacked, train_runs

CPU = torch.device("cpu")

CNN_STUDY = """
name = "kinds"
dataset = "digits"
model = "cnn"
epochs = 1
seeds = 1
"""


def refused(write_study, text: str) -> str:
    """The one-line error of loading the study ``text`` (without the file name)."""
    path = write_study(text)
    with pytest.raises(DropoutlabError) as info:
        load_study(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message[len(f"{path}: ") :]


def built(run, data_shape=(1, 8, 8), classes=10):
    return build_network(run.settings, data_shape, classes)


# ---------------------------------------------------------------------------------------------
# 1. block_size belongs to dropblock


def test_block_size_on_a_spatial_slot_is_refused_at_load_naming_slot_option_and_kind(write_study):
    message = refused(
        write_study, CNN_STUDY + '[dropout]\nconv = {rate = 0.2, kind = "spatial", block_size = 3}\n'
    )
    assert message.startswith("dropout.conv.block_size: ")
    assert "'dropblock'" in message and "'spatial'" in message and "slot 'conv'" in message


def test_block_size_on_a_spatial_slot_fails_the_dry_run(write_study, tmp_path, capsys):
    path = write_study(CNN_STUDY + '[dropout]\nconv = {rate = 0.2, kind = "spatial", block_size = 3}\n')
    code = main(["run", str(path), "--dry-run", "--store", str(tmp_path / "x.db")])
    _, err = capsys.readouterr()
    assert code == 2
    assert "dropout.conv.block_size: " in err and len(err.strip().splitlines()) == 1


def test_block_size_on_a_slot_of_the_default_kind_or_a_family_slot_is_refused(write_study):
    message = refused(write_study, CNN_STUDY + "[dropout]\nconv = {rate = 0.2, block_size = 2}\n")
    assert message.startswith("dropout.conv.block_size: ") and "'standard'" in message
    family = CNN_STUDY.replace('model = "cnn"', 'model = "resnet"')
    message = refused(write_study, family + "[dropout]\nhead = {rate = 0.2, block_size = 2}\n")
    assert message.startswith("dropout.head.block_size: ")


def test_a_block_size_that_only_non_dropblock_runs_set_is_refused(write_study):
    message = refused(
        write_study,
        CNN_STUDY
        + '[dropout]\nconv = {rate = 0.2, block_size = 2}\n[[grid]]\n"dropout.conv.kind" = ["dropblock"]\n'
        + '[[grid]]\n"dropout.conv.kind" = ["spatial"]\n"dropout.conv.block_size" = [5]\n',
    )
    assert message.startswith("dropout.conv.block_size: ") and "5" in message


def test_a_kind_grid_with_block_size_gives_it_to_the_dropblock_runs_only(write_study):
    study = load_study(
        write_study(
            CNN_STUDY
            + "[dropout]\nconv = {rate = 0.2, block_size = 2}\n"
            + '[grid]\n"dropout.conv.kind" = ["standard", "spatial", "dropblock"]\n'
        )
    )
    runs = expand_runs(study)
    assert len(runs) == 3
    for run in runs:
        kind = run.settings.kind_of("conv")
        net = built(run)  # raised TypeError (unexpected keyword 'block_size') for standard and spatial
        if kind == "dropblock":
            assert run.settings.slot_options == {"conv": {"block_size": 2}}
            assert [m.block_size for m in net.modules() if isinstance(m, DropBlock)] == [2]
        else:
            assert run.settings.slot_options == {}
            assert run.params["dropout.conv.kind"] == kind


def test_an_ignored_block_size_leaves_the_run_as_it_is_without_it(write_study):
    with_size = write_study(
        CNN_STUDY
        + '[dropout]\nconv = {rate = 0.2, block_size = 2}\n[grid]\n"dropout.conv.kind" = ["spatial", "dropblock"]\n',
        "a.toml",
    )
    without = write_study(CNN_STUDY + '[dropout]\nconv = {rate = 0.2, kind = "spatial"}\n', "b.toml")
    spatial = [r for r in expand_runs(load_study(with_size)) if r.settings.kind_of("conv") == "spatial"]
    assert [r.id for r in spatial] == [r.id for r in expand_runs(load_study(without))]


def test_block_size_on_a_dropblock_slot_still_works(write_study):
    (run,) = expand_runs(
        load_study(
            write_study(CNN_STUDY + '[dropout]\nconv = {rate = 0.2, kind = "dropblock", block_size = 2}\n')
        )
    )
    assert [m.block_size for m in built(run).modules() if isinstance(m, DropBlock)] == [2]


# ---------------------------------------------------------------------------------------------
# 2. dropconnect needs a dense layer right after its slot


def custom(layers: str, dropout: str) -> str:
    return (
        'name = "custom"\ndataset = "digits"\nepochs = 1\nseeds = 1\n'
        f"[model]\nlayers = [{layers}]\n[dropout]\n{dropout}\n"
    )


FLATTEN = '{type = "flatten"}'
DENSE = '{type = "dense", units = 32}'
CLASSES = '{type = "dense", units = "classes"}'
RELU = '{type = "activation", name = "relu"}'


@pytest.mark.parametrize(
    ("layers", "follows"),
    [
        ([FLATTEN, DENSE, '{type = "dropout", slot = "d"}', RELU, CLASSES], "activation"),
        ([FLATTEN, CLASSES, '{type = "dropout", slot = "d"}'], "end"),
        ([FLATTEN, DENSE, '{type = "dropout", slot = "d"}', '{type = "batchnorm"}', CLASSES], "batchnorm"),
    ],
)
def test_dropconnect_without_a_dense_layer_right_after_its_slot_is_refused(write_study, layers, follows):
    message = refused(write_study, custom(", ".join(layers), 'd = {rate = 0.3, kind = "dropconnect"}'))
    assert message.startswith("dropout.d: kind 'dropconnect' needs a dense layer right after the slot")
    assert "slot 'd'" in message
    assert ("ends the layer list" if follows == "end" else f" {follows} layer, where it") in message


def test_dropconnect_is_refused_in_a_grid_point_naming_the_point(write_study):
    layers = ", ".join([FLATTEN, DENSE, '{type = "dropout", slot = "d"}', RELU, CLASSES])
    text = custom(layers, "d = 0.3") + '[grid]\n"dropout.d.kind" = ["standard", "dropconnect"]\n'
    message = refused(write_study, text)
    assert message.startswith("dropout.d: kind 'dropconnect' needs a dense layer right after the slot")
    assert "(in the grid point dropout.d.kind=dropconnect)" in message


def test_two_dropconnect_slots_before_one_dense_layer_are_refused(write_study):
    layers = ", ".join([FLATTEN, '{type = "dropout", slot = "a"}', '{type = "dropout", slot = "b"}', CLASSES])
    text = custom(layers, 'kind = "dropconnect"\na = 0.2\nb = 0.3')
    message = refused(write_study, text)
    assert message.startswith("dropout.b: kind 'dropconnect'") and "'a'" in message


def test_dropconnect_right_before_a_dense_layer_masks_its_weights(write_study):
    layers = ", ".join(
        [FLATTEN, '{type = "dropout", slot = "a"}', '{type = "dropout", rate = 0.1}', DENSE, RELU, CLASSES]
    )
    (run,) = expand_runs(load_study(write_study(custom(layers, 'a = {rate = 0.3, kind = "dropconnect"}'))))
    net = built(run)
    assert [type(m).__name__ for m in net.modules()].count("DropConnectLinear") == 1
    for preset in ("mlp", "cnn", "lenet5"):  # every slot of the presets' dense part takes it
        text = f'name = "p"\ndataset = "digits"\nmodel = "{preset}"\nseeds = 1\n[dropout]\n'
        slot = "hidden1" if preset == "mlp" else "dense1"
        load_study(write_study(text + f'{slot} = {{rate = 0.2, kind = "dropconnect"}}\n', f"{preset}.toml"))


@pytest.mark.parametrize(
    ("model", "slot", "kind", "message"),
    [
        ("mlp", "hidden1", "spatial", "dropout.hidden1: kind 'spatial' needs image activations, but slot 'hidden1' "
         "sits on feature vectors; allowed there: standard, scaled, gaussian, alpha, dropconnect, concrete"),
        ("cnn", "conv", "alpha", "dropout.conv: kind 'alpha' needs feature vectors, but slot 'conv' sits on images "
         "(before flatten); allowed there: standard, scaled, gaussian, spatial, dropblock, concrete"),
        ("cnn", "dense2", "droppath", "dropout.dense2: kind 'droppath' needs a residual block (model resnet), but "
         "slot 'dense2' sits on feature vectors; allowed there: standard, scaled, gaussian, alpha, dropconnect, "
         "concrete"),
    ],
)  # fmt: skip
def test_a_kind_where_its_slot_cannot_take_it_is_refused_naming_what_the_slot_takes(
    write_study, model, slot, kind, message
):
    text = f'name = "p"\ndataset = "digits"\nmodel = "{model}"\nseeds = 1\n[dropout]\n'
    assert refused(write_study, text + f'{slot} = {{rate = 0.2, kind = "{kind}"}}\n') == message


# ---------------------------------------------------------------------------------------------
# 3. a family's slot takes its own kind only


FAMILY = 'name = "family"\ndataset = "digits"\nmodel = "{model}"\nepochs = 1\nseeds = 1\n[dropout]\n'


@pytest.mark.parametrize(
    ("model", "slot", "kind", "own"),
    [
        ("resnet", "block", "standard", "droppath"),
        ("resnet", "head", "droppath", "standard"),
        ("gru", "recurrent", "standard", "variational"),
        ("lstm", "input", "standard", "variational"),
    ],
)
def test_a_family_slot_of_another_kind_is_refused_naming_slot_and_its_kinds(
    write_study, model, slot, kind, own
):
    text = FAMILY.format(model=model) + f'{slot} = {{rate = 0.1, kind = "{kind}"}}\n'
    message = refused(write_study, text)
    assert message.startswith(f"dropout.{slot}: {model}'s slot {slot!r} uses {own} dropout, not {kind!r}")
    assert f"the only kind it takes is {own!r}" in message


def test_a_family_slot_kind_in_a_grid_is_refused_too(write_study):
    text = (
        FAMILY.format(model="resnet")
        + 'block = 0.1\n[grid]\n"dropout.block.kind" = ["droppath", "standard"]\n'
    )
    message = refused(write_study, text)
    assert message.startswith("dropout.block: resnet's slot 'block' uses droppath dropout, not 'standard'")
    assert "(in the grid point dropout.block.kind=standard)" in message


def test_a_family_slot_of_its_own_kind_and_the_study_default_are_accepted(write_study):
    text = (
        FAMILY.format(model="resnet")
        + 'block = {rate = 0.1, kind = "droppath"}\nhead = {rate = 0.1, kind = "standard"}\n'
    )
    (run,) = expand_runs(load_study(write_study(text)))
    assert run.settings.dropout == {"head": 0.1, "block": 0.1}
    load_study(write_study(FAMILY.format(model="gru") + 'kind = "standard"\nrate = 0.1\n', "gru.toml"))


# ---------------------------------------------------------------------------------------------
# 4. concrete dropout's train_loss is the data loss in both engines


def test_concrete_train_loss_is_the_data_loss_in_both_engines_which_still_optimise_the_penalty(
    digits, monkeypatch
):
    """A constant added to the penalty changes no gradient, so it changes no weight; a recorded
    train_loss that held the penalty would move by the constant."""
    calls = {"single": 0, "stacked": 0}

    def shifted(engine, real):
        def penalty(layers):
            calls[engine] += 1
            return real(layers) + 100.0

        return penalty

    monkeypatch.setattr(single, "penalty", shifted("single", single.penalty))
    monkeypatch.setattr(stacked, "penalty", shifted("stacked", stacked.penalty))
    run = make_run(0, epochs=2, eval_train=False, dropout={"kind": "concrete", "rate": 0.3})
    data = prepared(digits, run)
    (one,) = train_runs([run], data, CPU, "single")
    (stack,) = train_runs([run], data, CPU, "stacked")
    assert calls["single"] > 0 and calls["stacked"] > 0  # both still optimise loss + penalty
    assert one.status == stack.status == "completed"
    for a, b in zip(one.history, stack.history, strict=True):
        assert 0 < a.train_loss < 3 and 0 < b.train_loss < 3  # cross-entropy of 10 classes
    assert one.history[0].train_loss == pytest.approx(stack.history[0].train_loss, rel=0.05)
    assert one.history[-1].train_loss < one.history[0].train_loss


@pytest.mark.parametrize("engine", ["single", "stacked"])
def test_weight_decay_leaves_concrete_dropouts_learned_rate_alone(digits, engine):
    runs = [make_run(0, dropout={"hidden1": {"rate": 0.2, "kind": "concrete"}},
                     optimizer={"name": "sgd", "lr": 0.1, "weight_decay": 0.5})]  # fmt: skip
    trainer = ENGINES[engine](runs, prepared(digits, runs[0]), torch.device("cpu"))
    model = trainer.model if engine == "single" else trainer.net
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    if engine == "single":
        trainer.optimizer.step()
    else:
        trainer.optimizer.step(list(model.parameters()), [p.grad for p in model.parameters()])
    for name, p in model.named_parameters():
        if name.endswith("p_logit"):  # no gradient, no decay: unchanged
            assert torch.equal(p, before[name]), name
        else:  # decayed by lr * weight_decay = 5%
            torch.testing.assert_close(p.detach(), before[name] * 0.95)
