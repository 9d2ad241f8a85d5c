"""Run a study: skip what the store already has, train the rest, write each run as it ends."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from dropoutlab.data import Data, load_dataset
from dropoutlab.data.memory import use
from dropoutlab.data.prepare import PreparedData, prepare_data
from dropoutlab.errors import DropoutlabError
from dropoutlab.runs import RunResult, RunSpec, StudySpec
from dropoutlab.store import Store
from dropoutlab.study.design import check_design, keep_identity, with_identity
from dropoutlab.study.grid import expand_runs
from dropoutlab.study.leases import LEASE_S, Lease, driver_gone
from dropoutlab.study.ray_executor import MAX_RETRIES, RayProgress, ray_map
from dropoutlab.study.workers import map_unordered, resolve_workers
from dropoutlab.train import environment, plan_stacks, train_runs
from dropoutlab.train.checkpoints import DEFAULT_MINUTES, Checkpoint, checkpoint_folder
from dropoutlab.train.plan import check_memory, study_memory, trains_alone

log = logging.getLogger(__name__)
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class StudyOutcome:
    """What a call to :func:`run_study` did: runs planned, skipped (already stored) and their statuses."""

    study: str
    planned: int
    skipped: int
    statuses: Counter = field(default_factory=Counter)
    wall_s: float = 0.0
    note: str | None = None  # how the store's study changed: extended, or earlier runs archived
    plan_notes: list[str] = field(default_factory=list)  # why some runs trained one at a time
    busy: int = 0  # runs left to another driver that holds them (see study.leases)


EXECUTORS = ("local", "ray")


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; ``cuda`` without a GPU is an error."""
    if device not in DEVICES:
        raise DropoutlabError(f"--device: {device!r} is not allowed; allowed: {', '.join(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise DropoutlabError("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu or auto")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def _data_key(run: RunSpec) -> tuple:
    s = run.settings
    return (s.dataset, s.validation, s.split_seed, s.normalize)


def run_study(
    study: StudySpec,
    store: Store,
    device: str = "auto",
    data_dir: str | Path | None = None,
    progress: bool | None = None,
    stack: str | int = "auto",
    workers: str | int = "auto",
    replace: bool = False,
    keep_weights: bool = False,
    executor: str = "local",
    ray: RayOptions | None = None,
    checkpoint_every: int = 0,
    runs: list[RunSpec] | None = None,
    desc: str | None = None,
    checkpoint_minutes: float = DEFAULT_MINUTES,
    data: Data | None = None,
) -> StudyOutcome:
    """Train every run of ``study`` that ``store`` does not hold yet, writing each as it ends.

    Datasets are loaded and checked before the first run trains. A run that raises is
    stored as ``failed`` (with the error) and the study goes on; a failed run is tried
    again the next time the study runs. ``progress=None`` shows bars only on a terminal.

    ``stack`` chooses the engine: ``"off"`` trains one run at a time (the single engine, the
    reference), ``"auto"`` stacks of same-shaped networks sized by a memory budget, or a
    number, the most runs per stack (see :mod:`dropoutlab.train.plan`).

    ``workers`` is the number of CPU processes training stacks (or runs) side by side, each
    on one core (see :mod:`dropoutlab.study.workers`): ``"auto"`` is one per core on the CPU
    (Linux), 1 on CUDA. When one stack would be left to train alone at the end, it trains
    in this process with every thread. A run's results do not depend on its stack or
    worker beyond float rounding.

    A study the store already holds must have the same design: adding seeds or grid values
    extends it, any other change raises DropoutlabError (see :mod:`dropoutlab.study.design`)
    unless ``replace``, which first renames the stored runs to ``NAME@archived-N``.

    ``keep_weights`` stores each tested run's weights beside it, for ``dropoutlab evaluate``.

    ``executor`` ``"ray"`` sends each stack (or run) to a Ray cluster as a task instead of
    local worker processes (:mod:`dropoutlab.study.ray_executor`; ``ray`` holds the address
    and each task's resources). Two drivers may share a store: each trains only the runs
    it claimed (:mod:`dropoutlab.study.leases`), and a run another live driver holds is left
    to it (``busy`` in the outcome).

    Each stack (or run) saves its state at the end of the first epoch after every
    ``checkpoint_minutes`` of its wall time (default :data:`~dropoutlab.train.checkpoints.DEFAULT_MINUTES`;
    0: never by time) and, with ``checkpoint_every`` N > 0, every N epochs, in the study's
    folder under :meth:`Store.checkpoint_folder` (``STORE.checkpoints`` beside an SQLite file),
    deleted once the study is complete; a stack tried again (a Ray task after its worker
    died, the same stack after a restart, even where the restart would plan other stacks)
    resumes from its last checkpoint (:mod:`dropoutlab.train.checkpoints`). For Ray workers on
    other machines, that folder must be on a file system they share. Once the study is
    complete, the claims that killed drivers left on its runs are deleted too.

    ``runs`` trains these runs of the study instead of its grid x seeds: configurations of its
    grid with any seeds, such as the seeds ``--until-decided`` adds (:mod:`dropoutlab.study.sequential`).
    The store keeps the study's own definition either way, so a plain run of the same file
    afterwards is the same design. ``desc`` is the progress bar's label (default: the study's name).

    ``data`` is your own data (a :class:`~dropoutlab.data.Data`: arrays, a DataFrame, a torch
    ``Dataset``), which the study names as its ``dataset``; a Data made in this process is found
    by its name without it, and ``data=`` makes sure it is that one.
    """
    if executor not in EXECUTORS:
        raise DropoutlabError(f"--executor: {executor!r} is not allowed; allowed: {', '.join(EXECUTORS)}")
    if not checkpoint_minutes >= 0:
        raise DropoutlabError(
            f"--checkpoint-minutes: {checkpoint_minutes!r} is not allowed; allowed: a number of minutes >= 0"
        )
    start = time.perf_counter()
    runs = expand_runs(study) if runs is None else runs
    if data is not None:
        use(data, (run.settings.dataset for run in runs))
    # what each dataset name stands for, part of the design; a complete study is checked with the
    # files on this machine, and downloads nothing
    finished = store.finished_ids(study.name)
    study = with_identity(study, data_dir, download=replace or any(run.id not in finished for run in runs))
    to_train = runs if replace else [run for run in runs if run.id not in finished]
    if to_train and executor == "local":  # what --dry-run refuses for memory, refused before anything is
        dev = resolve_device(device)  # trained, archived or written
        check_memory(*study_memory(to_train, dev, stack, resolve_workers(workers, dev)), dev)
    if replace:
        busy = store.live_claims(LEASE_S, driver_gone, study=study.name)  # of any design of the study
        if busy:
            raise DropoutlabError(
                f"{study.name}: another `dropoutlab run` is training {len(busy)} of its runs on this store; "
                "--replace would archive the study under it: wait for it to end"
            )
        stored = store.count_runs(study.name)
        archived = store.archive_study(study.name)
        note = f"{study.name}: kept the {stored} stored runs as {archived!r}" if archived else None
    else:
        old = store.study_definition(study.name)
        note = check_design(old, study, store.name)
        study = keep_identity(old, study)
    done = store.finished_ids(study.name)
    todo = [run for run in runs if run.id not in done]
    store.write_study(study)
    outcome = StudyOutcome(study.name, planned=len(runs), skipped=len(runs) - len(todo), note=note)
    folder = checkpoint_folder(store.checkpoint_folder(), study.name)
    if not todo:
        forget_checkpoints(folder, store, runs)
        return outcome
    with Lease(store, study=study.name) as lease:
        mine = set(lease.claim([run.id for run in todo]))
        if len(mine) < len(todo):
            outcome.busy = len(todo) - len(mine)
            outcome.plan_notes.append(
                f"{outcome.busy} of the runs to train are being trained by another `dropoutlab run` on "
                f"this store: left to it (run this command again once it ends, to check)"
            )
        todo = [run for run in todo if run.id in mine]
        if todo:
            how = (ray or RayOptions()) if executor == "ray" else None
            checkpoint = Checkpoint(folder, checkpoint_every, checkpoint_minutes)
            options = BatchOptions(stack == "off", keep_weights,
                                   checkpoint if checkpoint_every or checkpoint_minutes else None)  # fmt: skip
            _train_todo(todo, store, lease, outcome, device, data_dir, progress, stack, workers, options, how,
                        desc, study.identity["data"])  # fmt: skip
    forget_checkpoints(folder, store, runs)
    outcome.wall_s = time.perf_counter() - start
    return outcome


def forget_checkpoints(folder: Path, store: Store, runs: list[RunSpec]) -> None:
    """Once every run of the study is stored and no driver trains any of its runs (of this
    design or another: an extension, an older one), delete the study's checkpoint ``folder``:
    no batch can resume from what is left there (stacks that never came back: taken over, or
    of a design since replaced); and delete the claims that killed drivers left on its runs."""
    if not runs:
        return
    study = runs[0].study
    done = {run.id for run in runs} <= store.finished_ids(study)
    if not done or store.live_claims(LEASE_S, driver_gone, study=study):
        return
    if store.forget_stale_claims(LEASE_S, driver_gone, study=study):
        log.info("%s: deleted the claims of drivers that were killed while they trained it", study)
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):  # the store's folder, once no study has files in it
            folder.parent.rmdir()


def _train_todo(
    todo: list[RunSpec],
    store: Store,
    lease: Lease,
    outcome: StudyOutcome,
    device: str,
    data_dir: str | Path | None,
    progress: bool | None,
    stack: str | int,
    workers: str | int,
    options: BatchOptions,
    ray: RayOptions | None,
    desc: str | None = None,
    identities: dict[str, str] | None = None,
) -> None:
    """Train the runs this driver claimed (on Ray with ``ray``), writing each result as it arrives,
    each with its dataset's identity (``identities``) in its ``env["data"]``."""
    dev = resolve_device(device)
    n_workers = min(resolve_workers(workers, dev), len(todo))
    datasets = {name: load_dataset(name, data_dir) for name in {r.settings.dataset for r in todo}}

    bar = tqdm(
        total=len(todo),
        desc=desc or outcome.study,
        unit="run",
        disable=False if progress else None if progress is None else True,
    )
    taken = 0
    on_ray = RayProgress()
    for group in _by_data(todo).values():
        s = group[0].settings
        data = prepare_data(datasets[s.dataset], s.validation, s.split_seed, s.normalize, dev)
        batches = (
            [[run] for run in group]
            if stack == "off"
            else plan_stacks(group, data, dev, stack, n_workers, _saved_stacks(options.checkpoint, group))
        )
        if stack != "off":
            for reason in dict.fromkeys(filter(None, map(trains_alone, group))):
                log.info("%s", reason)
                outcome.plan_notes.append(reason)
        if ray is not None:
            arrivals = _ray_batches(batches, data, dev, options, ray, on_ray)
        else:
            arrivals = _train_batches(batches, data, dev, n_workers, options, show=not bar.disable)
        for batch, results in arrivals:
            for result in results:
                if not lease.holds(result.run.id):  # our lease lapsed and another driver took it over
                    log.warning("run %s was taken over by another driver: its result is theirs to write",
                                result.run.id)  # fmt: skip
                    outcome.busy += 1
                    taken += 1
                    continue
                identity = (identities or {}).get(result.run.settings.dataset)
                if identity is not None:
                    result = dataclasses.replace(result, env={**result.env, "data": identity})
                store.write_run(result)
                outcome.statuses[result.status] += 1
            bar.update(len(batch))
            counts = {"running": on_ray.running if ray else 0, "failed": outcome.statuses["failed"],
                      "retried": on_ray.retried}  # fmt: skip
            bar.set_postfix_str(
                ", ".join([_postfix(results[-1]), *(f"{n} {k}" for k, n in counts.items() if n)])
            )
        del data  # free the device memory of this setting before the next one
    bar.close()
    if on_ray.retried:
        tasks = "1 Ray task was" if on_ray.retried == 1 else f"{on_ray.retried} Ray tasks were"
        outcome.plan_notes.append(f"{tasks} tried again after a worker died (up to {MAX_RETRIES} times each)")
    if taken:
        outcome.plan_notes.append(
            f"{taken} runs were taken over by another `dropoutlab run` while this one trained them (its claims "
            "lapsed): their results are left to it"
        )


def _saved_stacks(checkpoint: Checkpoint | None, runs: list[RunSpec]) -> list[list[RunSpec]]:
    """The stacks of ``runs`` that have a checkpoint (an interrupted plan), for :func:`plan_stacks`
    to keep, so that they resume even where this plan would cut the runs otherwise."""
    if checkpoint is None:
        return []
    by_id = {run.id: run for run in runs}
    return [
        [by_id[i] for i in ids]
        for engine, ids in checkpoint.saved_batches()
        if engine == "stacked" and all(i in by_id for i in ids)
    ]


def _by_data(runs: list[RunSpec]) -> dict[tuple, list[RunSpec]]:
    groups: dict[tuple, list[RunSpec]] = {}
    for run in runs:
        groups.setdefault(_data_key(run), []).append(run)
    return groups


def _train_batches(
    batches: list[list[RunSpec]],
    data: PreparedData,
    device: torch.device,
    workers: int,
    options: BatchOptions,
    show: bool,
) -> Iterator[tuple[list[RunSpec], list[RunResult]]]:
    """Yield each batch with its results: in order in this process, or as worker processes finish them."""
    if workers > 1 and len(batches) > 1:
        yield from map_unordered(
            _train_batch,
            batches,
            (data, device, options, False),
            workers,
            tail_in_parent=True,
        )
        return
    for batch in batches:
        yield batch, _train_batch(batch, data, device, options, show)


#: Tests only: ``kill|raise:RUN_ID:EPOCH:MARKER`` kills the process training run RUN_ID (or
#: makes it raise) after epoch EPOCH, once: the fault creates the file MARKER, and does
#: nothing where it exists, so the retry goes through.
FAULT_ENV = "DROPOUTLAB_FAULT"


def inject_fault(runs: list[RunSpec], epoch: int) -> None:
    """The fault :data:`FAULT_ENV` asks for, if it is due now for one of ``runs``."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    action, run_id, at, marker = spec.split(":", 3)
    if int(at) != epoch or run_id not in {run.id for run in runs} or Path(marker).exists():
        return
    Path(marker).touch()
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError(f"fault injected by {FAULT_ENV} at epoch {epoch}")


@dataclass(frozen=True)
class BatchOptions:
    """How every batch of a study trains: one run at a time (``stack_off``), keeping each
    tested run's weights, checkpointing (``checkpoint``, or None)."""

    stack_off: bool = False
    keep_weights: bool = False
    checkpoint: Checkpoint | None = None


@dataclass(frozen=True)
class RayOptions:
    """Where ``--executor ray`` sends its tasks and what each asks for: the cluster ``address``
    (None: ``RAY_ADDRESS``, else a local instance), ``cpus`` and ``gpus`` per task (None: 1
    on a CUDA device, else 0; a fraction lets several stacks share a card)."""

    address: str | None = None
    cpus: float = 1.0
    gpus: float | None = None


def _ray_batches(
    batches: list[list[RunSpec]],
    data: PreparedData,
    device: torch.device,
    options: BatchOptions,
    ray: RayOptions,
    progress: RayProgress,
) -> Iterator[tuple[list[RunSpec], list[RunResult]]]:
    """Yield each batch with its results as Ray tasks finish them (``progress`` counts the tasks
    running and retried); a task that failed after its retries (its worker died each time)
    gives its runs status ``failed``."""
    gpus = ray.gpus if ray.gpus is not None else float(device.type == "cuda")
    shared = (data.to("cpu"), device, options)  # the object store holds CPU tensors
    for batch, result in ray_map(_ray_task, batches, shared, ray.address, ray.cpus, gpus, progress):
        if isinstance(result, BaseException):
            log.error("a Ray task failed after its retries: %s", result)
            error = f"{type(result).__name__}: {result}"
            result = [RunResult(run, "failed", env=environment(device), error=error) for run in batch]
        yield batch, result


def _ray_task(
    runs: list[RunSpec], data: PreparedData, device: torch.device, options: BatchOptions
) -> list[RunResult]:
    """One Ray task: a batch trained on this worker, its data moved to ``device`` first."""
    return _train_batch(runs, data.to(device), device, options)


def _train_batch(
    runs: list[RunSpec],
    data: PreparedData,
    device: torch.device,
    options: BatchOptions,
    show: bool = False,
) -> list[RunResult]:
    """Train one batch of runs (one run, or a stack).

    The single engine trains it with ``--stack off`` or when its run :func:`trains_alone`,
    the stacked engine otherwise. When a stack raises, its runs are trained again one by one
    (a run's numbers do not depend on its stack), so that only the runs that raise alone are
    lost; such a run is ``failed``, its ``error`` the exception's line then its traceback."""
    engine = "single" if options.stack_off or trains_alone(runs[0]) else "stacked"
    what = f"  seed {runs[0].seed}" if len(runs) == 1 else f"  stack of {len(runs)}"
    epochs = tqdm(total=runs[0].settings.epochs, desc=what, unit="epoch", leave=False, disable=not show)

    def on_epoch(epoch: int, members: int) -> None:
        epochs.update(1)
        inject_fault(runs, epoch)

    try:
        return train_runs(runs, data, device, engine, on_epoch, options.keep_weights, options.checkpoint)
    except (DropoutlabError, KeyboardInterrupt):
        raise
    except Exception as exc:  # a broken run must not end the study; its traceback goes to the log
        if len(runs) > 1:
            if options.checkpoint:  # the runs train one by one from here: this stack will not resume
                Checkpoint.remove(options.checkpoint.path(runs, engine))
            log.warning(
                "a stack of %d runs raised %s; training them one by one", len(runs), type(exc).__name__
            )
            return [result for run in runs for result in _train_batch([run], data, device, options, show)]
        log.exception("run %s (seed %d) failed", runs[0].id, runs[0].seed)
        error = f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}"
        return [RunResult(runs[0], "failed", env=environment(device), error=error)]
    finally:
        epochs.close()


def _postfix(result: RunResult) -> str:
    if result.status != "completed":
        return result.status
    return f"last test acc {result.test_acc:.1%}"
