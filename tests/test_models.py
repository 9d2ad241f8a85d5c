import pytest
import torch
from torch import nn

from dropoutlab.errors import DropoutlabError
from dropoutlab.layers import Dropout
from dropoutlab.models import PRESETS, build_model, dropout_slots, parse_layers, summarize_model


def module_names(model):
    return [name for name, _ in model.named_children()]


def test_mlp_preset_is_the_fashion_mnist_notebooks_network_with_dropout_where_asked():
    model = build_model(PRESETS["mlp"], {"input": 0.2, "hidden1": 0.5, "hidden2": 0.5}, (1, 28, 28), 10)
    assert module_names(model) == [
        "flatten_1", "dropout_input", "dense_1", "relu_1", "dropout_hidden1",
        "dense_2", "relu_2", "dropout_hidden2", "dense_3",
    ]  # fmt: skip
    assert [m.out_features for m in model if isinstance(m, nn.Linear)] == [120, 60, 10]
    assert [m.p for m in model if isinstance(m, Dropout)] == [0.2, 0.5, 0.5]


def test_slot_with_rate_zero_adds_no_layer():
    model = build_model(PRESETS["mlp"], {"hidden1": 0.3}, (1, 8, 8), 10)
    drops = [m for m in model if isinstance(m, Dropout)]
    assert [(d.slot, d.p) for d in drops] == [("hidden1", 0.3)]


def test_cnn_preset_is_the_cifar10_notebooks_network():
    model = build_model(PRESETS["cnn"], {"conv": 0.05, "dense1": 0.15}, (3, 32, 32), 10)
    assert module_names(model) == [
        "conv2d_1", "relu_1", "dropout_conv", "conv2d_2", "relu_2", "flatten_1",
        "dense_1", "relu_3", "dropout_dense1", "dense_2", "relu_4", "dense_3",
    ]  # fmt: skip
    assert model.dense_1.in_features == 32 * 28 * 28
    assert dropout_slots(PRESETS["cnn"]) == {"conv": 0.0, "dense1": 0.0, "dense2": 0.0}


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("preset", ["mlp", "cnn"])
def test_presets_run_on_every_dataset_shape(preset, shape):
    model = build_model(PRESETS[preset], {}, shape, 7)
    assert model(torch.zeros(5, *shape)).shape == (5, 7)


def test_dropout_zeroes_only_at_its_slot_in_train_mode_and_is_identity_in_eval():
    torch.manual_seed(0)
    model = build_model(PRESETS["mlp"], {"hidden1": 0.5}, (1, 8, 8), 10)
    seen = {}
    for name, module in model.named_children():
        module.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, (i[0], o)))
    x = torch.rand(512, 1, 8, 8) + 0.1
    model.train()
    model(x)
    inp, out = seen["dropout_hidden1"]
    active = inp != 0
    zeroed = (out[active] == 0).float().mean().item()
    assert 0.45 < zeroed < 0.55
    assert torch.allclose(out[out != 0], inp[out != 0] * 2.0)  # survivors scaled by 1 / (1 - p)
    model.eval()
    model(x)
    inp, out = seen["dropout_hidden1"]
    assert torch.equal(inp, out)


def test_keras_init_gives_glorot_uniform_weights_and_zero_biases():
    torch.manual_seed(0)
    model = build_model(PRESETS["cnn"], {}, (3, 32, 32), 10, init="keras")
    for layer in [model.conv2d_1, model.dense_1, model.dense_3]:
        fan_in = layer.weight[0].numel()
        fan_out = (
            layer.weight.shape[0] * layer.weight[0, 0].numel()
            if layer.weight.dim() == 4
            else layer.weight.shape[0]
        )
        limit = (6 / (fan_in + fan_out)) ** 0.5
        assert layer.weight.abs().max() <= limit
        assert layer.weight.abs().max() > 0.9 * limit
        assert torch.count_nonzero(layer.bias) == 0
    torch_default = build_model(PRESETS["cnn"], {}, (3, 32, 32), 10, init="torch")
    assert torch.count_nonzero(torch_default.dense_1.bias) > 0


def test_custom_layers_build_with_shapes_and_batchnorm():
    layers = parse_layers(
        [
            {"type": "conv2d", "filters": 8, "kernel": 3, "padding": "same", "activation": "relu"},
            {"type": "batchnorm"},
            {"type": "maxpool2d", "size": 2},
            {"type": "dropout", "slot": "conv", "rate": 0.1},
            {"type": "flatten"},
            {"type": "dense", "units": 16},
            {"type": "batchnorm"},
            {"type": "activation", "name": "tanh"},
            {"type": "dropout", "rate": 0.25},
            {"type": "dense", "units": "classes"},
        ],
        "model.layers",
    )
    rows = summarize_model(layers, {}, (1, 28, 28), 10)
    shapes = {r.name: r.output_shape for r in rows}
    assert shapes["maxpool2d_1"] == (8, 14, 14)
    assert shapes["dense_1"] == (16,)
    assert isinstance(build_model(layers, {}, (1, 28, 28), 10).batchnorm_2, nn.BatchNorm1d)
    assert dropout_slots(layers) == {"conv": 0.1}
    total = sum(r.params for r in rows)
    assert total == sum(p.numel() for p in build_model(layers, {}, (1, 28, 28), 10).parameters())


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([{"type": "dense", "units": 10}], "add a flatten layer"),
        ([{"type": "flatten"}, {"type": "dense", "units": 5}], "dataset has 10 classes"),
        ([{"type": "conv2d", "filters": 4, "kernel": 9}, {"type": "flatten"}, {"type": "dense", "units": "classes"}],
         "too small for kernel 9"),
    ],
)  # fmt: skip
def test_misfit_layer_lists_are_refused_with_the_reason(layers, message):
    with pytest.raises(DropoutlabError, match=message):
        build_model(parse_layers(layers, "model.layers"), {}, (1, 8, 8), 10)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([{"type": "dense2"}], "unknown layer type 'dense2'; allowed: dense, conv2d"),
        ([{"type": "dense", "units": 0}], "expected a whole number >= 1"),
        ([{"type": "dense", "units": 4, "act": "relu"}], "unknown option for a dense layer"),
        ([{"type": "dropout", "rate": 1.0}], r"\[0, 1\)"),
        ([{"type": "dropout"}], "needs a 'slot' name or a fixed 'rate'"),
        ([{"type": "dense", "units": 3, "activation": "swish"}], "unknown activation 'swish'"),
    ],
)
def test_bad_layer_tables_name_the_key_and_what_is_allowed(raw, message):
    with pytest.raises(DropoutlabError, match=message):
        parse_layers(raw, "model.layers")


def test_dropout_module_prints_its_rate_and_slot():
    assert "p=0.3, slot='conv'" in repr(Dropout(0.3, slot="conv"))
    with pytest.raises(ValueError):
        Dropout(1.0)
