"""The settings of one run: a table of a study file (grid values applied) in, :class:`RunSettings` out.

Every check names the key and what is allowed; :func:`parse_settings` is where each setting
is validated, for ``run`` and ``--dry-run`` alike.
"""

from __future__ import annotations

import copy
from typing import Any

from dropoutlab.data.prepare import NORMALIZATIONS
from dropoutlab.errors import DropoutlabError
from dropoutlab.models import PRESETS, dropout_slots, parse_layers
from dropoutlab.models.spec import check_rate
from dropoutlab.runs import EPOCH_METRICS, EarlyStoppingSpec, OptimizerSpec, RunSettings

OPTIMIZERS = ("sgd", "adam", "adamw")
INITS = ("torch", "keras")
MONITORS = EPOCH_METRICS


STUDY_KEYS = {"name", "description", "seeds", "grid", "min_effect"}
SETTING_KEYS = {
    "dataset", "model", "dropout", "epochs", "batch_size", "normalize", "validation",
    "split_seed", "init", "eval_train", "optimizer", "early_stopping",
}  # fmt: skip


def set_dotted(settings: dict[str, Any], key: str, value: Any) -> None:
    """Set ``settings["a"]["b"] = value`` for ``key = "a.b"``; a table value is merged."""
    *parents, last = key.split(".")
    node = settings
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise DropoutlabError(f"grid key {key!r}: {part!r} is not a table")
    if isinstance(value, dict) and isinstance(node.get(last), dict):
        node[last] = {**node[last], **value}
    else:
        node[last] = copy.deepcopy(value)


def type_error(where: str, expected: str, value: Any) -> DropoutlabError:
    return DropoutlabError(f"{where}: expected {expected}, got {value!r}")


def check_number(value: Any, where: str, low: float, high: float | None = None, *, open_high=True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise type_error(where, "a number", value)
    too_high = high is not None and (value >= high if open_high else value > high)
    if value < low or too_high:
        bound = f"[{low}, {high})" if open_high else f"[{low}, {high}]"
        raise DropoutlabError(
            f"{where}: {value!r} is out of range; allowed: {bound if high is not None else f'>= {low}'}"
        )
    return float(value)


def check_whole(value: Any, where: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise type_error(where, "a whole number", value)
    if value < low:
        raise DropoutlabError(f"{where}: {value!r} is out of range; allowed: >= {low}")
    return value


def check_choice(value: Any, where: str, allowed) -> str:
    if value not in allowed:
        raise DropoutlabError(f"{where}: {value!r} is not allowed; allowed: {', '.join(map(str, allowed))}")
    return value


def check_keys(table: dict[str, Any], allowed, where: str) -> None:
    for key in table:
        if key not in allowed:
            prefix = f"{where}." if where else ""
            raise DropoutlabError(f"{prefix}{key}: unknown key; allowed: {', '.join(sorted(allowed))}")


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
    dataset_info(raw["dataset"])  # raises for an unknown name or an unreadable npz

    model = raw.get("model", "mlp")
    if isinstance(model, str):
        check_choice(model, "model", list(PRESETS))
        layers = PRESETS[model]
    elif isinstance(model, dict):
        check_keys(model, {"layers"}, "model")
        layers = parse_layers(model.get("layers"), "model.layers")
        model = "custom"
    else:
        raise type_error("model", f"a preset name ({', '.join(PRESETS)}) or a table with layers", model)

    slots = dropout_slots(layers)
    rates = dict(slots)
    for slot, rate in check_table(raw.get("dropout", {}), "dropout").items():
        if slot not in slots:
            raise DropoutlabError(
                f"dropout.{slot}: unknown slot for model {model!r}; its slots: {', '.join(slots) or '(none)'}"
            )
        rates[slot] = check_rate(rate, f"dropout.{slot}")

    opt_raw = check_table(raw.get("optimizer", {}), "optimizer")
    check_keys(opt_raw, {"name", "lr", "momentum", "weight_decay"}, "optimizer")
    optimizer = OptimizerSpec(
        name=check_choice(opt_raw.get("name", "adam"), "optimizer.name", OPTIMIZERS),
        lr=check_number(opt_raw.get("lr", 1e-3), "optimizer.lr", 0.0),
        momentum=check_number(opt_raw.get("momentum", 0.0), "optimizer.momentum", 0.0, 1.0),
        weight_decay=check_number(opt_raw.get("weight_decay", 0.0), "optimizer.weight_decay", 0.0),
    )
    if optimizer.lr == 0:
        raise DropoutlabError("optimizer.lr: 0 is out of range; allowed: > 0")
    if optimizer.momentum and optimizer.name != "sgd":
        raise DropoutlabError(f"optimizer.momentum: only sgd takes a momentum, not {optimizer.name}")

    validation = check_number(raw.get("validation", 0.1667), "validation", 0.0, 1.0)
    early_stopping = None
    if "early_stopping" in raw:
        es_raw = check_table(raw["early_stopping"], "early_stopping")
        check_keys(es_raw, {"monitor", "patience", "min_delta", "restore_best"}, "early_stopping")
        if validation == 0:
            raise DropoutlabError(
                "early_stopping: needs a validation split, but validation = 0; "
                "set validation > 0 (e.g. 0.1667) or remove [early_stopping]"
            )
        restore = es_raw.get("restore_best", True)
        if not isinstance(restore, bool):
            raise type_error("early_stopping.restore_best", "true or false", restore)
        early_stopping = EarlyStoppingSpec(
            monitor=check_choice(es_raw.get("monitor", "val_loss"), "early_stopping.monitor", MONITORS),
            patience=check_whole(es_raw.get("patience", 3), "early_stopping.patience", 0),
            min_delta=check_number(es_raw.get("min_delta", 0.0), "early_stopping.min_delta", 0.0),
            restore_best=restore,
        )

    eval_train = raw.get("eval_train", True)
    if not isinstance(eval_train, bool):
        raise type_error("eval_train", "true or false", eval_train)
    if early_stopping and early_stopping.monitor.startswith("train_eval") and not eval_train:
        raise DropoutlabError(f"early_stopping.monitor: {early_stopping.monitor!r} needs eval_train = true")

    settings = RunSettings(
        dataset=raw["dataset"],
        model=model,
        layers=layers,
        dropout=rates,
        epochs=check_whole(raw.get("epochs", 10), "epochs", 1),
        batch_size=check_whole(raw.get("batch_size", 64), "batch_size", 1),
        normalize=check_choice(raw.get("normalize", "unit"), "normalize", NORMALIZATIONS),
        validation=validation,
        split_seed=check_whole(raw.get("split_seed", 0), "split_seed", 0),
        init=check_choice(raw.get("init", "torch"), "init", INITS),
        eval_train=eval_train,
        optimizer=optimizer,
        early_stopping=early_stopping,
    )
    check_model_fits(settings)
    return settings


def check_model_fits(settings: RunSettings) -> None:
    """Build the model's shape table for the dataset, so a misfit fails before training."""
    from dropoutlab.data import dataset_info
    from dropoutlab.models import summarize_model

    info = dataset_info(settings.dataset)
    summarize_model(settings.layers, settings.dropout, info.input_shape, info.num_classes)
