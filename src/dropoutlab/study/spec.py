"""Study files: TOML in, validated frozen dataclasses out, errors naming file, key and what is allowed."""

from __future__ import annotations

import copy
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from dropoutlab.data.prepare import NORMALIZATIONS
from dropoutlab.errors import DropoutlabError
from dropoutlab.models import PRESETS, LayerSpec, dropout_slots, parse_layers
from dropoutlab.models.spec import check_rate

OPTIMIZERS = ("sgd", "adam", "adamw")
INITS = ("torch", "keras")
MONITORS = ("val_loss", "val_acc", "train_loss", "train_acc", "train_eval_loss", "train_eval_acc")


@dataclass(frozen=True)
class OptimizerSpec:
    """Optimizer settings. ``weight_decay`` is the L2 coefficient (coupled for sgd/adam, decoupled for adamw)."""

    name: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0


@dataclass(frozen=True)
class EarlyStoppingSpec:
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs."""

    monitor: str = "val_loss"
    patience: int = 3
    min_delta: float = 0.0
    restore_best: bool = True


@dataclass(frozen=True)
class RunSettings:
    """Everything that determines one training run except its seed, defaults resolved.

    ``model`` is a preset name or ``"custom"``; ``layers`` is the layer list either way.
    ``dropout`` maps every dropout slot of the model to its rate (0 means no layer).
    ``validation`` is the fraction of the training set held out; ``epochs`` and
    ``batch_size`` count passes over that remainder and samples per step.
    """

    dataset: str
    model: str
    layers: tuple[LayerSpec, ...]
    dropout: dict[str, float]
    epochs: int = 10
    batch_size: int = 64
    normalize: str = "unit"
    validation: float = 0.1667
    split_seed: int = 0
    init: str = "torch"
    eval_train: bool = True
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    early_stopping: EarlyStoppingSpec | None = None

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON-ready data (the ``spec`` of the export)."""
        data = asdict(self)
        data["layers"] = [layer.to_dict() for layer in self.layers]
        return data


@dataclass(frozen=True)
class StudySpec:
    """A validated study: shared settings, the grid (a union of cross products) and the seeds."""

    name: str
    path: Path | None
    settings: dict[str, Any]
    grid: tuple[dict[str, list[Any]], ...]
    seeds: tuple[int, ...]
    description: str = ""

    @property
    def param_keys(self) -> tuple[str, ...]:
        """The grid's parameters as dotted keys, table values flattened (``dropout.hidden1``)."""
        keys: dict[str, None] = {}
        for sub in self.grid:
            for key, values in sub.items():
                for value in values:
                    for flat in flatten({key: value}):
                        keys[flat] = None
        return tuple(keys)


STUDY_KEYS = {"name", "description", "seeds", "grid"}
SETTING_KEYS = {
    "dataset", "model", "dropout", "epochs", "batch_size", "normalize", "validation",
    "split_seed", "init", "eval_train", "optimizer", "early_stopping",
}  # fmt: skip


def flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"dropout": {"conv": 0.1}}`` → ``{"dropout.conv": 0.1}``."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


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


def _type_error(where: str, expected: str, value: Any) -> DropoutlabError:
    return DropoutlabError(f"{where}: expected {expected}, got {value!r}")


def _number(value: Any, where: str, low: float, high: float | None = None, *, open_high=True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _type_error(where, "a number", value)
    too_high = high is not None and (value >= high if open_high else value > high)
    if value < low or too_high:
        bound = f"[{low}, {high})" if open_high else f"[{low}, {high}]"
        raise DropoutlabError(
            f"{where}: {value!r} is out of range; allowed: {bound if high is not None else f'>= {low}'}"
        )
    return float(value)


def _int(value: Any, where: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(where, "a whole number", value)
    if value < low:
        raise DropoutlabError(f"{where}: {value!r} is out of range; allowed: >= {low}")
    return value


def _choice(value: Any, where: str, allowed) -> str:
    if value not in allowed:
        raise DropoutlabError(f"{where}: {value!r} is not allowed; allowed: {', '.join(map(str, allowed))}")
    return value


def _check_keys(table: dict[str, Any], allowed, where: str) -> None:
    for key in table:
        if key not in allowed:
            prefix = f"{where}." if where else ""
            raise DropoutlabError(f"{prefix}{key}: unknown key; allowed: {', '.join(sorted(allowed))}")


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _type_error(where, "a table", value)
    return value


def parse_settings(raw: dict[str, Any]) -> RunSettings:
    """Validate the settings of one run (after grid values are applied)."""
    _check_keys(raw, SETTING_KEYS, "")
    from dropoutlab.data import dataset_info  # imported late: the data package is heavier

    if "dataset" not in raw:
        raise DropoutlabError(
            'dataset: missing; name one, e.g. dataset = "digits" (see `dropoutlab datasets`)'
        )
    if not isinstance(raw["dataset"], str):
        raise _type_error("dataset", "a dataset name", raw["dataset"])
    dataset_info(raw["dataset"])  # raises for an unknown name or an unreadable npz

    model = raw.get("model", "mlp")
    if isinstance(model, str):
        _choice(model, "model", list(PRESETS))
        layers = PRESETS[model]
    elif isinstance(model, dict):
        _check_keys(model, {"layers"}, "model")
        layers = parse_layers(model.get("layers"), "model.layers")
        model = "custom"
    else:
        raise _type_error("model", f"a preset name ({', '.join(PRESETS)}) or a table with layers", model)

    slots = dropout_slots(layers)
    rates = dict(slots)
    for slot, rate in _table(raw.get("dropout", {}), "dropout").items():
        if slot not in slots:
            raise DropoutlabError(
                f"dropout.{slot}: unknown slot for model {model!r}; its slots: {', '.join(slots) or '(none)'}"
            )
        rates[slot] = check_rate(rate, f"dropout.{slot}")

    opt_raw = _table(raw.get("optimizer", {}), "optimizer")
    _check_keys(opt_raw, {"name", "lr", "momentum", "weight_decay"}, "optimizer")
    optimizer = OptimizerSpec(
        name=_choice(opt_raw.get("name", "adam"), "optimizer.name", OPTIMIZERS),
        lr=_number(opt_raw.get("lr", 1e-3), "optimizer.lr", 0.0),
        momentum=_number(opt_raw.get("momentum", 0.0), "optimizer.momentum", 0.0, 1.0),
        weight_decay=_number(opt_raw.get("weight_decay", 0.0), "optimizer.weight_decay", 0.0),
    )
    if optimizer.lr == 0:
        raise DropoutlabError("optimizer.lr: 0 is out of range; allowed: > 0")
    if optimizer.momentum and optimizer.name != "sgd":
        raise DropoutlabError(f"optimizer.momentum: only sgd takes a momentum, not {optimizer.name}")

    validation = _number(raw.get("validation", 0.1667), "validation", 0.0, 1.0)
    early_stopping = None
    if "early_stopping" in raw:
        es_raw = _table(raw["early_stopping"], "early_stopping")
        _check_keys(es_raw, {"monitor", "patience", "min_delta", "restore_best"}, "early_stopping")
        if validation == 0:
            raise DropoutlabError(
                "early_stopping: needs a validation split, but validation = 0; "
                "set validation > 0 (e.g. 0.1667) or remove [early_stopping]"
            )
        restore = es_raw.get("restore_best", True)
        if not isinstance(restore, bool):
            raise _type_error("early_stopping.restore_best", "true or false", restore)
        early_stopping = EarlyStoppingSpec(
            monitor=_choice(es_raw.get("monitor", "val_loss"), "early_stopping.monitor", MONITORS),
            patience=_int(es_raw.get("patience", 3), "early_stopping.patience", 0),
            min_delta=_number(es_raw.get("min_delta", 0.0), "early_stopping.min_delta", 0.0),
            restore_best=restore,
        )

    eval_train = raw.get("eval_train", True)
    if not isinstance(eval_train, bool):
        raise _type_error("eval_train", "true or false", eval_train)
    if early_stopping and early_stopping.monitor.startswith("train_eval") and not eval_train:
        raise DropoutlabError(f"early_stopping.monitor: {early_stopping.monitor!r} needs eval_train = true")

    settings = RunSettings(
        dataset=raw["dataset"],
        model=model,
        layers=layers,
        dropout=rates,
        epochs=_int(raw.get("epochs", 10), "epochs", 1),
        batch_size=_int(raw.get("batch_size", 64), "batch_size", 1),
        normalize=_choice(raw.get("normalize", "unit"), "normalize", NORMALIZATIONS),
        validation=validation,
        split_seed=_int(raw.get("split_seed", 0), "split_seed", 0),
        init=_choice(raw.get("init", "torch"), "init", INITS),
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


def _parse_grid(raw: Any) -> tuple[dict[str, list[Any]], ...]:
    subs = raw if isinstance(raw, list) else [raw]
    grid = []
    for i, sub in enumerate(subs):
        where = "grid" if not isinstance(raw, list) else f"grid[{i}]"
        sub = _table(sub, where)
        for key, values in sub.items():
            root = key.split(".")[0]
            if root not in SETTING_KEYS:
                raise DropoutlabError(
                    f"{where}.{key!r}: unknown setting {root!r}; allowed: {', '.join(sorted(SETTING_KEYS))}"
                )
            if not isinstance(values, list) or not values:
                raise _type_error(f"{where}.{key!r}", "a non-empty list of values", values)
        grid.append(sub)
    return tuple(grid)


def parse_study(raw: dict[str, Any], path: Path | None = None) -> StudySpec:
    """Validate a study's top-level table and every run of its grid (raises DropoutlabError)."""
    from dropoutlab.study.grid import expand_runs

    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise DropoutlabError('name: missing; give the study a name, e.g. name = "digits-mlp"')
    seeds_raw = raw.get("seeds", [0, 1, 2])
    if isinstance(seeds_raw, int) and not isinstance(seeds_raw, bool):
        seeds = tuple(range(_int(seeds_raw, "seeds", 1)))
    elif isinstance(seeds_raw, list) and seeds_raw:
        seeds = tuple(_int(s, f"seeds[{i}]", 0) for i, s in enumerate(seeds_raw))
        if len(set(seeds)) != len(seeds):
            raise DropoutlabError(f"seeds: {seeds_raw!r} repeats a seed; each seed must appear once")
    else:
        raise _type_error("seeds", "a list of whole numbers or a count", seeds_raw)
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise _type_error("description", "text", description)
    settings = {k: v for k, v in raw.items() if k not in STUDY_KEYS}
    _check_keys(settings, SETTING_KEYS | STUDY_KEYS, "")
    study = StudySpec(
        name=name.strip(),
        path=path,
        settings=settings,
        grid=_parse_grid(raw.get("grid", {})),
        seeds=seeds,
        description=description,
    )
    expand_runs(study)  # validates every grid point now, before anything trains
    return study


def load_study(path: str | Path) -> StudySpec:
    """Read and validate a TOML study file; errors name the file, the key and what is allowed."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DropoutlabError(f"{path}: no such study file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DropoutlabError(f"{path}: cannot read the study file ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise DropoutlabError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse_study(raw, path)
    except DropoutlabError as exc:
        raise DropoutlabError(f"{path}: {exc}") from None
