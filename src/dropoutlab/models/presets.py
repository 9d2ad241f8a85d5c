"""The networks of the two teaching notebooks, as layer lists with named dropout slots."""

from __future__ import annotations

from dataclasses import replace

from dropoutlab.runs import LayerSpec

L = LayerSpec

PRESETS: dict[str, tuple[LayerSpec, ...]] = {
    # The Fashion-MNIST notebook (PyTorch): flatten, 120, 60, classes; ReLU.
    "mlp": (
        L("flatten"),
        L("dropout", slot="input"),
        L("dense", units=120, activation="relu"),
        L("dropout", slot="hidden1"),
        L("dense", units=60, activation="relu"),
        L("dropout", slot="hidden2"),
        L("dense", units="classes"),
    ),
    # The CIFAR-10 notebook (Keras): two 3x3 convolutions of 32 filters, two dense layers of 300.
    "cnn": (
        L("conv2d", filters=32, kernel=3, activation="relu"),
        L("dropout", slot="conv"),
        L("conv2d", filters=32, kernel=3, activation="relu"),
        L("flatten"),
        L("dense", units=300, activation="relu"),
        L("dropout", slot="dense1"),
        L("dense", units=300, activation="relu"),
        L("dropout", slot="dense2"),
        L("dense", units="classes"),
    ),
    # LeNet-5 (LeCun et al. 1998) with ReLU and max pooling; both convolutions "same"-padded so
    # that it also fits 8x8 digits (the original's second convolution is unpadded, on 32x32).
    "lenet5": (
        L("conv2d", filters=6, kernel=5, padding="same", activation="relu"),
        L("maxpool2d", size=2),
        L("dropout", slot="conv"),
        L("conv2d", filters=16, kernel=5, padding="same", activation="relu"),
        L("maxpool2d", size=2),
        L("flatten"),
        L("dense", units=120, activation="relu"),
        L("dropout", slot="dense1"),
        L("dense", units=84, activation="relu"),
        L("dropout", slot="dense2"),
        L("dense", units="classes"),
    ),
}

DESCRIPTIONS = {
    "mlp": "multilayer perceptron: flatten, dense 120, dense 60, classes (ReLU); the network of the "
    "Fashion-MNIST with/without dropout comparison",
    "cnn": "CNN: conv 32 3x3, conv 32 3x3, dense 300, dense 300, classes (ReLU); the network of the "
    "CIFAR-10 dropout-rate sweep",
    "lenet5": "LeNet-5 (LeCun et al. 1998): conv 6 5x5, pool, conv 16 5x5, pool, dense 120, dense 84, "
    "classes (ReLU, max pooling, 'same' padding)",
}


def with_batchnorm(layers: tuple[LayerSpec, ...]) -> tuple[LayerSpec, ...]:
    """A preset with batch norm after each hidden dense or convolution layer, before its
    activation (Ioffe and Szegedy 2015, as Keras examples place it); dropout slots stay
    after the activation. ``dropoutlab models NAME --batchnorm`` shows where."""
    out: list[LayerSpec] = []
    for layer in layers:
        hidden = layer.type in ("dense", "conv2d") and layer.units != "classes"
        if hidden and layer.activation and layer.activation != "linear":
            out += [replace(layer, activation=None), L("batchnorm"), L("activation", name=layer.activation)]
        elif hidden:
            out += [layer, L("batchnorm")]
        else:
            out.append(layer)
    return tuple(out)
