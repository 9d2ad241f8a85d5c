"""The Ray executor (``dropoutlab run --executor ray``): each stack, or run, as a Ray task.

Ray (https://docs.ray.io) schedules the tasks on a cluster, or on a local instance started
here when no address is given. The prepared data is put in Ray's object store once, so each
node reads it once, not once per task. A worker process that dies mid-task (killed, out of
memory) has its task retried by Ray, up to :data:`MAX_RETRIES` times; the driver writes each
result to the store as it arrives, so results never depend on which node trained them.
Ray is an optional dependency: ``pip install "dropoutlab[ray]"``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from dropoutlab.errors import DropoutlabError

#: Times Ray runs a task again after its worker process died.
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


def ray_map(
    fn: Callable[..., Any],
    items: list[Any],
    shared: tuple,
    address: str | None = None,
    num_cpus: float = 1,
    num_gpus: float = 0,
) -> Iterator[tuple[Any, Any]]:
    """Yield ``(item, fn(item, *shared))`` for every item as Ray tasks finish them, or
    ``(item, error)`` with the task's exception when it failed after :data:`MAX_RETRIES` retries.

    Connects to the cluster at ``address`` (else ``RAY_ADDRESS``, else a local instance
    started here and stopped at the end). ``shared`` goes to the object store once. Each
    task asks for ``num_cpus`` CPUs and ``num_gpus`` GPUs (a fraction lets tasks share a
    card). The ``DROPOUTLAB_*`` environment variables travel to the workers.
    """
    ray = import_ray()
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
        refs = [ray.put(value) for value in shared]
        task = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=MAX_RETRIES)(fn)
        pending = {task.remote(item, *refs): i for i, item in enumerate(items)}
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as exc:
                result = exc
            yield items[i], result
    finally:
        if started:
            ray.shutdown()
