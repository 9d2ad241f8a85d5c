"""A user's own network: a factory returning a fresh ``nn.Module``, its dropout modules found as slots.

A study names the factory by its import path, ``"mypackage.nets:make_net"`` (from a study
file, or registered from Python by :func:`register_factory` when a callable is passed), and
its keyword arguments (``[model]`` in a study file, ``"model.width"`` in a grid). Each run
calls the factory once, after ``torch.manual_seed(seed)``, so the seed fixes the initial
weights as it does for the presets.

Slots are found, not declared (:func:`find_slots`): every ``nn.Dropout``, ``Dropout1d/2d/3d``,
``AlphaDropout`` and ``FeatureAlphaDropout`` submodule (and any of dropoutlab's dropout
kinds) is a slot named by its module path (``encoder.layers.0.dropout``). A run sets each
slot's rate (``module.p``); a slot whose kind is not ``standard`` is replaced by dropoutlab's
module of that kind, as baal's ``patch_module`` does for MC dropout (``dropconnect``: the
``nn.Linear`` that reads the slot's output). Where a kind makes sense follows
:func:`~dropoutlab.models.builder.kind_fits` (see
:func:`~dropoutlab.models.builder.check_user_kinds`), the site of a slot read from the input
it gets in a trial forward pass: ``image`` for (N, C, H, W), ``dense`` for (N, F).

Before anything trains, :func:`probe_user_model` builds the model once per factory and
arguments (on the meta device when the factory allows it: nothing allocated) and runs one
forward pass on a batch of two samples, which gives the slots, their default rates and
sites, the parameter count, the activations per sample and the output shape.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import logging
import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dropoutlab.errors import DropoutlabError
from dropoutlab.models.spec import RESERVED_SLOT_NAMES, dropout_kinds

log = logging.getLogger(__name__)

#: PyTorch's dropout modules, each a slot of a user's model.
TORCH_DROPOUTS: tuple[type[nn.Module], ...] = (
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
)  # fmt: skip

# "package.module:function" or "module:Class.method"; identifiers only, so a path is never code.
_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")

# Factories registered from Python (a callable passed as a study's model), by import path. A
# forked worker process inherits them; a Ray worker or a later process imports the path instead.
_REGISTERED: dict[str, Callable[..., nn.Module]] = {}
# Folders to import a factory's module from (a study file's folder), by import path.
_FOLDERS: dict[str, Path] = {}


def is_factory_path(name: Any) -> bool:
    """Whether ``name`` names a factory (``"module:function"``) rather than a preset or family."""
    return isinstance(name, str) and ":" in name


def factory_path(factory: Callable[..., Any]) -> str:
    """The import path of a callable (a function, or a class whose instances are networks),
    ``"module:qualname"``; a lambda is refused (it has no name to store), and so is a network
    itself (each run needs a fresh one)."""
    if isinstance(factory, nn.Module):
        raise DropoutlabError(
            f"model: a {type(factory).__name__} network, not a factory; each run needs a fresh one: pass its class "
            f"or a function that returns one (def make_net(): return {type(factory).__name__}(...))"
        )
    qualname = getattr(factory, "__qualname__", None)
    module = getattr(factory, "__module__", None)
    if not callable(factory) or not qualname or not module:
        raise DropoutlabError(
            f"model: {factory!r} is not a function; pass a factory that returns an nn.Module, e.g. def make_net(): ..."
        )
    if "<lambda>" in qualname:
        raise DropoutlabError(
            "model: a lambda has no name for the store to keep; define the factory with def (def make_net(): ...)"
        )
    return f"{module}:{qualname}"


def register_factory(factory: Callable[..., nn.Module]) -> str:
    """Make ``factory`` known by its import path (returned), so that a study can name it.

    A later callable with the same path (a notebook cell run again) replaces the earlier one.
    """
    path = factory_path(factory)
    _REGISTERED[path] = factory
    return path


def check_factory_path(path: Any, where: str = "model") -> str:
    """``path`` if it reads ``module.sub:function`` (identifiers only) or is registered (a nested
    function's ``module:outer.<locals>.make_net``), else one line saying so."""
    if not isinstance(path, str) or not (_PATH.match(path) or path in _REGISTERED):
        raise DropoutlabError(
            f"{where}: {path!r} is not a factory path; allowed: 'package.module:function' (a function that "
            "returns an nn.Module), a preset or a family (see `dropoutlab models`)"
        )
    return path


def remember_folder(path: str, folder: Path) -> None:
    """Import the module of factory ``path`` from ``folder`` (a study file's) when ``sys.path`` lacks it."""
    _FOLDERS[path] = Path(folder).resolve()


def resolve_factory(path: str, folder: Path | None = None) -> Callable[..., nn.Module]:
    """The callable a factory path names: a registered one, else imported.

    The module is imported from ``folder`` (a study file's folder, remembered for later calls
    in this process) when it holds it, else from ``sys.path`` (``PYTHONPATH``). Importing a
    module runs its code: a study file that names a factory runs that code.
    """
    check_factory_path(path)
    if path in _REGISTERED:
        return _REGISTERED[path]
    if folder is not None:
        remember_folder(path, folder)
    module_name, _, qualname = path.partition(":")
    added = None
    where = _FOLDERS.get(path)
    if where is not None and str(where) not in sys.path:
        added = str(where)
        sys.path.insert(0, added)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        beside = (
            f" (looked beside the study file, in {where}, and on PYTHONPATH)" if where else " (on PYTHONPATH)"
        )
        raise DropoutlabError(
            f"model: cannot import {module_name!r} for {path!r}{beside}: {exc}; put the module beside the "
            "study file or its folder on PYTHONPATH"
        ) from None
    except Exception as exc:  # the user's module failed as it ran
        raise DropoutlabError(
            f"model: importing {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from None
    finally:
        if added is not None:
            sys.path.remove(added)
    target: Any = module
    for part in qualname.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise DropoutlabError(f"model: {module_name!r} has no {qualname!r} (from {path!r})")
    if not callable(target):
        raise DropoutlabError(f"model: {path!r} is not callable; name a function that returns an nn.Module")
    return target


def is_slot(module: nn.Module) -> bool:
    """Whether ``module`` is a dropout slot: one of :data:`TORCH_DROPOUTS`, or a module of one of
    dropoutlab's dropout kinds (dropconnect excepted: it is a dense layer)."""
    if isinstance(module, TORCH_DROPOUTS):
        return True
    kinds = tuple(cls for name, cls in dropout_kinds().items() if name != "dropconnect")
    return isinstance(module, kinds)


def find_slots(module: nn.Module) -> dict[str, nn.Module]:
    """Every dropout submodule of ``module`` (:func:`is_slot`) by its module path, in module order.

    Paths are those of ``named_modules()`` (``encoder.layers.0.dropout``); a module reached by
    two paths counts once, under the first.
    """
    return {name: sub for name, sub in module.named_modules() if name and is_slot(sub)}


def slot_rate(module: nn.Module) -> float:
    """The rate a slot's module holds (``p``), 0 where it holds none."""
    p = getattr(module, "p", 0.0)
    return float(p) if isinstance(p, int | float) else 0.0


@dataclass(frozen=True)
class UserModelInfo:
    """What one trial build and forward pass told of a factory's model with given arguments.

    ``slots`` maps each slot (module path) to the rate the factory set; ``sites`` to where it
    sits (``image``, ``dense`` or ``other``, from the rank of its input; ``weights`` for feature
    vectors that an ``nn.Linear`` reads right after it, whose path ``weights`` gives);
    ``classes`` to its module's class name. ``params`` counts trainable values, ``activations`` the values one
    sample occupies (the input and every leaf module's output); ``output_shape`` is the output
    of a batch of two; ``text`` the model's ``repr`` as the factory returned it;
    ``source_sha256`` what :func:`source_sha256` gives.
    """

    factory: str
    args: dict[str, Any]
    slots: dict[str, float]
    sites: dict[str, str]
    weights: dict[str, str]
    classes: dict[str, str]
    params: int
    activations: int
    output_shape: tuple[int, ...]
    text: str
    source_sha256: str | None


_PROBES: dict[tuple, UserModelInfo] = {}
PROBE_BATCH = 2  # samples in the trial forward pass (batch norm in train mode needs more than one)


def call_factory(path: str, args: Mapping[str, Any]) -> nn.Module:
    """``factory(**args)``, checked to return an ``nn.Module``; an error of the factory in one line."""
    factory = resolve_factory(path)
    try:
        model = factory(**args)
    except DropoutlabError:
        raise
    except Exception as exc:
        raise DropoutlabError(f"model: {_call(path, args)} raised {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise DropoutlabError(
            f"model: {_call(path, args)} returned {type(model).__name__}, not an nn.Module; a factory returns "
            "a fresh network"
        )
    return model


def _call(path: str, args: Mapping[str, Any]) -> str:
    return f"{path}({', '.join(f'{k}={v!r}' for k, v in args.items())})"


def probe_user_model(
    path: str, args: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int
) -> UserModelInfo:
    """Build the factory's model once and pass a batch of two zero samples through it (eval mode).

    Cached per factory, arguments and data shape. The build is tried on the meta device first
    (nothing allocated, nothing computed); a factory or forward pass that needs real tensors
    (``.item()``, NumPy, data-dependent control flow) is built on the CPU instead, the global
    random state left as it was. Raises DropoutlabError when the model's output is not one row
    of ``num_classes`` logits per sample.
    """
    args = dict(args)
    factory = resolve_factory(path)
    key = (path, id(factory), json.dumps(args, sort_keys=True, default=repr), tuple(input_shape), num_classes)
    if key in _PROBES:
        return _PROBES[key]
    try:
        with torch.device("meta"):
            info = _probe(path, args, input_shape, num_classes, torch.device("meta"))
    except Exception:  # not every factory or forward pass runs on the meta device: try for real
        with torch.random.fork_rng(devices=[]):
            info = _probe(path, args, input_shape, num_classes, torch.device("cpu"), last_try=True)
    _PROBES[key] = info
    return info


def _probe(
    path, args, input_shape, num_classes, device: torch.device, last_try: bool = False
) -> UserModelInfo:
    model = call_factory(path, args)
    text = repr(model)
    slots = find_slots(model)
    for name in slots:
        if name in RESERVED_SLOT_NAMES:
            raise DropoutlabError(
                f"model: {path}'s dropout module {name!r} has the name of a key of [dropout] "
                f"({', '.join(RESERVED_SLOT_NAMES)}); rename the attribute"
            )
    sites: dict[str, str] = {}
    outputs: list[int] = []

    def see_input(module, inputs):
        x = inputs[0] if inputs else None
        rank = x.dim() if isinstance(x, torch.Tensor) else 0
        sites.setdefault(names[id(module)], {4: "image", 2: "dense"}.get(rank, "other"))

    def count(module, inputs, output):
        if isinstance(output, torch.Tensor) and not list(module.children()) and output.dim() > 0:
            outputs.append(output.numel() // max(output.shape[0], 1))

    marked: list[tuple[torch.Tensor, str]] = []  # each slot's output, a view of its own (kept alive)
    weights: dict[str, str] = {}

    def mark_output(module, inputs, output):
        if isinstance(output, torch.Tensor):
            view = output.view_as(output)  # a new object even where dropout (eval) returns its input
            marked.append((view, names[id(module)]))
            return view
        return None

    def see_linear(module, inputs):
        x = inputs[0] if inputs else None
        for output, slot in marked:
            if x is output:
                weights.setdefault(slot, linears[id(module)])

    names = {id(module): name for name, module in slots.items()}
    linears = {id(module): name for name, module in model.named_modules() if type(module) is nn.Linear}
    hooks = [module.register_forward_pre_hook(see_input) for module in slots.values()]
    hooks += [module.register_forward_hook(mark_output) for module in slots.values()]
    hooks += [
        module.register_forward_pre_hook(see_linear) for module in model.modules() if id(module) in linears
    ]
    hooks += [module.register_forward_hook(count) for module in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            out = model(torch.zeros(PROBE_BATCH, *input_shape, device=device))
    except Exception as exc:
        if not last_try:
            raise
        raise DropoutlabError(
            f"model: {_call(path, args)} fails on a batch of shape {(PROBE_BATCH, *input_shape)}: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    finally:
        for hook in hooks:
            hook.remove()
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (PROBE_BATCH, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise DropoutlabError(
            f"model: {_call(path, args)} returns {got} for a batch of shape {(PROBE_BATCH, *input_shape)}; "
            f"the dataset has {num_classes} classes, so the model must return logits of shape "
            f"({PROBE_BATCH}, {num_classes})"
        )
    return UserModelInfo(
        factory=path,
        args=args,
        slots={name: slot_rate(module) for name, module in slots.items()},
        sites={
            name: "weights" if name in weights and sites.get(name) == "dense" else sites.get(name, "other")
            for name in slots
        },
        weights={slot: linear for slot, linear in weights.items() if sites.get(slot) == "dense"},
        classes={name: type(module).__name__ for name, module in slots.items()},
        params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        activations=math.prod(input_shape) + sum(outputs),
        output_shape=tuple(out.shape),
        text=text,
        source_sha256=source_sha256(resolve_factory(path), model),
    )


def set_slots(
    model: nn.Module,
    rates: Mapping[str, float],
    kind_of: Callable[[str], str],
    options: Mapping[str, Mapping[str, Any]] | None = None,
    weights: Mapping[str, str] | None = None,
) -> nn.Module:
    """Give each slot of ``model`` its rate; a slot of a kind other than ``standard`` (with a rate
    above 0) becomes dropoutlab's module of that kind (``options``: its ``block_size``).

    ``standard`` keeps the factory's module (an ``nn.Dropout2d`` stays channel dropout) and sets
    its ``p``; rate 0 is that module at ``p = 0``, the identity, whatever the kind. A
    ``dropconnect`` slot leaves its module at ``p = 0`` and masks the weights of the
    ``nn.Linear`` that reads its output instead (``weights``: its path, from
    :func:`probe_user_model`), which becomes a
    :class:`~dropoutlab.layers.kinds.DropConnectLinear` holding the same parameters.
    """
    options, weights = options or {}, weights or {}
    kinds = dropout_kinds()
    for name, module in find_slots(model).items():
        if name not in rates:
            continue
        rate, kind = float(rates[name]), kind_of(name)
        if kind == "dropconnect" and rate > 0.0:
            module.p = 0.0
            model.set_submodule(weights[name], dropconnect(model.get_submodule(weights[name]), rate, name))
            continue
        if kind == "standard" or rate == 0.0:
            try:
                module.p = rate
                continue
            except AttributeError:  # a learned rate (concrete) cannot be set: standard dropout instead
                replacement = kinds["standard"](rate, slot=name)
        else:
            replacement = kinds[kind](rate, slot=name, **options.get(name, {}))
        model.set_submodule(name, replacement)
    return model


def dropconnect(linear: nn.Linear, rate: float, slot: str) -> nn.Module:
    """``linear`` as a :class:`~dropoutlab.layers.kinds.DropConnectLinear` at ``rate`` holding its
    very parameters (made on the meta device: nothing drawn from the run's generator)."""
    from dropoutlab.layers.kinds import DropConnectLinear

    with torch.device("meta"):
        layer = DropConnectLinear(linear.in_features, linear.out_features, rate, slot=slot)
    layer.weight = linear.weight
    layer.bias = linear.bias  # None where the factory's layer has none
    return layer


def build_user_model(
    settings, input_shape: tuple[int, ...], num_classes: int, rates: Mapping[str, float] | None = None
) -> nn.Module:
    """A fresh network of a run whose model is a factory: ``factory(**settings.factory_args)``, each
    slot given its rate and kind (:func:`set_slots`; ``rates`` replaces ``settings.dropout``), but
    ``settings.init`` (:func:`~dropoutlab.models.builder.build_network` applies it). The caller
    seeds the global generator first; nothing here draws from it but the factory."""
    model = call_factory(settings.factory, settings.factory_args)
    rates = settings.dropout if rates is None else rates
    weights = {}
    if any(settings.kind_of(slot) == "dropconnect" for slot in rates):
        weights = probe_user_model(settings.factory, settings.factory_args, input_shape, num_classes).weights
    return set_slots(model, rates, settings.kind_of, settings.slot_options, weights)


def user_outputs(settings, input_shape: tuple[int, ...], num_classes: int) -> tuple[int, list[int]]:
    """A user model's parameter count and the values one sample occupies (its input left out), as
    :func:`~dropoutlab.models.builder.family_outputs` gives them for a family."""
    info = probe_user_model(settings.factory, settings.factory_args, input_shape, num_classes)
    return info.params, [info.activations - math.prod(input_shape)]


def source_sha256(factory: Callable[..., Any], model: nn.Module) -> str | None:
    """SHA-256 of the factory's source and of the source of each class of ``model`` defined outside
    torch and dropoutlab (so a changed ``forward`` counts), or None when the factory's source
    cannot be read (a function typed at an interactive prompt, a compiled one). A class whose
    own source cannot be read (one defined in a notebook: ``inspect`` finds a class through its
    module's file) counts by the source of its methods, which can."""
    try:
        parts = [class_source(factory) if isinstance(factory, type) else inspect.getsource(factory)]
    except (OSError, TypeError):
        return None
    seen: dict[type, None] = {}
    for module in model.modules():
        cls = type(module)
        if cls.__module__.split(".")[0] not in ("torch", "dropoutlab"):
            seen.setdefault(cls, None)
    parts += [class_source(cls) for cls in seen]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def class_source(cls: type) -> str:
    """The source of ``cls``; where ``inspect`` cannot find it, its name and the source of each of
    its methods (``<no source: NAME>`` for one without)."""
    try:
        return inspect.getsource(cls)
    except (OSError, TypeError):
        parts = [f"class {cls.__qualname__}"]
    for name, value in sorted(vars(cls).items()):
        function = getattr(value, "__func__", value)  # a classmethod's or staticmethod's function
        if inspect.isfunction(function):
            try:
                parts.append(inspect.getsource(function))
            except (OSError, TypeError):
                parts.append(f"<no source: {name}>")
    return "\n".join(parts)


def model_identity(
    path: str, args: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int
) -> dict:
    """What the study's stored definition keeps of a factory's model (``identity.model``): its
    import path, :func:`source_sha256` and the ``repr`` of the model built with ``args``, as
    the factory returned it (before any rate is set)."""
    info = probe_user_model(path, args, input_shape, num_classes)
    if info.source_sha256 is None:
        log.warning(
            "model: the source of %s cannot be read (typed at a prompt?); the study's design checks the "
            "model's repr alone",
            path,
        )
    return {"factory": path, "source_sha256": info.source_sha256, "repr": info.text}


def user_summary(path: str, args: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """``(module path, class name, parameters)`` of each module of a factory's model that holds
    parameters of its own (``dropoutlab models``); built on the meta device where the factory
    allows it, the global random state left as it was."""
    with torch.random.fork_rng(devices=[]):
        try:
            with torch.device("meta"):
                model = call_factory(path, args)
        except Exception:  # a factory that needs real tensors
            model = call_factory(path, args)
    return [
        (name or "(model)", type(module).__name__, sum(p.numel() for p in module.parameters(recurse=False)))
        for name, module in model.named_modules()
        if any(True for _ in module.parameters(recurse=False))
    ]
