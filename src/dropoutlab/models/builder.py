"""Turn a layer list into an ``nn.Sequential``, with shapes checked before any training."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import torch
from torch import nn

from dropoutlab.errors import DropoutlabError
from dropoutlab.layers.kinds import DropConnectLinear
from dropoutlab.models.families import FAMILIES
from dropoutlab.models.spec import dropout_kinds
from dropoutlab.models.user import UserModelInfo, build_user_model
from dropoutlab.runs import LayerSpec, RunSettings

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
    kinds: dict[str, str] | None = None,
    options: dict[str, dict[str, Any]] | None = None,
) -> nn.Sequential:
    """Build the network of ``layers`` for images of ``input_shape`` = (C, H, W).

    ``rates`` gives the dropout rate of each slot; a slot with rate 0 adds no layer.
    ``kinds`` gives a slot's dropout kind (default ``standard``) and ``options`` its options
    (``block_size``); a ``dropconnect`` slot adds no layer of its own but masks the weights
    of the dense layer after it (:class:`~dropoutlab.layers.kinds.DropConnectLinear`).
    ``init="keras"`` gives Glorot-uniform weights and zero biases (Keras' defaults);
    ``"torch"`` keeps PyTorch's defaults. Raises DropoutlabError when shapes do not fit.
    """
    model, _ = _build(layers, rates, input_shape, num_classes, kinds or {}, options or {})
    return initialize(model, init)


def initialize(model: nn.Module, init: str) -> nn.Module:
    """``init="keras"``: Glorot-uniform weights and zero biases for every dense and convolution
    layer (Keras' defaults); ``"torch"`` keeps PyTorch's."""
    if init == "keras":
        for module in model.modules():
            if isinstance(module, nn.Linear | nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
    return model


def build_network(
    settings: RunSettings,
    input_shape: tuple[int, ...],
    num_classes: int,
    rates: dict[str, float] | None = None,
) -> nn.Module:
    """The network of a run's ``settings`` (its ``rates``, unless given): a layer list's
    ``nn.Sequential`` (:func:`build_model`), a family's module (:data:`FAMILIES`) or what a
    user's factory returns (:func:`~dropoutlab.models.user.build_user_model`)."""
    if settings.factory:
        return initialize(build_user_model(settings, input_shape, num_classes, rates), settings.init)
    rates = settings.dropout if rates is None else rates
    if settings.model in FAMILIES:
        return initialize(FAMILIES[settings.model].build(input_shape, num_classes, rates), settings.init)
    kinds = {slot: settings.kind_of(slot) for slot in rates}
    return build_model(
        settings.layers, rates, input_shape, num_classes, settings.init, kinds, settings.slot_options
    )


# The dropout kind of each family slot that is not standard dropout.
FAMILY_KINDS: dict[str, dict[str, str]] = {
    "resnet": {"block": "droppath"},
    "gru": {"input": "variational", "recurrent": "variational"},
    "lstm": {"input": "variational", "recurrent": "variational"},
}


def check_family_kinds(
    model: str, kind_of: Callable[[str], str], named: Mapping[str, str] | None = None
) -> None:
    """Refuse, in one line naming the slot and the kinds it takes, a kind a family's slot cannot take.

    Each slot of a family takes one kind, its own (:data:`FAMILY_KINDS`: ``droppath`` and
    ``variational`` where the family's docs say, else ``standard``). ``named`` holds the kinds
    the study names for a slot itself (``dropout.SLOT.kind``): they must be the slot's own. The
    study-wide kind (``kind_of`` of the other slots) may also be ``standard``, the default,
    which leaves every slot its own kind.
    """
    named = named or {}
    owns = {slot: FAMILY_KINDS.get(model, {}).get(slot, "standard") for slot in FAMILIES[model].slots}
    for slot, own in owns.items():
        kind = named.get(slot, kind_of(slot))
        if kind != own and (slot in named or kind != "standard"):
            listing = ", ".join(f"{name} {kind}" for name, kind in owns.items())
            raise DropoutlabError(
                f"dropout.{slot}: {model}'s slot {slot!r} uses {own} dropout, not {kind!r}; the only kind "
                f"it takes is {own!r} ({model}'s slots: {listing}); the kinds survey runs on layer-list "
                "models (mlp, cnn, lenet5, custom)"
            )


def summarize_model(
    layers: tuple[LayerSpec, ...], rates: dict[str, float], input_shape: tuple[int, ...], num_classes: int
) -> list[LayerRow]:
    """The rows of a Keras-style ``model.summary()``: one per module, with output shapes.

    Computed from the layer list alone, without building the network, so a layer that
    declares 2**62 units costs nothing to check (see :func:`model_size`).
    """
    return [row for row, _ in _layers(layers, rates, input_shape, num_classes, {}, {})]


def slot_sites(layers: tuple[LayerSpec, ...], input_shape: tuple[int, ...]) -> dict[str, str]:
    """Where each dropout slot of ``layers`` sits: ``image`` (before a convolution's output is
    flattened), ``dense`` (feature vectors), or ``weights`` (also before a dense layer, so
    that ``dropconnect`` can mask its weights)."""
    sites: dict[str, str] = {}
    shape_rank = len(input_shape)
    pending: list[str] = []
    for layer in layers:
        if layer.type == "flatten":
            shape_rank = 1
        elif layer.type == "dropout" and layer.slot:
            sites[layer.slot] = "image" if shape_rank == 3 else "dense"
            pending.append(layer.slot)
            continue
        elif layer.type == "dense":
            for slot in pending:
                sites[slot] = "weights" if sites[slot] == "dense" else sites[slot]
        pending = []
    return sites


def kind_places(kind: str) -> frozenset[str]:
    """Where a slot of dropout ``kind`` (a name of :func:`~dropoutlab.models.spec.dropout_kinds`)
    may sit: its class's ``applies_to`` (``dense``, ``image``, ``residual``, ``sequence``), but
    ``weights`` (a dense layer right after the slot) for ``dropconnect``, whose class names the
    feature vectors that layer reads."""
    cls = dropout_kinds()[kind]
    return frozenset({"weights"}) if _masks_weights(cls) else cls.applies_to


def kind_fits(kind: str, site: str) -> bool:
    """Whether dropout ``kind`` fits a slot at ``site`` (as :func:`slot_sites` names it: ``image``,
    ``dense`` or ``weights``): the one rule of where a kind may sit, used by
    :func:`check_slot_kinds` and by :mod:`dropoutlab.testing`. A ``weights`` slot (feature
    vectors right before a dense layer) also takes every kind that feature vectors take."""
    places = kind_places(kind)
    return site in places or (site == "weights" and "dense" in places)


def check_slot_kinds(
    layers: tuple[LayerSpec, ...], input_shape: tuple[int, ...], kind_of: Callable[[str], str]
) -> None:
    """Refuse, in one line naming the slot, a dropout kind that makes no sense where its slot
    sits (``spatial`` on feature vectors, ``droppath`` outside a residual block...; the rule is
    :func:`kind_fits`).

    ``dropconnect`` masks the weights of the dense layer right after its slot (past other
    dropout layers, which act on that layer's input), so it is refused at a slot followed by
    anything else (an activation, a batch norm, a flatten) or by nothing, where it would mask
    nothing, and at a second slot before the same dense layer, which would replace the first.
    """
    kinds = dropout_kinds()
    sites = slot_sites(layers, input_shape)

    def allowed(site: str) -> str:
        return ", ".join(k for k in kinds if kind_fits(k, site))

    for slot, site in sites.items():
        kind = kind_of(slot)
        if not kind_fits(kind, site) and not _masks_weights(kinds[kind]):
            wants = " or ".join(NEEDS[w] for w in sorted(kind_places(kind)))
            where = "on images (before flatten)" if site == "image" else "on feature vectors"
            raise DropoutlabError(
                f"dropout.{slot}: kind {kind!r} needs {wants}, but slot {slot!r} sits {where}; "
                f"allowed there: {allowed(site)}"
            )
    masked: dict[int, str] = {}  # a dense layer's index: the dropconnect slot that masks its weights
    for slot, index, follower in _slot_followers(layers):
        kind = kind_of(slot)
        if not _masks_weights(kinds[kind]):
            continue
        if follower != "dense":
            after = (
                "ends the layer list"
                if index is None
                else f"is followed by {'an' if follower[0] in 'aeiou' else 'a'} {follower} layer"
            )
            raise DropoutlabError(
                f"dropout.{slot}: kind {kind!r} needs {NEEDS['weights']}, but slot {slot!r} {after}, "
                f"where it would mask nothing; allowed there: {allowed(sites[slot])}"
            )
        if index in masked:
            raise DropoutlabError(
                f"dropout.{slot}: kind {kind!r} at slot {slot!r} would mask the weights of the dense layer "
                f"that slot {masked[index]!r} masks already (model layer {index}); one dropconnect slot "
                "per dense layer"
            )
        masked[index] = slot


# Where a slot of a user's model sits, in words (UserModelInfo.sites).
USER_SITES = {"image": "on images (N, C, H, W)", "dense": "on feature vectors (N, F)",
              "weights": "on feature vectors (N, F)"}  # fmt: skip


def check_user_kinds(info: UserModelInfo, kind_of: Callable[[str], str]) -> None:
    """Refuse, in one line naming the slot, a kind that makes no sense where a slot of a user's model
    sits (:func:`~dropoutlab.models.builder.kind_fits`); ``standard`` keeps the factory's own
    module at any site."""
    kinds = dropout_kinds()
    for slot, site in info.sites.items():
        kind = kind_of(slot)
        if kind == "standard" or kind_fits(kind, site):
            continue
        wants = " or ".join(NEEDS[w] for w in sorted(kind_places(kind)))
        where = USER_SITES.get(site, "on inputs that are neither images nor feature vectors")
        allowed = ", ".join(k for k in kinds if k == "standard" or kind_fits(k, site))
        raise DropoutlabError(
            f"dropout.{slot}: kind {kind!r} needs {wants}, but slot {slot!r} ({info.classes[slot]}) sits "
            f"{where}; allowed there: {allowed}"
        )


def _masks_weights(cls: type) -> bool:
    """Whether dropout kind ``cls`` masks the weights of the dense layer after its slot (``dropconnect``)."""
    return issubclass(cls, DropConnectLinear)


def _slot_followers(layers: tuple[LayerSpec, ...]) -> list[tuple[str, int | None, str]]:
    """``(slot, index, type)`` of the layer after each dropout slot of ``layers``, past other
    dropout layers; ``(slot, None, "end")`` for a slot that ends the list."""
    out: list[tuple[str, int | None, str]] = []
    pending: list[str] = []
    for index, layer in enumerate(layers):
        if layer.type == "dropout":
            if layer.slot:
                pending.append(layer.slot)
            continue
        out += [(slot, index, layer.type) for slot in pending]
        pending = []
    return out + [(slot, None, "end") for slot in pending]


# What each place a dropout kind applies to means, for error messages.
NEEDS = {"image": "image activations", "dense": "feature vectors", "residual": "a residual block (model resnet)",
         "sequence": "a recurrent network (model gru or lstm)", "weights": "a dense layer right after the slot"}  # fmt: skip


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


def _build(layers, rates, input_shape, num_classes, kinds, options) -> tuple[nn.Sequential, list[LayerRow]]:
    modules: OrderedDict[str, nn.Module] = OrderedDict()
    rows: list[LayerRow] = []
    for row, make in _layers(layers, rates, input_shape, num_classes, kinds, options):
        modules[row.name] = make()
        rows.append(row)
    return nn.Sequential(modules), rows


def _layers(
    layers, rates, input_shape, num_classes, kinds, options
) -> list[tuple[LayerRow, Callable[[], nn.Module]]]:
    """Each module's summary row (shapes and parameter counts by arithmetic) and how to build it."""
    out: list[tuple[LayerRow, Callable[[], nn.Module]]] = []
    connect: tuple[float, str] | None = None  # a dropconnect slot's (rate, slot), for the next dense layer
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
            params = shape[0] * units + units
            if connect:
                make = partial(DropConnectLinear, shape[0], units, connect[0], slot=connect[1])
                add("dense", DropConnectLinear, params, make, (units,))
            else:
                add("dense", nn.Linear, params, partial(nn.Linear, shape[0], units), (units,))
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
            kind = kinds.get(layer.slot, "standard") if layer.slot else "standard"
            if rate and kind == "dropconnect":
                connect = (rate, layer.slot)
                continue
            if rate:
                # named by slot, or by position: a name must not depend on which slots are at rate 0,
                # or the members of a stack (whose template has every slot) would not line up
                name = f"dropout_{layer.slot}" if layer.slot else f"dropout_layer{i}"
                cls = dropout_kinds()[kind]
                make = partial(cls, rate, slot=layer.slot, **options.get(layer.slot, {}))
                add("dropout", cls, 0, make, shape, name=name)
        if layer.type != "dropout":
            connect = None
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


def family_outputs(model: str, input_shape: tuple[int, ...], num_classes: int) -> tuple[int, list[int]]:
    """A family network's parameter count and the values of each of its leaf modules' outputs for
    one sample, every slot on and every call counted (a recurrent step's state at each time
    step), on the meta device: nothing allocated, nothing computed. Counted once per family,
    input shape and class count (the network's shapes depend on nothing else), however many
    grid points share them: building it costs about 80 ms for a ResNet."""
    params, outputs = _family_outputs(model, tuple(input_shape), num_classes)
    return params, list(outputs)


@lru_cache(maxsize=64)
def _family_outputs(
    model: str, input_shape: tuple[int, ...], num_classes: int
) -> tuple[int, tuple[int, ...]]:
    with torch.device("meta"):
        net = FAMILIES[model].build(input_shape, num_classes, dict.fromkeys(FAMILIES[model].slots, 0.5))
        outputs: list[int] = []

        def count(module, inputs, output):
            if isinstance(output, torch.Tensor) and not list(module.children()):
                outputs.append(output.numel())

        hooks = [m.register_forward_hook(count) for m in net.modules()]
        net.eval()(torch.empty(1, *input_shape))
        for hook in hooks:
            hook.remove()
    return sum(p.numel() for p in net.parameters()), tuple(outputs)


def family_size(model: str, input_shape: tuple[int, ...], num_classes: int) -> ModelSize:
    """Parameters and per-sample activation values (the input and every leaf output) of a
    family's network, every slot on (:func:`family_outputs`)."""
    params, outputs = family_outputs(model, input_shape, num_classes)
    return ModelSize(params=params, activations=math.prod(input_shape) + sum(outputs))
