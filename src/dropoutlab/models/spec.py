"""Layer lists: the Keras-Sequential-like description every model is built from."""

from __future__ import annotations

from typing import Any

from dropoutlab.errors import DropoutlabError
from dropoutlab.runs import LayerSpec

ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "linear")

# For each layer type: the options it takes (besides ``type``) and which are required.
LAYER_OPTIONS: dict[str, tuple[set[str], set[str]]] = {
    "dense": ({"units", "activation"}, {"units"}),
    "conv2d": ({"filters", "kernel", "stride", "padding", "activation"}, {"filters", "kernel"}),
    "maxpool2d": ({"size", "stride"}, set()),
    "flatten": (set(), set()),
    "dropout": ({"slot", "rate"}, set()),
    "batchnorm": (set(), set()),
    "activation": ({"name"}, {"name"}),
}


def _positive_int(value: Any, where: str) -> int:
    # Sizes are checked against the model bounds later; below 2**63 keeps them within int64 here.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DropoutlabError(f"{where}: expected a whole number >= 1, got {repr(value)[:120]}")
    if value >= 2**63:
        raise DropoutlabError(
            f"{where}: expected a whole number >= 1 and < 2**63, got one of {value.bit_length()} bits"
        )
    return value


def parse_layer(raw: Any, where: str) -> LayerSpec:
    """Validate one layer table from a study file; ``where`` names it in error messages."""
    if not isinstance(raw, dict):
        raise DropoutlabError(f'{where}: expected a table like {{type = "dense", units = 64}}, got {raw!r}')
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in LAYER_OPTIONS:
        raise DropoutlabError(
            f"{where}.type: unknown layer type {kind!r}; allowed: {', '.join(LAYER_OPTIONS)}"
        )
    allowed, required = LAYER_OPTIONS[kind]
    for key in raw:
        if key != "type" and key not in allowed:
            raise DropoutlabError(
                f"{where}.{key}: unknown option for a {kind} layer; allowed: "
                f"{', '.join(sorted(allowed)) or '(none)'}"
            )
    for key in required:
        if key not in raw:
            raise DropoutlabError(f"{where}: a {kind} layer needs {key!r}")
    opts = dict(raw)
    if "units" in opts and opts["units"] != "classes":
        _positive_int(opts["units"], f"{where}.units")
    for key in ("filters", "kernel", "stride", "size"):
        if key in opts:
            _positive_int(opts[key], f"{where}.{key}")
    padding = opts.get("padding", 0)
    if padding not in ("same", "valid") and (
        isinstance(padding, bool) or not isinstance(padding, int) or padding < 0
    ):
        raise DropoutlabError(f'{where}.padding: expected "same", "valid" or a whole number >= 0')
    for key in ("activation", "name"):
        if key in opts and opts[key] not in ACTIVATIONS:
            raise DropoutlabError(
                f"{where}.{key}: unknown activation {opts[key]!r}; allowed: {', '.join(ACTIVATIONS)}"
            )
    if kind == "dropout":
        if "slot" not in opts and "rate" not in opts:
            raise DropoutlabError(f"{where}: a dropout layer needs a 'slot' name or a fixed 'rate'")
        if "slot" in opts and (not isinstance(opts["slot"], str) or not opts["slot"].isidentifier()):
            raise DropoutlabError(f'{where}.slot: expected a name like "hidden1", got {opts["slot"]!r}')
        if opts.get("slot") in RESERVED_SLOT_NAMES:
            raise DropoutlabError(
                f"{where}.slot: {opts['slot']!r} is a key of [dropout] itself (every slot's "
                f"{opts['slot']}); choose another name"
            )
        if "rate" in opts:
            opts["rate"] = check_rate(opts["rate"], f"{where}.rate")
    return LayerSpec(**opts)


def check_rate(value: Any, where: str) -> float:
    """A dropout rate: a number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise DropoutlabError(f"{where}: a dropout rate must be a number in [0, 1), got {repr(value)[:120]}")
    return float(value)


def parse_layers(raw: Any, where: str) -> tuple[LayerSpec, ...]:
    """Validate a list of layer tables."""
    if not isinstance(raw, list) or not raw:
        raise DropoutlabError(f"{where}: expected a non-empty list of layer tables")
    return tuple(parse_layer(item, f"{where}[{i}]") for i, item in enumerate(raw))


#: Keys of ``[dropout]`` that speak of every slot at once, so no slot may take their name.
RESERVED_SLOT_NAMES = ("rate", "kind")


def dropout_slots(layers: tuple[LayerSpec, ...]) -> dict[str, float]:
    """The model's dropout slots and their default rates, in layer order."""
    return {layer.slot: layer.rate or 0.0 for layer in layers if layer.type == "dropout" and layer.slot}


def dropout_kinds() -> dict[str, type]:
    """Every dropout kind a study may name, by name, ``standard`` first: ``dropout.kind`` and
    ``dropout.SLOT.kind``. Each class says where it makes sense (``applies_to``)."""
    from dropoutlab.layers import droppath, variational
    from dropoutlab.layers.kinds import DROPOUT_KINDS

    found: dict[str, type] = dict(DROPOUT_KINDS)  # standard first
    for module in (droppath, variational):
        for value in vars(module).values():
            if isinstance(value, type) and isinstance(getattr(value, "kind", None), str):
                found.setdefault(value.kind, value)
    return found
