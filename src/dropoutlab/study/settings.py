"""The settings of one run: a table of a study file (grid values applied) in, :class:`RunSettings` out.

Every check names the key and what is allowed; :func:`parse_settings` is where each setting
is validated, for ``run`` and ``--dry-run`` alike.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import reprlib
import unicodedata
from collections.abc import Iterable
from typing import Any

from dropoutlab.data.limits import Limit
from dropoutlab.data.prepare import NORMALIZATIONS
from dropoutlab.errors import DropoutlabError
from dropoutlab.models import FAMILIES, PRESETS, dropout_kinds, dropout_slots, parse_layers, with_batchnorm
from dropoutlab.models.spec import check_rate
from dropoutlab.models.user import UserModelInfo, check_factory_path, is_factory_path, probe_user_model
from dropoutlab.runs import EPOCH_METRICS, EarlyStoppingSpec, OptimizerSpec, RunSettings
from dropoutlab.study.limits import MAX_ACTIVATIONS, MAX_PARAMS, MAX_WHOLE

OPTIMIZERS = ("sgd", "adam", "adamw")
DEFAULT_MODEL = "mlp"  # a study file that names no model; every other default is a field of RunSettings
INITS = ("torch", "keras")
MONITORS = EPOCH_METRICS


STUDY_KEYS = {"name", "description", "seeds", "grid", "min_effect", "resources", "sequential"}
SETTING_KEYS = {
    "dataset", "model", "dropout", "epochs", "batch_size", "normalize", "validation",
    "split_seed", "init", "eval_train", "optimizer", "early_stopping",
    "label_smoothing", "max_norm", "augment", "batchnorm", "mc_samples",
}  # fmt: skip
AUGMENTATIONS = ("crop", "flip")
SLOT_KEYS = {"rate", "kind", "block_size"}
MAX_MC_SAMPLES = 1000


def set_dotted(settings: dict[str, Any], key: str, value: Any) -> None:
    """Set ``settings["a"]["b"] = value`` for ``key = "a.b"``; a table value is merged.

    A dropout slot is a rate or a table (``{rate, kind, block_size}``), and either form meets
    the other: ``dropout.conv.kind`` on ``conv = 0.2`` gives ``{rate = 0.2, kind = ...}``, and
    a rate set on a slot table (``dropout.conv = 0.5``) keeps the table's other keys. A
    factory's keyword argument (``model.width``) turns ``model = "nets:make_net"`` into the
    table ``{factory = "nets:make_net", width = ...}``.
    """
    *parents, last = key.split(".")
    node = settings
    for depth, part in enumerate(parents):
        parent = node
        node = node.setdefault(part, {})
        if depth == 1 and parents[0] == "dropout" and _is_number(node):
            node = parent[part] = {"rate": node}
        if depth == 0 and part == "model" and (is_factory_path(node) or callable(node)):
            node = parent[part] = {"factory": node}
        if not isinstance(node, dict):
            raise DropoutlabError(f"grid key {key!r}: {part!r} is not a table")
    old = node.get(last)
    if isinstance(value, dict) and isinstance(old, dict):
        node[last] = {**old, **value}
    elif parents == ["dropout"] and isinstance(old, dict) and _is_number(value):
        node[last] = {**old, "rate": value}
    else:
        node[last] = copy.deepcopy(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def shown(value: Any, limit: int = 120) -> str:
    """``repr(value)`` cut to ``limit`` characters; a huge integer by its size (its digits may be too many to print)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"a whole number of {value.bit_length()} bits"
    text = reprlib.repr(value) if isinstance(value, list | dict | tuple) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def type_error(where: str, expected: str, value: Any) -> DropoutlabError:
    return DropoutlabError(f"{where}: expected {expected}, got {shown(value)}")


def check_number(
    value: Any,
    where: str,
    low: float,
    high: float | None = None,
    *,
    open_low: bool = False,
    open_high: bool = True,
    allowed: str | None = None,
) -> float:
    """A finite number in its documented range: ``[low, high)`` by default, ``(low, ...`` with ``open_low``.

    Every float setting of a study goes through here, so NaN and infinity are refused for all;
    ``allowed`` replaces the range in the message where the docs word it otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise type_error(where, "a number", value)
    try:
        number = float(value)
    except OverflowError:  # a TOML integer longer than any float
        number = math.inf
    too_low = number <= low if open_low else number < low
    too_high = high is not None and (number >= high if open_high else number > high)
    if not math.isfinite(number) or too_low or too_high:
        if high is None:
            bound = f"> {low:g}" if open_low else f">= {low}"
        else:
            bound = f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
        finite = math.isfinite(number) or isinstance(value, int)  # an int too long for a float is just large
        problem = "is out of range" if finite else "is not a finite number"
        raise DropoutlabError(f"{where}: {shown(value)} {problem}; allowed: {allowed or bound}")
    return number


def check_whole(value: Any, where: str, low: int) -> int:
    """A whole number >= ``low`` that SQLite's INTEGER can store (at most 2**63 - 1)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise type_error(where, "a whole number", value)
    if value < low:
        raise DropoutlabError(f"{where}: {shown(value)} is out of range; allowed: >= {low}")
    if value > MAX_WHOLE:
        raise DropoutlabError(
            f"{where}: {shown(value)} is out of range; allowed: {low} to {MAX_WHOLE} (2**63 - 1, the largest "
            "whole number the store holds)"
        )
    return value


# Characters that change how the text around them is displayed without being visible: the
# bidirectional embeddings, overrides and isolates (a name can show reversed, "Trojan
# Source"), and Unicode's line and paragraph separators (a name would print on two lines).
INVISIBLE_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029")


def check_text(value: Any, where: str, *, lines: bool = False, limit: Limit | None = None) -> str:
    """Text without control characters (they would reach terminals and reports raw), nor
    bidirectional-override or line-separator characters; ``lines`` allows tabs and line
    breaks; ``limit`` bounds its length in characters (checked first)."""
    if not isinstance(value, str):
        raise type_error(where, "text", value)
    if limit is not None:
        limit.check(f"{where}: has", len(value))
    allowed = "\t\n\r" if lines else ""
    for ch in value:
        if (unicodedata.category(ch) == "Cc" and ch not in allowed) or ch in INVISIBLE_CONTROLS:
            kind = "control character" if ch not in INVISIBLE_CONTROLS else (
                "line separator" if ch in "\u2028\u2029" else "bidirectional control")  # fmt: skip
            raise DropoutlabError(
                f"{where}: contains the {kind} {ch!r} (U+{ord(ch):04X}); allowed: text without control, "
                "bidirectional-override or line-separator characters"
                + (" (tabs and line breaks are fine)" if lines else "")
            )
    return value


def check_choice(value: Any, where: str, allowed) -> str:
    if value not in allowed:
        raise DropoutlabError(
            f"{where}: {shown(value)} is not allowed; allowed: {', '.join(map(str, allowed))}"
        )
    return value


# Words other tools use for a key that dropoutlab names otherwise, by the full dotted key
# they mean ("learning_rate" at the top is optimizer.lr, and inside [optimizer] it is lr).
ALIASES = {
    "learning_rate": "optimizer.lr", "learningrate": "optimizer.lr", "lr": "optimizer.lr", "eta": "optimizer.lr",
    "weight_decay": "optimizer.weight_decay", "l2": "optimizer.weight_decay", "momentum": "optimizer.momentum",
    "optim": "optimizer", "opt": "optimizer", "solver": "optimizer", "n_epochs": "epochs",
    "num_epochs": "epochs", "max_epochs": "epochs", "seed": "seeds", "random_seed": "seeds",
    "batch": "batch_size", "batchsize": "batch_size", "bs": "batch_size", "data": "dataset",
    "patience": "early_stopping.patience", "early_stop": "early_stopping", "earlystopping": "early_stopping",
    "architecture": "model", "arch": "model", "network": "model", "net": "model", "p": "rate",
    "drop_rate": "rate", "dropout_rate": "dropout.rate", "val_split": "validation", "validation_split": "validation",
}  # fmt: skip


def did_you_mean(key: str, allowed: Iterable[str], where: str = "") -> str:
    """`` (did you mean 'epochs'?)`` for a mistyped ``key`` of the table ``where`` (dotted,
    "" at the top): a common synonym from :data:`ALIASES`, else the closest allowed key
    (``difflib``); "" when nothing is close."""
    allowed = [str(a) for a in allowed]
    alias = ALIASES.get(str(key).lower())
    if alias is not None:
        prefix = f"{where}." if where else ""
        if alias.startswith(prefix) and alias[len(prefix) :] in allowed:
            return f" (did you mean {alias[len(prefix) :]!r}?)"
        if "." not in alias and alias in allowed:
            return f" (did you mean {alias!r}?)"
        if where == "" and "." in alias:
            table, leaf = alias.rsplit(".", 1)
            return f" (did you mean {leaf!r} in [{table}]?)"
    close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_keys(table: dict[str, Any], allowed, where: str) -> None:
    """Refuse a key of ``table`` (the table ``where``) that is not in ``allowed``, suggesting the
    key it may mean."""
    for key in table:
        if key not in allowed:
            prefix = f"{where}." if where else ""
            raise DropoutlabError(
                f"{prefix}{key}: unknown key"
                f"{did_you_mean(key, allowed, where)}; allowed: {', '.join(sorted(allowed))}"
            )


def check_table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise type_error(where, "a table", value)
    return value


def parse_settings(raw: dict[str, Any]) -> RunSettings:
    """Validate the settings of one run (after grid values are applied)."""
    check_keys(raw, SETTING_KEYS, "")
    from dropoutlab.data import dataset_info  # imported late: the data package is heavier

    if "dataset" not in raw:
        raise DropoutlabError(
            'dataset: missing; name one, e.g. dataset = "digits" (see `dropoutlab datasets`)'
        )
    if not isinstance(raw["dataset"], str):
        raise type_error("dataset", "a dataset name", raw["dataset"])
    try:
        info = dataset_info(raw["dataset"])  # raises for an unknown name or an unreadable npz
    except OSError as exc:  # a path the system refuses (too long, a loop of links...)
        raise DropoutlabError(
            f"dataset: cannot read {shown(raw['dataset'])} ({exc.strerror or exc})"
        ) from None

    model = raw.get("model", DEFAULT_MODEL)
    batchnorm = raw.get("batchnorm", RunSettings.batchnorm)
    if not isinstance(batchnorm, bool):
        raise type_error("batchnorm", "true or false", batchnorm)
    names = [*PRESETS, *FAMILIES]
    factory_args: dict[str, Any] = {}
    if is_factory_path(model) or isinstance(model, dict) and "factory" in model:
        model, factory_args, user = parse_factory(model, info)
        layers, slots = (), dict(user.slots)
        if batchnorm:
            raise DropoutlabError(f"batchnorm: applies to the presets; {model} builds its own network")
    elif isinstance(model, str):
        if model not in names:
            raise DropoutlabError(
                f"model: {shown(model)} is not allowed; allowed: {', '.join(names)}, or your own network as "
                "'module:function' (a function returning an nn.Module, e.g. 'own_nets:make_cnn')"
            )
        layers = PRESETS.get(model, ())
        slots = dropout_slots(layers) if layers else dict.fromkeys(FAMILIES[model].slots, 0.0)
        if batchnorm:
            if not layers:
                raise DropoutlabError(f"batchnorm: applies to the presets {', '.join(PRESETS)}; {model} "
                                      f"{'has its own' if model == 'resnet' else 'has none'}")  # fmt: skip
            layers = with_batchnorm(layers)
    elif isinstance(model, dict):
        check_keys(model, {"layers"}, "model")
        layers = parse_layers(model.get("layers"), "model.layers")
        model = "custom"
        slots = dropout_slots(layers)
        if batchnorm:
            raise DropoutlabError(
                'batchnorm: applies to the presets; add {type = "batchnorm"} layers to the list'
            )
    else:
        raise type_error(
            "model",
            f"a model name ({', '.join(names)}), a factory 'module:function' or a table with layers",
            model,
        )
    table = raw.get("dropout", {})
    if factory_args or is_factory_path(model):
        table = slot_table(check_table(table, "dropout"), slots)
    rates, kind, slot_kinds, slot_options = parse_dropout(table, slots, model)

    opt_raw = check_table(raw.get("optimizer", {}), "optimizer")
    check_keys(opt_raw, {"name", "lr", "momentum", "weight_decay"}, "optimizer")
    optimizer = OptimizerSpec(
        name=check_choice(opt_raw.get("name", OptimizerSpec.name), "optimizer.name", OPTIMIZERS),
        lr=check_number(opt_raw.get("lr", OptimizerSpec.lr), "optimizer.lr", 0.0, open_low=True),
        momentum=check_number(
            opt_raw.get("momentum", OptimizerSpec.momentum), "optimizer.momentum", 0.0, 1.0
        ),
        weight_decay=check_number(
            opt_raw.get("weight_decay", OptimizerSpec.weight_decay), "optimizer.weight_decay", 0.0
        ),
    )
    if optimizer.momentum and optimizer.name != "sgd":
        raise DropoutlabError(f"optimizer.momentum: only sgd takes a momentum, not {optimizer.name}")

    validation = check_number(raw.get("validation", RunSettings.validation), "validation", 0.0, 1.0)
    early_stopping = None
    if "early_stopping" in raw:
        es_raw = check_table(raw["early_stopping"], "early_stopping")
        check_keys(es_raw, {"monitor", "patience", "min_delta", "restore_best"}, "early_stopping")
        if validation == 0:
            raise DropoutlabError(
                "early_stopping: needs a validation split, but validation = 0; "
                "set validation > 0 (e.g. 0.1667) or remove [early_stopping]"
            )
        restore = es_raw.get("restore_best", EarlyStoppingSpec.restore_best)
        if not isinstance(restore, bool):
            raise type_error("early_stopping.restore_best", "true or false", restore)
        early_stopping = EarlyStoppingSpec(
            monitor=check_choice(
                es_raw.get("monitor", EarlyStoppingSpec.monitor), "early_stopping.monitor", MONITORS
            ),
            patience=check_whole(
                es_raw.get("patience", EarlyStoppingSpec.patience), "early_stopping.patience", 0
            ),
            min_delta=check_number(
                es_raw.get("min_delta", EarlyStoppingSpec.min_delta), "early_stopping.min_delta", 0.0
            ),
            restore_best=restore,
        )

    eval_train = raw.get("eval_train", RunSettings.eval_train)
    if not isinstance(eval_train, bool):
        raise type_error("eval_train", "true or false", eval_train)
    if early_stopping and early_stopping.monitor.startswith("train_eval") and not eval_train:
        raise DropoutlabError(f"early_stopping.monitor: {early_stopping.monitor!r} needs eval_train = true")

    settings = RunSettings(
        dataset=raw["dataset"],
        model=model,
        layers=layers,
        dropout=rates,
        epochs=check_whole(raw.get("epochs", RunSettings.epochs), "epochs", 1),
        batch_size=check_whole(raw.get("batch_size", RunSettings.batch_size), "batch_size", 1),
        normalize=check_choice(raw.get("normalize", RunSettings.normalize), "normalize", NORMALIZATIONS),
        validation=validation,
        split_seed=check_whole(raw.get("split_seed", RunSettings.split_seed), "split_seed", 0),
        init=check_choice(raw.get("init", RunSettings.init), "init", INITS),
        eval_train=eval_train,
        optimizer=optimizer,
        early_stopping=early_stopping,
        dropout_kind=kind,
        slot_kinds=slot_kinds,
        slot_options=slot_options,
        label_smoothing=check_number(
            raw.get("label_smoothing", RunSettings.label_smoothing), "label_smoothing", 0.0, 1.0),
        max_norm=None if raw.get("max_norm") is None else check_number(
            raw["max_norm"], "max_norm", 0.0, open_low=True, allowed="> 0 (the 2014 paper used 3 to 4)"),
        augment=parse_augment(raw.get("augment", list(RunSettings.augment))),
        batchnorm=batchnorm,
        mc_samples=parse_mc_samples(raw.get("mc_samples", list(RunSettings.mc_samples))),
        factory_args=factory_args,
    )  # fmt: skip
    check_model_fits(settings)
    return settings


def parse_factory(model: Any, info) -> tuple[str, dict[str, Any], UserModelInfo]:
    """A factory as ``model`` names it (``"nets:make_net"``, or a table ``{factory = ..., ARG = ...}``
    whose other keys are its keyword arguments): ``(import path, arguments, what a trial build
    found)``, the model checked against the dataset ``info`` (:func:`probe_user_model`)."""
    if isinstance(model, dict):
        path, args = model["factory"], {k: v for k, v in model.items() if k != "factory"}
        where = "model.factory"
    else:
        path, args, where = model, {}, "model"
    if callable(path):
        from dropoutlab.models.user import register_factory

        path = register_factory(path)
    check_factory_path(path, where)
    for key, value in args.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise DropoutlabError(
                f"model.{shown(key)}: a factory's keyword argument is a Python name, e.g. width"
            )
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise DropoutlabError(
                f"model.{key}: {shown(value)} is not allowed; a factory's arguments are numbers, text, booleans, "
                "lists or tables (the store keeps them)"
            ) from None
    args = dict(sorted(args.items()))
    return path, args, probe_user_model(path, args, info.input_shape, info.num_classes)


def slot_table(table: dict[str, Any], slots: dict[str, float]) -> dict[str, Any]:
    """A ``[dropout]`` table with each slot of a user's model under its full name: a grid key
    ``dropout.features.3`` arrives nested (``{"features": {"3": 0.2}}``) and becomes
    ``{"features.3": 0.2}``; a quoted key ``"features.3"`` stays as it is, and the two forms of
    one slot meet as :func:`set_dotted` merges them (a grid's kind keeps the table's rate)."""
    out: dict[str, Any] = {}

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if name in slots or not isinstance(value, dict) or (not prefix and key in ("rate", "kind")):
                out[name] = _merged(out[name], value) if name in out else value
            else:
                walk(value, name + ".")

    walk(table, "")
    return out


def _merged(old: Any, new: Any) -> Any:
    """A slot's two values merged, the later winning: rates and tables (``{rate, kind, ...}``)."""
    old = {"rate": old} if _is_number(old) else old
    new = {"rate": new} if _is_number(new) else new
    if isinstance(old, dict) and isinstance(new, dict):
        return {**old, **new}
    return new


def parse_dropout(raw: Any, slots: dict[str, float], model: str):
    """The ``[dropout]`` table: ``(rates, study-wide kind, per-slot kinds, per-slot options)``.

    A slot's value is its rate, or a table ``{rate, kind, block_size}``. At the top, ``rate``
    sets every slot's rate and ``kind`` every slot's kind; a slot's own value wins. So
    ``"dropout.rate" = [0.0, 0.1]`` crosses with ``model`` whatever each model's slots are.
    Where a kind makes sense is checked later, against the model's shapes
    (:func:`check_model_fits`); a family's slot takes its own kind only (a kind named at the
    slot itself must be it; the study-wide default ``standard`` leaves each slot its own).

    ``block_size`` is an option of ``dropblock`` alone: a run whose slot is of another kind
    leaves it out of its options (so the run is the same as without it, with the same id).
    A grid over ``dropout.SLOT.kind`` may thus give a slot one ``block_size`` for its
    dropblock runs; a ``block_size`` that no run of the study uses is refused when the study
    is loaded (:func:`check_block_sizes`).
    """
    table = check_table(raw, "dropout")
    kinds = dropout_kinds()
    kind = check_choice(table.get("kind", RunSettings.dropout_kind), "dropout.kind", list(kinds))
    rates, slot_kinds, named, block_sizes = dict(slots), {}, {}, {}
    if "rate" in table:
        rates = dict.fromkeys(slots, check_rate(table["rate"], "dropout.rate"))
    for slot, value in table.items():
        if slot in ("kind", "rate"):
            continue
        where = f"dropout.{slot}"
        if slot not in slots:
            raise DropoutlabError(
                f"{where}: unknown slot for model {model!r}{did_you_mean(slot, [*slots, 'kind', 'rate'], 'dropout')}; "
                f"its slots: {', '.join(slots) or '(none)'}"
            )
        if isinstance(value, dict):
            check_keys(value, SLOT_KEYS, where)
            if "rate" in value:
                rates[slot] = check_rate(value["rate"], f"{where}.rate")
            if "kind" in value:
                named[slot] = check_choice(value["kind"], f"{where}.kind", list(kinds))
                if named[slot] != kind:
                    slot_kinds[slot] = named[slot]
            if "block_size" in value:
                block_sizes[slot] = check_whole(value["block_size"], f"{where}.block_size", 1)
        else:
            rates[slot] = check_rate(value, where)
    if model in FAMILIES:
        from dropoutlab.models import check_family_kinds

        check_family_kinds(model, lambda slot: slot_kinds.get(slot, kind), named)
    slot_options = {
        slot: {"block_size": size}
        for slot, size in block_sizes.items()
        if slot_kinds.get(slot, kind) in BLOCK_SIZE_KINDS
    }
    return rates, kind, slot_kinds, slot_options


# The kinds that take a slot's ``block_size``.
BLOCK_SIZE_KINDS = ("dropblock",)


def slot_kind(raw: dict[str, Any], slot: str) -> str:
    """The kind of ``slot`` in a study's raw settings (grid values applied), as :func:`parse_dropout`
    resolves it: the slot's own, else ``dropout.kind``, else ``standard``; a family's slot
    left at ``standard`` is its own kind (``droppath``, ``variational``)."""
    table = raw.get("dropout", {})
    value = table.get(slot)
    kind = (
        value.get("kind")
        if isinstance(value, dict) and "kind" in value
        else table.get("kind", RunSettings.dropout_kind)
    )
    model = raw.get("model", DEFAULT_MODEL)
    if kind == "standard" and isinstance(model, str) and model in FAMILIES:
        from dropoutlab.models.builder import FAMILY_KINDS

        kind = FAMILY_KINDS.get(model, {}).get(slot, kind)
    return kind


def slot_paths(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A raw ``[dropout]`` table with each slot under its full dotted name, without knowing the
    model's slots: a nested table that holds no slot option (``rate``, ``kind``, ``block_size``)
    is a module path going on (a grid's ``dropout.enc.drop.block_size`` of a user's slot
    ``enc.drop``); what :func:`slot_table` does once the slots are known."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not set(value) & SLOT_KEYS:
            for inner, inner_value in slot_paths(value, name + ".").items():
                out[inner] = _merged(out[inner], inner_value) if inner in out else inner_value
        else:
            out[name] = _merged(out[name], value) if name in out else value
    return out


def check_block_sizes(points: Iterable[dict[str, Any]]) -> None:
    """Refuse a slot's ``block_size`` that no run uses, in one line naming the slot and the kind
    that takes it; ``points`` are the raw settings of each grid point (already validated).

    A run ignores a ``block_size`` where its slot is not ``dropblock`` (:func:`parse_dropout`),
    so a grid over kinds may share one; but a value set only where no run is dropblock
    (``conv = {kind = "spatial", block_size = 3}``) would do nothing, and is refused.
    """
    kinds_of: dict[tuple[str, Any], set[str]] = {}
    for raw in points:
        table = slot_paths(raw.get("dropout", {}))
        flat = {**raw, "dropout": table}
        for slot, value in table.items():
            if isinstance(value, dict) and "block_size" in value:
                kinds_of.setdefault((slot, value["block_size"]), set()).add(slot_kind(flat, slot))
    for (slot, size), kinds in kinds_of.items():
        if not kinds & set(BLOCK_SIZE_KINDS):
            shown_kinds = " or ".join(repr(k) for k in sorted(kinds))
            raise DropoutlabError(
                f"dropout.{slot}.block_size: only kind 'dropblock' takes a block_size, but slot {slot!r} "
                f"is {shown_kinds} wherever block_size = {size} is set; set the slot's kind to "
                "'dropblock' or remove block_size"
            )


def parse_augment(raw: Any) -> tuple[str, ...]:
    """``augment``: a list of ``crop`` and ``flip``, each at most once."""
    if not isinstance(raw, list):
        raise type_error("augment", f"a list of {' and '.join(AUGMENTATIONS)}", raw)
    for i, name in enumerate(raw):
        check_choice(name, f"augment[{i}]", AUGMENTATIONS)
    if len(set(raw)) != len(raw):
        raise DropoutlabError(f"augment: {shown(raw)} repeats an augmentation; each may appear once")
    return tuple(name for name in AUGMENTATIONS if name in raw)


def parse_mc_samples(raw: Any) -> tuple[int, ...]:
    """``mc_samples``: the numbers T of Monte Carlo dropout passes to test with, sorted."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = [raw]
    if not isinstance(raw, list):
        raise type_error("mc_samples", "a list of whole numbers, e.g. [1, 10, 50]", raw)
    values = [check_whole(v, f"mc_samples[{i}]", 1) for i, v in enumerate(raw)]
    if any(v > MAX_MC_SAMPLES for v in values):
        raise DropoutlabError(
            f"mc_samples: {shown(raw)} is out of range; allowed: 1 to {MAX_MC_SAMPLES} passes"
        )
    return tuple(sorted(set(values)))


def check_model_fits(settings: RunSettings) -> None:
    """Check the model against the dataset and the size bounds, from the layer list alone.

    Shapes must fit, and each slot's dropout kind must make sense where the slot sits; the
    parameter count and the activation values of one batch must stay within ``DROPOUTLAB_MAX_PARAMS`` and ``DROPOUTLAB_MAX_ACTIVATIONS``. Nothing is built or
    allocated, so a layer that declares 2**62 units is refused as fast as a small one passes.
    """
    from dropoutlab.data import dataset_info
    from dropoutlab.data.prepare import check_split
    from dropoutlab.models import (
        check_family_kinds,
        check_slot_kinds,
        family_size,
        model_size,
        summarize_model,
    )

    info = dataset_info(settings.dataset)
    check_split(info.train_size, settings.validation, settings.dataset)
    if len(info.input_shape) == 1:  # feature vectors (F,): dense layers only
        if (
            settings.model in FAMILIES
            or not settings.factory
            and any(layer.type in ("conv2d", "maxpool2d") for layer in settings.layers)
        ):
            raise DropoutlabError(
                f"model: {settings.model} needs images (C, H, W) but {settings.dataset} holds feature vectors "
                f"{info.input_shape}: a convolution or pooling slides over height and width, which a feature "
                'vector lacks; use model = "mlp" or a list of dense layers'
            )
        if settings.augment:
            raise DropoutlabError(
                f"augment: crop and flip move pixels, and {settings.dataset} holds feature vectors "
                f"{info.input_shape}; remove augment"
            )
    if settings.factory:
        from dropoutlab.models import ModelSize, check_user_kinds

        user = probe_user_model(settings.factory, settings.factory_args, info.input_shape, info.num_classes)
        check_user_kinds(user, settings.kind_of)
        size = ModelSize(params=user.params, activations=user.activations)
    elif settings.model in FAMILIES:
        check_family_kinds(settings.model, settings.kind_of)
        size = family_size(settings.model, info.input_shape, info.num_classes)
    else:
        check_slot_kinds(settings.layers, info.input_shape, settings.kind_of)
        rows = summarize_model(settings.layers, settings.dropout, info.input_shape, info.num_classes)
        size = model_size(rows, info.input_shape)
    if size.params > MAX_PARAMS.value():
        raise MAX_PARAMS.refuse(f"model: {settings.model} on {settings.dataset} has", size.params)
    batch = min(settings.batch_size, info.train_size)  # a batch is at most the whole training set
    per_batch = size.activations * batch
    if per_batch > MAX_ACTIVATIONS.value():
        raise MAX_ACTIVATIONS.refuse(
            f"model: {settings.model} on {settings.dataset} with batches of {batch} has",
            per_batch,
        )
