"""Turn a layer list into an ``nn.Sequential``, with shapes checked before any training."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from torch import nn

from dropoutlab.errors import DropoutlabError
from dropoutlab.layers import Dropout
from dropoutlab.runs import LayerSpec

_ACTIVATION_MODULES = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}


@dataclass(frozen=True)
class LayerRow:
    """One line of a model summary: module name, kind, output shape (no batch axis), parameters."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def build_model(
    layers: tuple[LayerSpec, ...],
    rates: dict[str, float],
    input_shape: tuple[int, ...],
    num_classes: int,
    init: str = "torch",
) -> nn.Sequential:
    """Build the network of ``layers`` for images of ``input_shape`` = (C, H, W).

    ``rates`` gives the dropout rate of each slot; a slot with rate 0 adds no layer.
    ``init="keras"`` gives Glorot-uniform weights and zero biases (Keras' defaults);
    ``"torch"`` keeps PyTorch's defaults. Raises DropoutlabError when shapes do not fit.
    """
    model, _ = _build(layers, rates, input_shape, num_classes)
    if init == "keras":
        for module in model.modules():
            if isinstance(module, nn.Linear | nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
    return model


def summarize_model(
    layers: tuple[LayerSpec, ...], rates: dict[str, float], input_shape: tuple[int, ...], num_classes: int
) -> list[LayerRow]:
    """The rows of a Keras-style ``model.summary()``: one per module, with output shapes.

    Computed from the layer list alone, without building the network, so a layer that
    declares 2**62 units costs nothing to check (see :func:`model_size`).
    """
    return [row for row, _ in _layers(layers, rates, input_shape, num_classes)]


@dataclass(frozen=True)
class ModelSize:
    """A model's size from its summary: ``params`` (trainable values) and ``activations``
    (values of every layer's output for one sample, the input included)."""

    params: int
    activations: int


def model_size(rows: list[LayerRow], input_shape: tuple[int, ...]) -> ModelSize:
    """Parameters and per-sample activation values of the summary ``rows`` (exact integers)."""
    return ModelSize(
        params=sum(row.params for row in rows),
        activations=math.prod(input_shape) + sum(math.prod(row.output_shape) for row in rows),
    )


def _build(layers, rates, input_shape, num_classes) -> tuple[nn.Sequential, list[LayerRow]]:
    modules: OrderedDict[str, nn.Module] = OrderedDict()
    rows: list[LayerRow] = []
    for row, make in _layers(layers, rates, input_shape, num_classes):
        modules[row.name] = make()
        rows.append(row)
    return nn.Sequential(modules), rows


def _layers(layers, rates, input_shape, num_classes) -> list[tuple[LayerRow, Callable[[], nn.Module]]]:
    """Each module's summary row (shapes and parameter counts by arithmetic) and how to build it."""
    out: list[tuple[LayerRow, Callable[[], nn.Module]]] = []
    shape = tuple(input_shape)
    counts: dict[str, int] = {}

    def add(kind: str, cls: type[nn.Module], params: int, make, out_shape, name: str | None = None) -> None:
        counts[kind] = counts.get(kind, 0) + 1
        out.append((LayerRow(name or f"{kind}_{counts[kind]}", cls.__name__, out_shape, params), make))

    for i, layer in enumerate(layers):
        where = f"model layer {i} ({layer.type})"
        if layer.type == "flatten":
            shape = (math.prod(shape),)
            add("flatten", nn.Flatten, 0, nn.Flatten, shape)
        elif layer.type == "dense":
            if len(shape) != 1:
                raise DropoutlabError(f"{where}: gets input of shape {shape}; add a flatten layer before it")
            units = num_classes if layer.units == "classes" else int(layer.units)
            add("dense", nn.Linear, shape[0] * units + units, partial(nn.Linear, shape[0], units), (units,))
            shape = (units,)
        elif layer.type == "conv2d":
            if len(shape) != 3:
                raise DropoutlabError(f"{where}: needs image input (C, H, W), gets shape {shape}")
            stride = layer.stride or 1
            padding = layer.padding if layer.padding is not None else 0
            if padding == "same":
                if stride != 1:
                    raise DropoutlabError(f'{where}: padding "same" needs stride 1')
                pad = (layer.kernel - 1) // 2
                if layer.kernel % 2 == 0:
                    raise DropoutlabError(f'{where}: padding "same" needs an odd kernel')
            else:
                pad = 0 if padding == "valid" else int(padding)
            h, w = (_conv_out(s, layer.kernel, stride, pad) for s in shape[1:])
            if h < 1 or w < 1:
                raise DropoutlabError(
                    f"{where}: input {shape[1]}x{shape[2]} is too small for kernel {layer.kernel}"
                )
            params = shape[0] * layer.filters * layer.kernel**2 + layer.filters
            make = partial(nn.Conv2d, shape[0], layer.filters, layer.kernel, stride=stride, padding=pad)
            shape = (layer.filters, h, w)
            add("conv2d", nn.Conv2d, params, make, shape)
        elif layer.type == "maxpool2d":
            if len(shape) != 3:
                raise DropoutlabError(f"{where}: needs image input (C, H, W), gets shape {shape}")
            size = layer.size or 2
            stride = layer.stride or size
            h, w = (_conv_out(s, size, stride, 0) for s in shape[1:])
            if h < 1 or w < 1:
                raise DropoutlabError(f"{where}: input {shape[1]}x{shape[2]} is too small to pool by {size}")
            shape = (shape[0], h, w)
            add("maxpool2d", nn.MaxPool2d, 0, partial(nn.MaxPool2d, size, stride), shape)
        elif layer.type == "batchnorm":
            cls = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
            add("batchnorm", cls, 2 * shape[0], partial(cls, shape[0]), shape)  # weight and bias
        elif layer.type == "dropout":
            rate = rates.get(layer.slot, layer.rate or 0.0) if layer.slot else layer.rate
            if rate:
                name = f"dropout_{layer.slot}" if layer.slot else None
                add("dropout", Dropout, 0, partial(Dropout, rate, slot=layer.slot), shape, name=name)
        activation = layer.name if layer.type == "activation" else layer.activation
        if activation and activation != "linear":
            cls = _ACTIVATION_MODULES[activation]
            add(activation, cls, 0, cls, shape)

    if shape != (num_classes,):
        raise DropoutlabError(
            f"the model ends with output shape {shape} but the dataset has {num_classes} classes; "
            'end the layer list with {type = "dense", units = "classes"}'
        )
    return out
