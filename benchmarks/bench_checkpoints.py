"""What the default time checkpoints cost: the MLP and CNN studies' stacks, saved and not.

``dropoutlab run`` saves each stack's state at the end of the first epoch after every
``--checkpoint-minutes`` (default 5) of its wall time, so that a kill loses minutes, not
stacks. What that costs is one save per interval: this script measures a save of each
workload's real stack (the first stack ``--stack auto`` plans on this machine, trained as a
worker trains it, on one thread) and the wall time of its epochs, in interleaved rounds:

* ``plain``: ``train_runs`` of the stack without checkpoints;
* ``every epoch``: the same with a save at the end of every epoch but the last (what any
  interval shorter than an epoch gives: the worst case), each save timed.

The cost at the default interval is then ``save / (60 * minutes)`` for a stack whose epochs
are shorter than the interval, and ``save / epoch`` (the "every epoch" case) otherwise.
Workloads: the MLP of ``bench_mlp.py`` (Fashion-MNIST-shaped, 24 runs: 12 members per stack)
and the CNN of ``bench_cnn.py`` (CIFAR-10-shaped; a stack of 1 on the CPU), their data
synthesized and cut (``MLP_SIZE``, ``CNN_SIZE``): a save's cost does not depend on the data,
and shorter epochs only make the "every epoch" cost an upper bound.

Commands (from the repository root)::

    python benchmarks/bench_checkpoints.py --quick          # smoke test, ~1 min
    python benchmarks/bench_checkpoints.py --repeat 2        # the figures in RESULTS.md, ~10 min
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import bench_cnn  # noqa: E402
import bench_mlp  # noqa: E402
from common import load_average, machine  # noqa: E402

from dropoutlab.data import load_dataset  # noqa: E402
from dropoutlab.data.prepare import prepare_data  # noqa: E402
from dropoutlab.study import expand_runs, load_study  # noqa: E402
from dropoutlab.train import plan_stacks, train_runs  # noqa: E402
from dropoutlab.train.checkpoints import DEFAULT_MINUTES, Checkpoint  # noqa: E402

CPU = torch.device("cpu")
MLP_SIZE = {**bench_mlp.FULL, "epochs": 3, "n_train": 24_000, "n_test": 4_000}  # 24 runs: stacks of 12
CNN_SIZE = {**bench_cnn.FULL, "epochs": 3, "n_train": 2_000, "n_test": 500}


class TimedCheckpoint(Checkpoint):
    """A checkpoint that records how long each save took (seconds) and the file's size (bytes)."""

    def save(self, path, state, runs=None, engine=""):
        start = time.perf_counter()
        super().save(path, state, runs, engine)
        self.__dict__.setdefault("saves", []).append((time.perf_counter() - start, path.stat().st_size))


def stack_of(study_path: Path):
    """The first stack ``--stack auto`` plans for the study (with 2 workers), and its data."""
    runs = expand_runs(load_study(study_path))
    s = runs[0].settings
    data = prepare_data(load_dataset(s.dataset), s.validation, s.split_seed, s.normalize, CPU)
    return plan_stacks(runs, data, CPU, "auto", workers=2)[0], data


def measure(name: str, stack, data, repeat: int) -> dict:
    """Interleaved rounds of the stack trained plain and saved after every epoch."""
    engine = "stacked" if len(stack) > 1 else "single"
    plain, saved, saves = [], [], []
    for _ in range(repeat):
        start = time.perf_counter()
        train_runs(stack, data, CPU, engine)
        plain.append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as folder:
            checkpoint = TimedCheckpoint(Path(folder), every=1)
            start = time.perf_counter()
            train_runs(stack, data, CPU, engine, checkpoint=checkpoint)
            saved.append(time.perf_counter() - start)
            saves += checkpoint.__dict__.get("saves", [])
    epochs = stack[0].settings.epochs
    save_s = statistics.median(s for s, _ in saves)
    epoch_s = statistics.median(plain) / epochs
    return {
        "name": name,
        "members": len(stack),
        "epochs": epochs,
        "epoch_s": epoch_s,
        "save_s": save_s,
        "mb": saves[0][1] / 1e6,
        "plain": plain,
        "saved": saved,
        "per_epoch_cost": save_s / epoch_s,
        "default_cost": save_s / max(60 * DEFAULT_MINUTES, epoch_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: small data, 1 round")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds (default 3)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as a worker process trains its stacks
    # 3 epochs (2 saves); the data cut to fit a shared 2-core machine: a save does not depend on it
    mlp_size = {**bench_mlp.QUICK, "epochs": 3} if args.quick else MLP_SIZE
    cnn_size = {**bench_cnn.QUICK, "epochs": 3} if args.quick else CNN_SIZE
    workloads = [
        ("MLP (bench_mlp)", bench_mlp.write_study(mlp_size)),
        ("CNN (bench_cnn)", bench_cnn.write_study(cnn_size, 6, False)),
    ]
    repeat = 1 if args.quick else args.repeat
    print(f"machine: {machine()}; load {load_average()}; {repeat} rounds; default {DEFAULT_MINUTES:g} min")
    print("| workload | members | epoch | save (file) | plain, 3 epochs | saved after epochs 1, 2 "
          "| cost, a save each epoch | cost at the default |")  # fmt: skip
    print("|---|---:|---:|---:|---|---|---:|---:|")
    for name, path in workloads:
        stack, data = stack_of(path)
        r = measure(name, stack, data, repeat)
        times = lambda xs: ", ".join(f"{x:.1f} s" for x in xs)  # noqa: E731
        print(
            f"| {r['name']} | {r['members']} | {r['epoch_s']:.2f} s | {r['save_s'] * 1000:.0f} ms "
            f"({r['mb']:.1f} MB) | {times(r['plain'])} | {times(r['saved'])} | {r['per_epoch_cost']:.2%} "
            f"| {r['default_cost']:.3%} |"
        )


if __name__ == "__main__":
    main()
