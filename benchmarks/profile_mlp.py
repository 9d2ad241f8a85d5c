"""Where the time of bench_mlp.py's headline ``--stack auto`` study goes, in buckets.

Buckets: start-up (Python and the imports of ``dropoutlab run``), reading the study, data
preparation (loading and normalising the images), training (split into matrix products,
dropout masks, optimizer, other operations and the Python in between), evaluation
(validation and test passes) and the store.

How, from outside the package (nothing in ``src/`` is instrumented for this):

1. Start-up is the wall time of a process that only imports what ``dropoutlab run``
   imports, best of three, beside that of an empty ``python -c pass``.
2. The study then runs in this process with ``run_study(..., workers=1)`` without the
   profiler: the phase times are wall clocks around the package's data, evaluation and store
   functions, found by name wherever they are referenced.
3. The split of training comes from one worker's share of it under ``torch.profiler``: the
   same study with seeds 0 and 1 only (one stack of 12 in the headline) for 1 epoch; the
   self time of every operator is bucketed by its name and by the marked function it ran
   inside (matrix products, dropout masks, optimizer, other operators), and what is left of
   training is Python and framework between operators.

By default the study runs single-threaded, as each of ``--stack auto``'s worker processes
does on a CPU (one per core, each training whole stacks); with 24 runs on 2 cores one worker
trains half of them, so the whole-process study takes about half of the training and
evaluation time printed here plus start-up, reading and preparation. The profiler slows
operators down (a few microseconds each); compare its total with the run without it.

Commands (from the repository root)::

    python benchmarks/profile_mlp.py --quick                 # smoke test, ~1 min
    python benchmarks/profile_mlp.py                         # the headline study, ~3 min
    python benchmarks/profile_mlp.py --src /tmp/base/src     # the same for an older checkout, ~3 min
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import inspect
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLI_IMPORTS = "import dropoutlab.cli, dropoutlab.store, dropoutlab.study"

# Functions of the package whose wall time is a phase, by bucket: (module prefix, name pattern).
PHASES = {
    "data preparation": ("dropoutlab.data", re.compile(r"^(load_dataset|prepare\w*)$")),
    "evaluation": ("dropoutlab.train", re.compile(r"eval|(^|_)test")),
    "store": ("dropoutlab.store", re.compile(r"^(?!_)\w+$")),
}
# Within training: functions of the package that draw and apply dropout masks, and optimizer steps.
MASKS = ("dropoutlab.layers", re.compile(r"dropout", re.IGNORECASE))
OPTIMIZER = ("dropoutlab.train", re.compile(r"optim|(^|_)step$", re.IGNORECASE))
PRODUCT_OPS = re.compile(
    r"^aten::(mm|bmm|baddbmm|addmm|addbmm|addmv|mv|_?convolution\w*|mkldnn_convolution\w*)$"
)
RANDOM_OPS = re.compile(r"^aten::(random_|uniform_|bernoulli\w*|rand\w*|normal_|native_dropout\w*)$")
OPTIMIZER_OPS = re.compile(r"adam|sgd|_foreach_|^Optimizer\.", re.IGNORECASE)


def startup_seconds(src: Path) -> tuple[float, float]:
    """(empty interpreter, interpreter + the imports of ``dropoutlab run``), best of three, in seconds."""

    def best(code: str) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(src)}
            )
            times.append(time.perf_counter() - start)
        return min(times)

    return best("pass"), best(CLI_IMPORTS)


class Timers:
    """Wall clocks around package functions, by bucket, counting only the outermost call of a bucket."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.depth: dict[str, int] = defaultdict(int)
        self.wrapped: dict[str, list[str]] = defaultdict(list)

    def wrap(self, bucket: str, fn):
        import torch

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            self.depth[bucket] += 1
            start = time.perf_counter()
            try:
                with torch.profiler.record_function(f"bucket:{bucket}"):
                    return fn(*args, **kwargs)
            finally:
                self.depth[bucket] -= 1
                if self.depth[bucket] == 0:
                    self.seconds[bucket] += time.perf_counter() - start

        return timed

    def install(self, bucket: str, prefix: str, pattern: re.Pattern) -> None:
        """Wrap the functions and methods defined under ``prefix`` whose names match, wherever referenced.

        A layer (a class with ``forward``) whose name matches has its ``forward`` wrapped; any
        other class, its methods whose names match.
        """
        modules = [m for name, m in list(sys.modules.items()) if name.startswith("dropoutlab") and m]
        functions = {}
        for module in modules:
            if not module.__name__.startswith(prefix):
                continue
            for name, obj in vars(module).items():
                if getattr(obj, "__module__", None) != module.__name__:
                    continue  # imported from elsewhere: wrapped where it is defined
                if inspect.isfunction(obj) and pattern.search(name):
                    functions[obj] = f"{module.__name__}.{name}"
                elif inspect.isclass(obj):
                    for attr, member in list(vars(obj).items()):
                        layer = pattern.search(name) and "forward" in vars(obj)
                        method = attr == "forward" if layer else pattern.search(attr)
                        if inspect.isfunction(member) and method and not attr.startswith("__"):
                            setattr(obj, attr, self.wrap(bucket, member))
                            self.wrapped[bucket].append(f"{module.__name__}.{name}.{attr}")
        for fn, where in functions.items():
            timed = self.wrap(bucket, fn)
            self.wrapped[bucket].append(where)
            for module in modules:  # the function itself and every `from ... import` of it
                for name, obj in list(vars(module).items()):
                    if obj is fn:
                        setattr(module, name, timed)


def import_package() -> None:
    """Import every module of dropoutlab, so that functions imported lazily are found and wrapped too."""
    import pkgutil

    import dropoutlab

    for info in pkgutil.walk_packages(dropoutlab.__path__, "dropoutlab."):
        with contextlib.suppress(ImportError):  # an optional dependency (e.g. ray) that is not installed
            importlib.import_module(info.name)


def run(study, threads: int) -> float:
    """Run ``study`` in this process into a throw-away store; its wall seconds."""
    import torch

    from dropoutlab import Store, run_study

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "profile.db") as store:
        start = time.perf_counter()
        run_study(study, store, device="cpu", stack="auto", workers=1, progress=False)
        return time.perf_counter() - start


def op_buckets(events) -> dict[str, float]:
    """Self CPU seconds of every operator, by bucket; operators under a phase marker go to that phase."""
    phase_of: dict[int, str | None] = {}

    def marker(event) -> str | None:
        chain, found = [], None
        while event is not None:
            if id(event) in phase_of:
                found = phase_of[id(event)]
                break
            chain.append(event)
            if event.name.startswith("bucket:") and event.name[7:] in PHASES:
                found = event.name[7:]
                break
            event = event.cpu_parent
        for e in chain:
            phase_of[id(e)] = found
        return found

    def inside(event, bucket: str, ops: re.Pattern | None = None) -> bool:
        """Whether ``event`` ran inside a marker of ``bucket`` or an event whose name matches ``ops``."""
        while event is not None:
            if event.name == f"bucket:{bucket}" or (ops is not None and ops.search(event.name)):
                return True
            event = event.cpu_parent
        return False

    seconds: dict[str, float] = defaultdict(float)
    for event in events:
        if event.name.startswith("bucket:"):
            continue  # a marker's self time is Python between operators, not an operator
        phase = marker(event)
        if phase is not None:
            seconds[f"{phase} (operators)"] += event.self_cpu_time_total / 1e6
        elif PRODUCT_OPS.search(event.name):
            seconds["products"] += event.self_cpu_time_total / 1e6
        elif RANDOM_OPS.search(event.name) or inside(event, "masks"):
            seconds["masks"] += event.self_cpu_time_total / 1e6
        elif inside(event, "optimizer", OPTIMIZER_OPS):
            seconds["optimizer"] += event.self_cpu_time_total / 1e6
        else:
            seconds["other operators"] += event.self_cpu_time_total / 1e6
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="bench_mlp.py --quick's study (1 epoch, 2 seeds, 12k images)"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="intra-op threads (default 1, as a worker process)"
    )
    parser.add_argument("--src", type=Path, default=HERE.parent / "src", help="the src/ folder to profile")
    parser.add_argument("--no-profiler", action="store_true", help="phase times only (no torch.profiler run)")
    args = parser.parse_args()

    sys.path.insert(0, str(HERE))
    from bench_mlp import FULL, QUICK, write_study

    size = QUICK if args.quick else FULL
    study_path = write_study(size)
    interpreter, startup = startup_seconds(args.src)

    sys.path.insert(0, str(args.src))
    import torch

    import dropoutlab

    import_package()

    start = time.perf_counter()
    study = dropoutlab.load_study(study_path)
    read_s = time.perf_counter() - start
    timers = Timers()
    for bucket, (prefix, pattern) in PHASES.items():
        timers.install(bucket, prefix, pattern)
    timers.install("masks", *MASKS)
    timers.install("optimizer", *OPTIMIZER)

    wall = run(study, args.threads)
    phases = dict(timers.seconds)
    training = wall - sum(phases.get(b, 0.0) for b in PHASES)
    print(f"dropoutlab from {Path(dropoutlab.__file__).parent}, torch {torch.__version__}, "
          f"{args.threads} thread(s), study {study_path.name}")  # fmt: skip
    for bucket, names in timers.wrapped.items():
        print(f"  timed as {bucket}: {', '.join(sorted(set(names)))}")
    print("\n| phase | seconds | share of start-up + study |\n|---|---:|---:|")
    total = startup + read_s + wall
    rows = [
        ("start-up: Python alone", interpreter),
        ("start-up: imports of `dropoutlab run`", startup - interpreter),
        ("reading the study", read_s),
        *((b, phases.get(b, 0.0)) for b in PHASES),
        ("training (the rest of run_study)", training),
    ]
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} | {seconds / total:.1%} |")
    print(f"| total | {total:.2f} | |")
    print(f"(inside training, timed functions: masks {phases.get('masks', 0):.2f} s, "
          f"optimizer {phases.get('optimizer', 0):.2f} s)")  # fmt: skip
    if args.no_profiler:
        return

    from torch.profiler import ProfilerActivity, profile

    # One worker's share for one epoch: the first two seeds (a stack of 12 in the headline) and
    # 1 epoch. A step costs the same, and the whole study under the profiler would keep
    # millions of events in memory.
    slice_path = write_study({**size, "epochs": 1, "seeds": 2})
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        profiled_wall = run(dropoutlab.load_study(slice_path), args.threads)
    events = prof.events()
    ops = op_buckets(events)
    in_ops = sum(ops.values())
    profiled_training = profiled_wall - sum(
        sum(e.cpu_time_total for e in events if e.name == f"bucket:{b}" and not _nested(e, b)) / 1e6
        for b in PHASES
    )
    train_ops = {k: v for k, v in ops.items() if "(operators)" not in k}
    print(f"\nUnder torch.profiler, {slice_path.name} (seeds 0 and 1, 1 epoch) took {profiled_wall:.2f} s ({len(events):,} events; "
          f"{in_ops:.2f} s inside operators). Training, {profiled_training:.2f} s of it:")  # fmt: skip
    print("\n| training bucket | seconds | share of training |\n|---|---:|---:|")
    for name in ("products", "masks", "optimizer", "other operators"):
        print(f"| {name} | {train_ops.get(name, 0):.2f} | {train_ops.get(name, 0) / profiled_training:.1%} |")
    python = profiled_training - sum(train_ops.values())
    print(f"| Python and framework between operators | {python:.2f} | {python / profiled_training:.1%} |")
    print("\nOperators inside the other phases: " + ", ".join(
        f"{k} {v:.2f} s" for k, v in ops.items() if "(operators)" in k))  # fmt: skip
    print("\nTop operators by self time (the whole study):")
    top = defaultdict(float)
    for e in events:
        if not e.name.startswith("bucket:"):
            top[e.name] += e.self_cpu_time_total / 1e6
    for name, seconds in sorted(top.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {seconds:7.2f} s  {name}")


def _nested(event, bucket: str) -> bool:
    """Whether a marker event sits inside another marker of the same bucket (counted once)."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name == f"bucket:{bucket}":
            return True
        parent = parent.cpu_parent
    return False


if __name__ == "__main__":
    main()
