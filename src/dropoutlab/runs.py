"""What a run is and what it produced: the records every part of dropoutlab reads.

A study file becomes a :class:`StudySpec`; each of its grid points times each seed is a
:class:`RunSpec` (settings resolved: :class:`RunSettings`); training one gives a
:class:`RunResult` with one :class:`EpochRecord` per epoch. The store writes these, the
report reads them back. This module is the leaf of the package: it imports nothing else
from dropoutlab, so every other part can import it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

#: Where a study's runs are kept unless ``--store`` says otherwise (an SQLite file).
DEFAULT_STORE = "dropoutlab.db"

FINISHED = ("completed", "diverged")  # a failed run is tried again on the next `run`


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a model, as a study file writes it.

    ``units = "classes"`` on a dense layer means "as many as the dataset has classes".
    A dropout layer has a ``slot`` (its rate comes from the study's ``[dropout]`` table,
    default 0), a fixed ``rate``, or both (``rate`` is then the slot's default).
    """

    type: str
    units: int | str | None = None
    filters: int | None = None
    kernel: int | None = None
    stride: int | None = None
    padding: int | str | None = None
    activation: str | None = None
    size: int | None = None
    slot: str | None = None
    rate: float | None = None
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The options that are set, as they would be written in a study file."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


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

    ``model`` is a preset name or ``"custom"``, with its layer list in ``layers``; a family's
    name; or a factory's import path (``"mypackage.nets:make_net"``, :attr:`factory`), called
    with ``factory_args``, its layers empty. ``dropout`` maps every dropout slot of the model
    to its rate (0 means no layer; a factory's slots are module paths, ``features.3``).
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
    dropout_kind: str = "standard"
    slot_kinds: dict[str, str] = field(default_factory=dict)
    slot_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    label_smoothing: float = 0.0
    max_norm: float | None = None
    augment: tuple[str, ...] = ()
    batchnorm: bool = False
    mc_samples: tuple[int, ...] = ()
    factory_args: dict[str, Any] = field(default_factory=dict)

    @property
    def factory(self) -> str | None:
        """The import path of the factory that builds this run's model, or None for a preset,
        a layer list or a family (a path has a colon, ``"module:function"``; a name has none)."""
        return self.model if ":" in self.model else None

    @property
    def monitor(self) -> str:
        """The metric that picks a run's best epoch: early stopping's, else ``val_loss``."""
        return self.early_stopping.monitor if self.early_stopping else "val_loss"

    def kind_of(self, slot: str) -> str:
        """The dropout kind at ``slot``: its own (``slot_kinds``), else the study's ``dropout_kind``."""
        return self.slot_kinds.get(slot, self.dropout_kind)

    def value(self, key: str) -> Any:
        """The value of a study-file key (dotted, as a grid writes it) in these settings.

        ``dropout.kind`` is the study's kind, ``dropout.rate`` the rate most slots share (the
        first slot's on a tie: every slot's, unless some were set apart), ``dropout.SLOT`` and
        ``dropout.SLOT.rate`` a slot's rate, ``dropout.SLOT.kind`` and ``dropout.SLOT.block_size``
        what that slot uses (a slot's name may have dots: a factory's ``features.3``);
        ``model.ARG`` a factory's keyword argument.
        """
        parts = key.split(".")
        if parts[0] == "model" and len(parts) == 2 and self.factory:
            return self.factory_args.get(parts[1])
        if parts[0] == "dropout" and len(parts) >= 2:
            if parts[1:] == ["kind"]:
                return self.dropout_kind
            if parts[1:] == ["rate"]:
                rates = list(self.dropout.values())
                return max(rates, key=rates.count) if rates else None
            slot, rest = parts[1], parts[2:]
            for end in range(len(parts), 2, -1):  # the longest dotted prefix that names a slot
                if ".".join(parts[1:end]) in self.dropout:
                    slot, rest = ".".join(parts[1:end]), parts[end:]
                    break
            if rest in ([], ["rate"]):
                return self.dropout.get(slot)
            if rest == ["kind"]:
                return self.kind_of(slot) if slot in self.dropout else None
            return self.slot_options.get(slot, {}).get(rest[0]) if len(rest) == 1 else None
        node: Any = self.to_dict(complete=True)
        for part in parts:
            node = node.get(part) if isinstance(node, dict) else None
        return list(node) if isinstance(node, tuple) else node

    def to_dict(self, complete: bool = False) -> dict[str, Any]:
        """The settings as plain JSON-ready data (the ``spec`` of the export).

        Settings added after the first release are left out where they hold their defaults
        (unless ``complete``), so a study written before them keeps its run ids and its store.
        """
        data = asdict(self)
        data["layers"] = [layer.to_dict() for layer in self.layers]
        for key in ("augment", "mc_samples"):
            data[key] = list(data[key])
        if not complete:
            for key, default in ADDED_DEFAULTS.items():
                if data[key] == default:
                    del data[key]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSettings:
        """The settings :meth:`to_dict` wrote (a stored run's ``spec``, its ``seed`` ignored)."""
        values = {**ADDED_DEFAULTS, **{k: v for k, v in data.items() if k != "seed"}}
        es = values.get("early_stopping")
        return cls(**{
            **values,
            "layers": tuple(LayerSpec(**layer) for layer in values["layers"]),
            "optimizer": OptimizerSpec(**values.get("optimizer", {})),
            "early_stopping": EarlyStoppingSpec(**es) if es else None,
            "augment": tuple(values["augment"]),
            "mc_samples": tuple(values["mc_samples"]),
        })  # fmt: skip


# Settings added after the first release (see RunSettings.to_dict).
ADDED_SETTINGS = (
    "dropout_kind", "slot_kinds", "slot_options", "label_smoothing", "max_norm", "augment", "batchnorm",
    "mc_samples", "factory_args",
)  # fmt: skip


def _json_default(f: Field) -> Any:
    """The default of dataclass field ``f`` as :meth:`RunSettings.to_dict` writes it (a tuple as a list)."""
    value = f.default_factory() if f.default is MISSING else f.default
    return list(value) if isinstance(value, tuple) else value


#: The settings added after the first release with their defaults, as ``to_dict`` writes them:
#: read from :class:`RunSettings`'s fields, where every default lives.
ADDED_DEFAULTS: dict[str, Any] = {
    f.name: _json_default(f) for f in fields(RunSettings) if f.name in ADDED_SETTINGS
}


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


@dataclass(frozen=True)
class StudySpec:
    """A validated study: shared settings, the grid (a union of cross products) and the seeds."""

    name: str
    path: Path | None
    settings: dict[str, Any]
    grid: tuple[dict[str, list[Any]], ...]
    seeds: tuple[int, ...]
    description: str = ""
    min_effect: float | None = None  # smallest test-accuracy difference worth detecting (report)
    # [resources]: what each Ray task asks for (cpus_per_task, gpus_per_task); not kept in the
    # store, since where a run trains changes none of its numbers
    resources: dict[str, float] = field(default_factory=dict)
    # [sequential]: step, max_seeds and baseline of `--until-decided`; not in the definition, since
    # the looks stored with the study record the design they were taken with
    sequential: dict[str, Any] = field(default_factory=dict)
    # what the names stand for, part of the design and compared entry by entry: "data" ({dataset
    # name: identity}, filled in by run_study: study.design.with_identity) and "model" (a factory's
    # import path, source hash and repr, from study.spec.parse_study)
    identity: dict[str, Any] = field(default_factory=dict)

    def definition(self) -> dict[str, Any]:
        """What the store keeps of the study (JSON-ready): the settings, grid, seeds and
        ``identity`` (when known) that make its design, and ``description`` and ``min_effect``,
        which only the report reads."""
        data = {"description": self.description, "settings": self.settings, "grid": list(self.grid),
                "seeds": list(self.seeds), "min_effect": self.min_effect}  # fmt: skip
        if self.identity:
            data["identity"] = self.identity
        return json.loads(json.dumps(data))

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


@dataclass(frozen=True)
class RunSpec:
    """One training run: its study, resolved settings, seed and grid values.

    ``params`` holds the value of every grid parameter (dotted keys) for this run, read from
    the resolved settings, so all runs of a study share the same parameter keys. The seed
    fixes the initialisation, the data order and the dropout masks.
    """

    id: str
    study: str
    settings: RunSettings
    seed: int
    params: dict[str, Any]

    def spec_dict(self) -> dict[str, Any]:
        """The full resolved settings with the seed, as exported."""
        return {**self.settings.to_dict(), "seed": self.seed}


def run_id(study: str, settings: RunSettings, seed: int) -> str:
    """A stable id: the same study name, settings and seed always give the same id."""
    return spec_run_id(study, settings.to_dict(), seed)


def spec_run_id(study: str, spec: dict[str, Any], seed: int) -> str:
    """:func:`run_id` from the settings as stored (``RunSettings.to_dict()``, without the seed)."""
    blob = json.dumps({"study": study, "spec": spec, "seed": seed}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch of one run measured. Its fields are *the* list of metric names.

    Losses are mean cross-entropies (nats per sample), accuracies fractions in [0, 1], over:
    ``train_*`` the epoch's training batches as they were trained (train mode: dropout on,
    running over the epoch); ``val_*`` the validation split and ``train_eval_*`` a fixed
    subset of the training split, both in eval mode after the epoch. ``None`` where not
    measured (no validation split, ``eval_train = false``, or a diverged epoch).
    """

    epoch: int  # 1-based
    train_loss: float | None = None
    train_acc: float | None = None
    val_loss: float | None = None
    val_acc: float | None = None
    train_eval_loss: float | None = None
    train_eval_acc: float | None = None

    @property
    def diverged(self) -> bool:
        """Whether the training loss of this epoch was not a finite number."""
        return self.train_loss is None or not math.isfinite(self.train_loss)

    def as_diverged(self) -> EpochRecord:
        """The record kept for the epoch where a run diverged: its training accuracy alone."""
        return EpochRecord(self.epoch, train_acc=self.train_acc)


EPOCH_METRICS: tuple[str, ...] = tuple(f.name for f in fields(EpochRecord) if f.name != "epoch")

# Test-set metrics of Monte Carlo dropout (see RunResult.mc): accuracy (fraction), mean negative
# log-likelihood (nats), Brier score, expected calibration error (15 equal-width bins),
# mean predictive entropy (nats) and mean mutual information (nats).
MC_METRICS: tuple[str, ...] = ("acc", "nll", "brier", "ece", "entropy", "mutual_information")


def kept_epoch(restore_best: bool, best: int | None, stopped: int | None) -> int | None:
    """The epoch whose weights a run keeps and tests: its best one with early stopping's
    ``restore_best`` (when it has one), else the last one trained."""
    return best if restore_best and best is not None else stopped


@dataclass(frozen=True)
class RunResult:
    """What one run produced: its epochs, the test score of the kept model, how it was trained.

    ``status`` is ``completed``, ``diverged`` (the training loss stopped being finite; the
    run is not tested) or ``failed`` (an error, in ``error``; tried again on the next run of
    the study). ``best_epoch`` is :func:`best_epoch` of the history by the run's monitor
    (early stopping's, else ``val_loss``); ``stopped_epoch`` the last epoch trained; the
    tested weights are those of :func:`kept_epoch`. ``wall_s`` is seconds of training and
    evaluation (a stack's time divided by its members). ``env`` says how it was trained:
    ``engine`` (``single`` or ``stacked``), ``stack`` (``size``, ``position``, ``wall_s``),
    ``device``, ``dtype`` (``float32`` or ``bf16-autocast``), ``threads`` and versions.
    ``mc`` holds the test set's uncertainty metrics with dropout on at test (Monte Carlo
    dropout, one entry per ``mc_samples`` value T, and ``samples = 0`` for the usual
    deterministic pass): :data:`MC_METRICS` and ``reliability`` (per confidence bin:
    count, mean confidence, accuracy). ``learned_rates`` holds, for a run with ``concrete``
    dropout, each slot's learned rate after each epoch: ``(epoch, slot, rate)``. ``weights``
    are the tested weights, serialized by ``torch.save``, when the run was asked to keep them
    (``dropoutlab run --keep-weights``; ``dropoutlab evaluate`` reads them).
    """

    run: RunSpec
    status: str
    history: tuple[EpochRecord, ...] = ()
    test_loss: float | None = None
    test_acc: float | None = None
    best_epoch: int | None = None
    stopped_epoch: int | None = None
    wall_s: float = 0.0
    env: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    mc: tuple[dict[str, Any], ...] = ()
    learned_rates: tuple[tuple[int, str, float], ...] = ()
    weights: bytes | None = field(default=None, repr=False)

    @property
    def kept_epoch(self) -> int | None:
        """The epoch whose weights were tested (see :func:`kept_epoch`)."""
        es = self.run.settings.early_stopping
        return kept_epoch(bool(es and es.restore_best), self.best_epoch, self.stopped_epoch)
