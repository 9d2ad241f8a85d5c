"""Stack planning: which runs train together, and how many fit a memory budget."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from dropoutlab.data.prepare import PreparedData
from dropoutlab.errors import DropoutlabError
from dropoutlab.layers import STACKED_FORMS
from dropoutlab.models import FAMILIES, LayerRow, dropout_kinds, family_outputs, summarize_model
from dropoutlab.runs import LayerSpec, RunSpec

CPU_BUDGET = 1 << 30  # bytes of parameters, optimizer state and activations per stack on the CPU
CPU_CACHE_BUDGET = 64 << 20  # bytes of weights and optimizer state per stack on the CPU
CUDA_BUDGET_FRACTION = 0.5  # of the free GPU memory
# members per stack with --stack auto, beyond the memory bound. On the CPU, 12: per member a
# step costs the same in stacks of 4 to 24 (the Fashion-MNIST MLP), and a sweep of 24 runs
# then makes two stacks that two worker processes train side by side.
AUTO_MAX = {"cpu": 12, "cuda": 256}


def stack_key(run: RunSpec) -> tuple:
    """What runs must share to train in one stack.

    Everything but the per-member settings: seed, dropout rates, learning rate, weight decay,
    momentum, early-stopping patience and min_delta, and the kind of dropout at a slot where
    every kind is parameter-free (:attr:`~dropoutlab.layers.stacked.StackedLayer.mixable`:
    standard, scaled, gaussian, alpha, spatial, dropblock), so a sweep over those kinds
    trains in one stack. A factory's keyword arguments (``model.width``) shape its network.
    """
    s = run.settings
    es = s.early_stopping
    forms = dropout_kinds()
    kinds = tuple(
        "mixable" if getattr(STACKED_FORMS.get(forms.get(kind)), "mixable", False) else kind
        for kind in (s.kind_of(slot) for slot in s.dropout)
    )
    options = tuple(sorted((slot, tuple(sorted(o.items()))) for slot, o in s.slot_options.items()))
    return (
        s.dataset, s.validation, s.split_seed, s.normalize, s.model, s.layers, tuple(s.dropout), kinds,
        options, s.epochs, s.batch_size, s.init, s.eval_train, s.optimizer.name,
        (es.monitor, es.restore_best) if es else None, s.label_smoothing, s.augment, s.mc_samples,
        json.dumps(s.factory_args, sort_keys=True),
    )  # fmt: skip


def trains_alone(run: RunSpec) -> str | None:
    """Why ``run`` cannot join a stack (one line for the plan), or None when it can."""
    s = run.settings
    if s.factory:
        return user_model_reason(s)
    if s.model in FAMILIES:
        return f"{s.model} runs train one at a time: the stacked engine covers layer-list models"
    stackable = {name for name, cls in dropout_kinds().items() if cls in STACKED_FORMS}
    missing = sorted({s.kind_of(slot) for slot, rate in s.dropout.items() if rate} - stackable)
    if missing:
        return f"{', '.join(missing)} dropout has no stacked form: its runs train one at a time"
    return None


_USER_REASONS: dict[tuple, str | None] = {}


def user_model_reason(settings) -> str | None:
    """Why the runs of a factory's model train one at a time, or None when they can train together
    through ``torch.func`` (:func:`~dropoutlab.train.functional.functional_reason`: batch norm
    updating running statistics, a random module without a functional form). Looks at the model
    built once per factory, arguments and slot kinds, every slot at a rate above 0 (so that each
    takes its kind), on the meta device where the factory allows it (nothing allocated)."""
    from dropoutlab.models.user import build_user_model
    from dropoutlab.train.functional import functional_reason

    kinds = tuple((slot, settings.kind_of(slot)) for slot in settings.dropout)
    key = (settings.factory, json.dumps(settings.factory_args, sort_keys=True, default=repr), kinds,
           json.dumps(settings.slot_options, sort_keys=True, default=repr))  # fmt: skip
    if key not in _USER_REASONS:
        rates = all_slots(settings.dropout)
        with torch.random.fork_rng(devices=[]):
            try:
                with torch.device("meta"):
                    model = build_user_model(settings, (), 0, rates)
            except Exception:  # a factory that needs real tensors: built on the CPU
                model = build_user_model(settings, (), 0, rates)
        reason = functional_reason(model)
        _USER_REASONS[key] = f"{settings.factory}: {reason}" if reason else None
    return _USER_REASONS[key]


def all_slots(rates: dict[str, float]) -> dict[str, float]:
    """Every dropout slot present (any rate > 0 adds the layer), so all members share one structure."""
    return dict.fromkeys(rates, 0.5)


def stack_rows(layers: tuple[LayerSpec, ...], rates: dict[str, float], data: PreparedData) -> list[LayerRow]:
    """The layer rows (output shapes, parameter counts) of a stack's network, every slot present."""
    return summarize_model(layers, all_slots(rates), data.input_shape, data.num_classes)


def per_sample_floats(rows: list[LayerRow], input_shape: tuple[int, ...]) -> int:
    """Floats one sample occupies through the network: its input and every layer's output."""
    return math.prod(input_shape) + sum(math.prod(r.output_shape) for r in rows)


def member_bytes(run: RunSpec, data: PreparedData) -> tuple[int, int]:
    """Estimated training memory of one member in bytes (float32): ``(total, weights and state)``.

    Weights and state are the parameters, their gradient and the optimizer state (two
    moments for adam, a momentum buffer for sgd) plus one best copy with early stopping;
    the total adds the activations of a batch three times over (kept for the backward
    pass, their gradients, dropout masks).
    """
    s = run.settings
    if s.factory:  # a user's model: its parameters and the values one sample occupies, probed once
        from dropoutlab.models.user import user_outputs

        params, outputs = user_outputs(s, data.input_shape, data.num_classes)
        per_sample = math.prod(data.input_shape) + sum(outputs)
    else:
        rows = stack_rows(s.layers, s.dropout, data)
        params, per_sample = sum(r.params for r in rows), per_sample_floats(rows, data.input_shape)
    copies = 4 if s.optimizer.name in ("adam", "adamw") else 3
    copies += 1 if s.early_stopping else 0
    state = 4 * params * copies
    return state + 4 * 3 * s.batch_size * per_sample, state


def memory_budget(device: torch.device) -> int:
    """Bytes one stack may use: half the free memory on CUDA, ``CPU_BUDGET`` on the CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * CUDA_BUDGET_FRACTION)
    return CPU_BUDGET


def stack_limit(run: RunSpec, data: PreparedData, device: torch.device, stack: str | int) -> int:
    """The most members a stack of ``run``'s group may have: ``stack`` itself when a whole number;
    with ``"auto"``, as many as ``AUTO_MAX`` allows whose :func:`peak_memory` (the estimate
    ``--dry-run`` budgets and a run refuses by) fits the memory budget, and on the CPU whose
    weights and optimizer state fit ``CPU_CACHE_BUDGET`` (see :func:`plan_stacks`); at least 1."""
    if stack == "auto":
        size = _footprint(run, tuple(data.input_shape), data.num_classes)
        budget = memory_budget(device)
        for members in range(AUTO_MAX.get(device.type, AUTO_MAX["cuda"]), 1, -1):
            peak = _peak(size, run, members, budget)
            if peak.total <= budget and (device.type != "cpu" or peak.state <= CPU_CACHE_BUDGET):
                return members
        return 1
    if isinstance(stack, int) and not isinstance(stack, bool) and stack >= 1:
        return stack
    raise DropoutlabError(f"--stack: {stack!r} is not allowed; allowed: auto, off or a whole number >= 1")


def plan_stacks(
    runs: list[RunSpec],
    data: PreparedData,
    device: torch.device,
    stack: str | int,
    workers: int = 1,
    resume: Sequence[list[RunSpec]] = (),
) -> list[list[RunSpec]]:
    """Group ``runs`` by :func:`stack_key` and cut each group into stacks, largest first.

    A run that :func:`trains_alone` (a model family, a dropout kind without a stacked form)
    is a stack of its own, for the single engine.
    ``stack`` is the most members per stack (a whole number), or ``"auto"``: as many as fit
    a memory budget (see :func:`member_bytes`): half the free memory on CUDA; on the CPU
    1 GiB per stack (per worker process), and at most ``CPU_CACHE_BUDGET`` of weights and
    optimizer state, because a CPU step streams them through the caches (measured: the
    Fashion-MNIST MLP runs as fast per member in stacks of 4 to 24, 1.6 MB each; the
    CIFAR-10 CNN, 90 MB each, is fastest alone). At most ``AUTO_MAX`` members either way.
    With ``"auto"`` and several ``workers``, a group is cut into a multiple of ``workers``
    stacks where it has the runs for it, so that every worker has a stack to the end.
    A group is cut into stacks of nearly equal sizes, its runs ordered by seed (stable), so
    that runs with the same seed, which draw the same batches, sit side by side. A run's
    results do not depend on the plan (each member draws its own masks), only its speed does.

    ``resume`` lists stacks that have a checkpoint (of an earlier, interrupted plan): each is
    kept as it is, in its order, when its runs are all among ``runs``, in one group, and within
    the group's limit (:func:`stack_limit`), so that it resumes where it stopped; the other runs
    are planned as above.
    """
    groups: dict[tuple, list[RunSpec]] = {}
    stacks: list[list[RunSpec]] = []
    todo = {run.id for run in runs}
    for kept in resume:
        ids = [run.id for run in kept]
        if (
            len(kept) < 2  # a lone run is planned alone anyway, or joins a stack: nothing to keep
            or not set(ids) <= todo
            or len(set(ids)) < len(ids)
            or any(trains_alone(run) for run in kept)
            or len({stack_key(run) for run in kept}) > 1
            or len(kept) > stack_limit(kept[0], data, device, stack)
        ):
            continue
        stacks.append(list(kept))
        todo -= set(ids)
    for run in sorted((run for run in runs if run.id in todo), key=lambda run: run.seed):
        if trains_alone(run):
            stacks.append([run])
        else:
            groups.setdefault(stack_key(run), []).append(run)
    for group in groups.values():
        count = math.ceil(len(group) / stack_limit(group[0], data, device, stack))
        if stack == "auto":
            count = min(len(group), math.ceil(count / workers) * workers)
        size, extra = divmod(len(group), count)
        start = 0
        for i in range(count):
            end = start + size + (1 if i < extra else 0)
            stacks.append(group[start:end])
            start = end
    return sorted(stacks, key=len, reverse=True)


# --- the peak memory of a batch of runs, for --dry-run ------------------------------------

#: Copies of each attention matrix a training step holds: scores, softmax, dropout mask / gradient.
ATTENTION_COPIES = 3
#: The fewest rows per member a stacked evaluation pass takes, whatever the budget (``StackedEngine``).
STACKED_EVAL_ROWS = 64


@dataclass(frozen=True)
class Peak:
    """Estimated peak memory of one batch of runs trained together, in bytes (float32):
    ``state`` (weights, gradients, optimizer state, a best copy), ``train`` (a training step's
    activations, kept for the backward pass) and ``evaluate`` (a validation, test or MC dropout
    pass over ``eval_rows`` rows per member, nothing kept for a backward pass)."""

    members: int
    state: int
    train: int
    evaluate: int
    eval_rows: int

    @property
    def total(self) -> int:
        """The peak: the state plus the larger of the two passes."""
        return self.state + max(self.train, self.evaluate)

    @property
    def setting(self) -> str:
        """The setting to lower to bring the peak down, in words."""
        if self.evaluate >= max(self.train, self.state):
            if self.members == 1:
                return f"the evaluation batch ({self.eval_rows} rows) dominates: lower the model's or the images' size"
            return f"the evaluation batch ({self.eval_rows} rows per member) dominates: lower --stack"
        if self.train >= self.state:
            return "lower batch_size or --stack"
        return "lower --stack or the model's size"


def attention_values(model: str, input_shape: tuple[int, ...], training: bool = True) -> int:
    """Attention values one sample holds at once for the transformer (0 for other models): in a
    training step layers x heads x tokens^2 x :data:`ATTENTION_COPIES` (every layer's are kept for
    the backward pass); in an evaluation pass one layer's scores and softmax, heads x tokens^2 x 2."""
    if model != "transformer":
        return 0
    from dropoutlab.models.families import Transformer, patch_size

    _, height, width = input_shape
    patch = patch_size(height, width)
    tokens = (height // patch) * (width // patch) + 1  # the class token
    if not training:
        return Transformer.heads * tokens**2 * 2
    return Transformer.depth * Transformer.heads * tokens**2 * ATTENTION_COPIES


def peak_memory(
    run: RunSpec,
    input_shape: tuple[int, ...],
    num_classes: int,
    members: int = 1,
    device: torch.device | None = None,
) -> Peak:
    """The :class:`Peak` of ``members`` runs like ``run`` trained as one batch (1: the single engine).

    Counts what a forward pass holds at its peak, for every member: each layer's output (a
    recurrent family's state at every time step, as the steps are kept for the backward pass),
    the attention matrices (batch x heads x tokens^2), three copies of a training batch's
    activations (values, gradients, masks, as :func:`member_bytes`), and the evaluation
    batch: 2048 rows with the single engine, at least ``STACKED_EVAL_ROWS`` per member stacked
    (as the engines evaluate; MC dropout's passes run one after another in such batches).
    """
    size = _footprint(run, tuple(input_shape), num_classes)
    budget = memory_budget(device or torch.device("cpu")) if members > 1 else 0
    return _peak(size, run, members, budget)


@dataclass(frozen=True)
class _Footprint:
    """What one sample costs a network: ``params``; ``per_sample``, the values a training step
    keeps (every output, attention included); ``at_once``, the values an evaluation pass holds."""

    params: int
    per_sample: int
    at_once: int


def _footprint(run: RunSpec, input_shape: tuple[int, ...], num_classes: int) -> _Footprint:
    s = run.settings
    if s.factory:  # a user's network: its factory arguments may change its shapes
        args = json.dumps(s.factory_args, sort_keys=True)
        return _user_footprint(s.factory, args, s.model, input_shape, num_classes)
    return _network_footprint(s.model, s.layers, tuple(sorted(s.dropout)), input_shape, num_classes)


def _counted(model: str, params: int, outputs: list[int], input_shape: tuple[int, ...]) -> _Footprint:
    sizes = [math.prod(input_shape), *outputs]
    per_sample = sum(sizes) + attention_values(model, input_shape)
    # without a backward pass, a pass holds a layer's input and output (and a residual block's input)
    at_once = 3 * max(sizes) + attention_values(model, input_shape, training=False)
    return _Footprint(params, per_sample, at_once)


@lru_cache(maxsize=256)
def _user_footprint(factory: str, args: str, model: str, input_shape, num_classes: int) -> _Footprint:
    """:class:`_Footprint` of a user's network, counted once per factory and arguments (JSON)."""
    from dropoutlab.models.user import user_outputs

    params, outputs = user_outputs(factory, json.loads(args), input_shape, num_classes)
    return _counted(model, params, outputs, input_shape)


@lru_cache(maxsize=256)
def _network_footprint(model, layers, slots, input_shape, num_classes) -> _Footprint:
    """:class:`_Footprint` of one architecture, counted once however many grid points share it
    (rates and optimizer settings do not change shapes; every slot is counted present)."""
    from dropoutlab.models.builder import model_size, summarize_model

    if model in FAMILIES:
        params, outputs = family_outputs(model, input_shape, num_classes)
    else:
        rows = summarize_model(layers, dict.fromkeys(slots, 0.5), input_shape, num_classes)
        params, outputs = model_size(rows, input_shape).params, [math.prod(r.output_shape) for r in rows]
    return _counted(model, params, outputs, input_shape)


def _peak(size: _Footprint, run: RunSpec, members: int, budget: int) -> Peak:
    """The :class:`Peak` of ``members`` runs like ``run``; ``budget`` sizes a stacked evaluation
    batch as ``StackedEngine`` does (:func:`memory_budget`)."""
    from dropoutlab.train.single import EVAL_BATCH

    s = run.settings
    copies = (4 if s.optimizer.name in ("adam", "adamw") else 3) + (1 if s.early_stopping else 0)
    state = 4 * size.params * copies * members
    train = 4 * 3 * s.batch_size * size.per_sample * members
    if members == 1:
        rows = EVAL_BATCH
    else:
        room = budget // (4 * members * max(size.per_sample, 1))
        rows = int(max(STACKED_EVAL_ROWS, min(EVAL_BATCH, room)))
    return Peak(members, state, train, 4 * rows * size.at_once * members, rows)


@dataclass(frozen=True)
class MemoryPlan:
    """The peak memory a study's plan budgets: ``largest``, the batch of runs (a stack or a run)
    whose :class:`Peak` is highest, what one worker holds at most; ``total``, the sum over the
    ``workers`` largest batches, which may train at once (bytes)."""

    largest: Peak
    total: int
    workers: int


def plan_memory(
    runs: list[RunSpec], shapes: Mapping[str, Any], device: torch.device, stack: str | int, workers: int = 1
) -> MemoryPlan:
    """The :class:`MemoryPlan` of ``runs`` planned as a study would (``stack``, ``workers``);
    ``shapes`` maps each dataset to anything with its ``input_shape`` and ``num_classes`` (a
    :class:`~dropoutlab.data.registry.DatasetInfo`): nothing is loaded or allocated."""
    by_dataset: dict[str, list[RunSpec]] = {}
    for run in runs:
        by_dataset.setdefault(run.settings.dataset, []).append(run)
    peaks = []
    known: dict[tuple, Peak] = {}  # one count per distinct network and stack size, however many stacks
    for dataset, group in by_dataset.items():
        info = shapes[dataset]
        batches = (
            [[run] for run in group] if stack == "off" else plan_stacks(group, info, device, stack, workers)
        )
        for batch in batches:
            members = 1 if stack == "off" or trains_alone(batch[0]) else len(batch)
            key = (stack_key(batch[0]), members)
            if key not in known:
                known[key] = peak_memory(batch[0], info.input_shape, info.num_classes, members, device)
            peaks.append(known[key])
    peaks.sort(key=lambda peak: peak.total, reverse=True)
    n = max(1, min(workers, len(peaks)))
    return MemoryPlan(peaks[0], sum(peak.total for peak in peaks[:n]), n)


def study_memory(
    runs: list[RunSpec], device: torch.device, stack: str | int, workers: int
) -> tuple[MemoryPlan, int]:
    """The :class:`MemoryPlan` of ``runs`` (each dataset's shapes from its ``dataset_info``:
    nothing is loaded) and the bytes :func:`available_memory` gives now."""
    from dropoutlab.data import dataset_info

    shapes = {name: dataset_info(name) for name in {run.settings.dataset for run in runs}}
    return plan_memory(runs, shapes, device, stack, workers), available_memory(device)


def check_memory(plan: MemoryPlan, free: int, device: torch.device) -> None:
    """Refuse a plan whose peak needs more than the ``free`` bytes of ``device``: a
    ``DropoutlabError`` of one line naming the setting to lower, the same for ``--dry-run``
    and for a run, which checks before anything trains."""
    if plan.total > free:
        fewer = ", or lower --workers" if plan.workers > 1 else ""
        raise DropoutlabError(
            f"the plan needs about {size_text(plan.total)} at its peak, more than the {size_text(free)} "
            f"available on {device.type}: {plan.largest.setting}{fewer}"
        )


def size_text(n: int) -> str:
    """Bytes in words: 3.2 MiB, 1.5 GiB."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 1024:.1f} KiB"


def available_memory(device: torch.device) -> int:
    """Bytes this machine can give a study now: the free memory of the GPU on CUDA; on the CPU,
    Linux's ``MemAvailable`` (else the physical memory)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
