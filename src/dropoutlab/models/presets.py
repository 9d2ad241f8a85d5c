"""The networks of the two teaching notebooks, as layer lists with named dropout slots."""

from __future__ import annotations

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
}

DESCRIPTIONS = {
    "mlp": "multilayer perceptron: flatten, dense 120, dense 60, classes (ReLU); the network of the "
    "Fashion-MNIST with/without dropout comparison",
    "cnn": "CNN: conv 32 3x3, conv 32 3x3, dense 300, dense 300, classes (ReLU); the network of the "
    "CIFAR-10 dropout-rate sweep",
}
