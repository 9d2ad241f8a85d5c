"""The Ray executor (``dropoutlab run --executor ray``): each stack, or run, as a Ray task.

Ray (https://docs.ray.io) schedules the tasks on a cluster, or on a local instance started
here when no address is given. The prepared data is put in Ray's object store once, so each
node reads it once, not once per task. A worker process that dies mid-task (killed, out of
memory) has its task tried again, up to :data:`MAX_RETRIES` times; the driver writes each
result to the store as it arrives, so results never depend on which node trained them.
Ray is an optional dependency: ``pip install "dropoutlab[ray]"``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from dropoutlab.errors import DropoutlabError

log = logging.getLogger(__name__)

#: Times the driver submits a task again after its worker process died.
MAX_RETRIES = 3


def import_ray():
    """The ``ray`` module, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise DropoutlabError(
            '--executor ray needs Ray, an optional extra: pip install "dropoutlab[ray]"'
        ) from None
    return ray


@dataclass
class RayProgress:
    """What :func:`ray_map` has under way, for the progress line: tasks ``running`` (submitted
    to Ray and not returned, never more than the cluster has room for) and tasks ``retried``
    after their worker died."""

    running: int = 0
    retried: int = 0


def ray_map(
    fn: Callable[..., Any],
    items: list[Any],
    shared: tuple,
    address: str | None = None,
    num_cpus: float = 1,
    num_gpus: float = 0,
    progress: RayProgress | None = None,
) -> Iterator[tuple[Any, Any]]:
    """Yield ``(item, fn(item, *shared))`` for every item as Ray tasks finish them, or
    ``(item, error)`` with the task's exception when its worker died :data:`MAX_RETRIES` + 1 times.

    Connects to the cluster at ``address`` (else ``RAY_ADDRESS``, else a local instance
    started here and stopped at the end). ``shared`` goes to the object store once. Each
    task asks for ``num_cpus`` CPUs and ``num_gpus`` GPUs (a fraction lets tasks share a
    card). The ``DROPOUTLAB_*`` environment variables travel to the workers.

    The driver keeps as many tasks submitted as the cluster has room for, plus one waiting
    (so that an autoscaling cluster sees demand and grows), and tries a task again itself
    when its worker died: ``progress`` counts both as they change.
    """
    ray = import_ray()
    progress = progress if progress is not None else RayProgress()
    started = not ray.is_initialized()
    if started:
        env = {k: v for k, v in os.environ.items() if k.startswith("DROPOUTLAB_")}
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": env} if env else None)  # fmt: skip
        except ConnectionError as exc:
            raise DropoutlabError(
                f"--executor ray: cannot reach the Ray cluster at {address}: {exc}"
            ) from None
    try:
        total = ray.cluster_resources()
        if total.get("CPU", 0) < num_cpus or total.get("GPU", 0) < num_gpus:
            log.warning(
                "the Ray cluster has %g CPUs and %g GPUs in all, and each task asks for %g CPUs and %g GPUs: "
                "the tasks wait until a node that fits them joins (an autoscaler may add one)",
                total.get("CPU", 0), total.get("GPU", 0), num_cpus, num_gpus,
            )  # fmt: skip
        refs = [ray.put(value) for value in shared]
        task = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0)(fn)
        waiting = list(range(len(items)))[::-1]  # popped from the end: items in order
        pending: dict[Any, int] = {}
        attempts = [0] * len(items)
        while waiting or pending:
            room = task_slots(ray.cluster_resources(), num_cpus, num_gpus)
            while waiting and len(pending) <= room:
                i = waiting.pop()
                pending[task.remote(items[i], *refs)] = i
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:  # fn raised: trying it again would raise again
                result = exc
            except ray.exceptions.RayError as exc:  # its worker or node died: try again
                attempts[i] += 1
                if attempts[i] <= MAX_RETRIES:
                    progress.retried += 1
                    waiting.append(i)
                    continue
                result = exc
            progress.running = min(len(pending), room)  # read by the caller while it holds the result
            yield items[i], result
    finally:
        progress.running = 0
        if started:
            ray.shutdown()


def task_slots(resources: dict[str, float], num_cpus: float, num_gpus: float) -> int:
    """How many tasks asking for ``num_cpus`` CPUs and ``num_gpus`` GPUs fit in a cluster of
    ``resources`` (as :func:`ray.cluster_resources` gives them) at once; at least 1."""
    fits = [resources.get("CPU", 0) / num_cpus] if num_cpus > 0 else []
    if num_gpus > 0:
        fits.append(resources.get("GPU", 0) / num_gpus)
    return max(1, int(min(fits, default=1) + 1e-9))
