"""CPU worker processes: each trains whole stacks (or runs) on one core, side by side.

The small networks of a dropout study do not spread well over the threads of one process:
every operation of a step is split over the cores and joined again, and the parts that do
not split (dropout's random numbers, Python) leave cores idle. One single-threaded process
per core, each training its own stacks, keeps every core busy (measured on 2 cores: the
CIFAR-10 CNN study 19% faster, the Fashion-MNIST MLP study 0-14%; see ``benchmarks/RESULTS.md``).

Workers are forked from the study's process, so they share its prepared data without a
copy and start at once. They run one thread each: a forked child must not start an OpenMP
thread team (the parent's is not carried over), which is why PyTorch's own ``DataLoader``
workers run single-threaded too. Forking is only offered on Linux, where it is safe for
PyTorch on the CPU; elsewhere and on CUDA a study trains in one process.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.queues import SimpleQueue
from typing import Any

import torch

from dropoutlab.errors import DropoutlabError

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1  # prctl option: a signal sent to this process when its parent dies

_job: tuple[Callable, tuple] | None = None  # what forked workers call: (function, shared arguments)


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, e.g. under a cluster scheduler)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def can_fork() -> bool:
    """Whether worker processes are offered here: Linux, with the ``fork`` start method."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def resolve_workers(workers: str | int, device: torch.device) -> int:
    """The number of worker processes for ``--workers``: ``"auto"`` or a whole number >= 1.

    ``auto`` is one per usable core when training on the CPU on Linux, else 1 (train in this
    process, with all its threads). More than one worker is refused on CUDA (the runs of a
    GPU study share the device in one process) and where processes cannot be forked. More
    workers than usable cores are capped at the cores, in one warning line: each worker is a
    process of its own, with its own memory, and two on one core only take turns.
    """
    if workers == "auto":
        return usable_cores() if device.type == "cpu" and can_fork() else 1
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise DropoutlabError(f"--workers: {workers!r} is not allowed; allowed: auto or a whole number >= 1")
    if workers > 1 and device.type != "cpu":
        raise DropoutlabError(
            f"--workers {workers}: worker processes train on the CPU; on {device.type} use --workers 1 or auto"
        )
    if workers > 1 and not can_fork():
        raise DropoutlabError(
            f"--workers {workers}: worker processes need Linux (they are forked); use --workers 1 or auto"
        )
    cores = usable_cores()
    if workers > cores:
        log.warning("--workers %d: this process may run on %d cores; training with %d worker processes",
                    workers, cores, cores)  # fmt: skip
        return cores
    return workers


def map_unordered(
    fn: Callable[..., Any], items: list[Any], shared: tuple, workers: int, tail_in_parent: bool = False
) -> Iterator[tuple[Any, Any]]:
    """Yield ``(item, fn(item, *shared))`` for every item, as ``workers`` forked processes finish them.

    ``shared`` (e.g. the prepared data) reaches the workers by the fork itself, never
    pickled; items and results are pickled. If the caller stops early (an error, Ctrl-C),
    the workers are stopped at once, and a worker that dies (e.g. killed for memory) ends
    the iteration with a :class:`DropoutlabError` naming what to try. One map at a time per
    process: the shared arguments live in a module global until the map ends.

    With ``tail_in_parent``, an item that would train alone at the end on one core while the
    other cores idle (``len(items) % workers == 1``) is kept for this process instead: the last
    item is called here, with this process's threads (torch's default), after the workers have
    finished the others, and is yielded last. Putting the largest items first is the caller's job.
    """
    if tail_in_parent and workers > 1 and len(items) % workers == 1:
        yield from _map_in_workers(fn, items[:-1], shared, workers)
        yield items[-1], fn(items[-1], *shared)
        return
    yield from _map_in_workers(fn, items, shared, workers)


def _map_in_workers(
    fn: Callable[..., Any], items: list[Any], shared: tuple, workers: int
) -> Iterator[tuple[Any, Any]]:
    global _job
    if not items:
        return
    _job = (fn, shared)
    context = multiprocessing.get_context("fork")
    # each worker reports its pid here when it starts: the one public way to know which
    # processes are the pool's, so that a stop can terminate them without waiting for their task
    pids = context.SimpleQueue()
    executor = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init, initargs=(pids, os.getpid())
    )
    try:
        futures = {executor.submit(_call, item): item for item in items}
        for future in as_completed(futures):
            yield futures[future], future.result()
    except BrokenProcessPool as exc:
        _stop(pids, workers)
        raise DropoutlabError(
            "a training worker process died (killed by the system, maybe for memory); finished runs are "
            "stored; run again with fewer --workers or a smaller --stack"
        ) from exc
    except BaseException:  # an error, Ctrl-C or the caller closing the generator: stop training now
        _stop(pids, workers)
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        pids.close()
        _job = None


def _init(pids: SimpleQueue, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops us
    # die with the parent, even if it is killed with SIGKILL: no orphan goes on training
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os.kill(os.getpid(), signal.SIGKILL)
    pids.put(os.getpid())
    torch.set_num_threads(1)


def _call(item: Any) -> Any:
    fn, shared = _job  # type: ignore[misc]
    return fn(item, *shared)


def _stop(pids: SimpleQueue, workers: int, wait_s: float = 2.0) -> None:
    """Terminate the pool's workers without waiting for their current task.

    A worker forked just before the stop may not have reported its pid yet, so this waits up to
    ``wait_s`` seconds for all ``workers`` reports. Only pids that are still unreaped children of
    this process are signalled (``active_children``), so a pid the system has reused is never hit.
    """
    reported: set[int] = set()
    deadline = time.monotonic() + wait_s
    while len(reported) < workers and time.monotonic() < deadline:
        if pids.empty():
            time.sleep(0.01)
        else:
            reported.add(pids.get())
    for process in multiprocessing.active_children():
        if process.pid in reported:
            process.terminate()
