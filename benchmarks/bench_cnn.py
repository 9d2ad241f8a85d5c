"""The CIFAR-10 dropout-rate sweep's CNN, timed: 3 and 6 runs, eval_train on and off, old code and new.

Workload: the CNN of ``examples/cifar10_dropout_sweep.toml`` (the ``cnn`` preset: two 3x3
convolutions of 32 filters, dense 300, dense 300, 10 classes; ReLU; Glorot-uniform
weights), SGD lr 0.01, batch 32, pixels / 255, no validation split (as in the example), on
10,000 + 2,000 CIFAR-10-shaped images (32x32x3 uint8, *synthesized*: no download is
possible on the benchmark machine, see ``common.synthetic_images``), 2 epochs. Two study
sizes, the two cases a user meets on a 2-core CPU:

* 3 runs (conv dropout 0, 0.05, 0.1; seed 0): an odd number of runs for two worker
  processes, so the planner must keep both cores busy to the end;
* 6 runs (conv dropout 0, 0.05, 0.1, 0.2, 0.5, 0.8; seed 0);

each with ``eval_train = true`` (the default: the training set is evaluated every epoch)
and ``false``. Every contender is one whole process, ``dropoutlab run STUDY --stack auto``
(default ``--workers``), timed from the outside from its start to its exit, the matmul peak
measured right before it; with ``--old-src`` the same studies also run on an older checkout,
interleaved, so old and new are compared on the same machine in the same run.

The Keras reference (the example's original Keras code, ``KERAS_BACKEND=torch``) runs when
``--keras-python`` names a Python that has ``keras`` (``python -m venv --system-site-packages
/tmp/kerasenv && /tmp/kerasenv/bin/pip install keras``; not a dropoutlab dependency); it has
no evaluation of the training set, so it sits beside both.

GFLOP/s and the fraction of the matmul peak count the same model FLOPs for ``eval_train``
on and off (training and test passes; FlopCounterMode, matrix products and convolutions),
so the cost of evaluating the training set shows as a lower rate.

Commands (from the repository root; ``git worktree add /tmp/base <old commit>`` first for
the old code)::

    python benchmarks/bench_cnn.py --quick                                  # smoke test, ~2 min
    python benchmarks/bench_cnn.py --old-src /tmp/base/src --json cnn.json  # ~8 min a round on 2 cores
    python benchmarks/bench_cnn.py --old-src /tmp/base/src --repeat 2 --keras-python /tmp/kerasenv/bin/python
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from torch import nn

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    CACHE,
    Contender,
    dropoutlab_cli,
    flops_per_sample,
    load_average,
    machine,
    parse_common,
    peaks_line,
    report,
    rounds_table,
    run_contenders,
    synthetic_images,
    write_json,
)

RATES = [0.0, 0.05, 0.1, 0.2, 0.5, 0.8]
FULL = {"epochs": 2, "n_train": 10_000, "n_test": 2_000}
QUICK = {"epochs": 1, "n_train": 1_000, "n_test": 500}
WORKLOADS = [(3, True), (3, False), (6, True), (6, False)]  # (runs, eval_train)

STUDY = """\
# Written by benchmarks/bench_cnn.py: the CIFAR-10 dropout-rate sweep's CNN, scaled down.
name = "bench-cnn-{runs}-runs"
dataset = "npz:{data}"
model = "cnn"
epochs = {epochs}
batch_size = 32
seeds = [0]
init = "keras"
normalize = "unit"
validation = 0.0
eval_train = {eval_train}

[optimizer]
name = "sgd"
lr = 0.01

[grid]
"dropout.conv" = {rates}
"""


def write_study(size: dict, runs: int, eval_train: bool) -> Path:
    """The study file of ``runs`` runs (and its synthetic data), for sizes ``size``."""
    data = synthetic_images(
        CACHE / f"cifar_synth_{size['n_train']}_{size['n_test']}.npz",
        size["n_train"],
        size["n_test"],
        (32, 32, 3),
    )
    path = (
        CACHE
        / f"bench_cnn_{runs}r_{'eval' if eval_train else 'noeval'}_{size['epochs']}e_{size['n_train']}.toml"
    )
    path.write_text(STUDY.format(runs=runs, data=data, epochs=size["epochs"], rates=RATES[:runs],
                                 eval_train=str(eval_train).lower()))  # fmt: skip
    return path


def cnn() -> nn.Sequential:
    """The ``cnn`` preset written in plain PyTorch, for counting its FLOPs (dropout adds none)."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(), nn.Flatten(),
        nn.Linear(32 * 28 * 28, 300), nn.ReLU(), nn.Linear(300, 300), nn.ReLU(), nn.Linear(300, 10),
    )  # fmt: skip


# --- contender: the example's original Keras code -----------------------------------------


def part_keras(study_path: Path) -> dict:
    import keras
    from keras import layers

    start = time.perf_counter()
    with open(study_path, "rb") as f:
        study = tomllib.load(f)
    with np.load(study["dataset"].removeprefix("npz:")) as f:
        x_train, y_train, x_test, y_test = f["x_train"], f["y_train"], f["x_test"], f["y_test"]
    x_train, x_test = x_train / 255, x_test / 255
    accs = []
    for rate in study["grid"]["dropout.conv"]:
        for seed in study["seeds"]:
            keras.utils.set_random_seed(seed)
            model = keras.Sequential()
            model.add(layers.Conv2D(32, activation="relu", kernel_size=[3, 3], input_shape=[32, 32, 3]))
            if rate:
                model.add(layers.Dropout(rate=rate))
            model.add(layers.Conv2D(32, activation="relu", kernel_size=[3, 3]))
            model.add(layers.Flatten())
            model.add(layers.Dense(units=300, activation="relu"))
            model.add(layers.Dense(units=300, activation="relu"))
            model.add(layers.Dense(units=10, activation="softmax"))
            model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            model.fit(x_train, y_train, epochs=study["epochs"], batch_size=study["batch_size"], verbose=0)
            accs.append(model.evaluate(x_test, y_test, verbose=0)[1])
    return {
        "in_process_s": time.perf_counter() - start,
        "runs": len(accs),
        "mean_test_acc": float(np.mean(accs)),
    }


def has_keras(python: str | None) -> bool:
    if python is None:
        return False
    return subprocess.run([python, "-c", "import keras"], capture_output=True).returncode == 0


# --- the contenders, timed ----------------------------------------------------------------


def contenders(args, size: dict, run_flops: float) -> list[Contender]:
    store = CACHE / "bench_cnn.db"
    codes = [("new", "new code", args.new_src)] + (
        [("old", "old code", args.old_src)] if args.old_src else []
    )
    every = []
    for runs, eval_train in WORKLOADS:
        study = write_study(size, runs, eval_train)
        for code, name, src in codes:
            argv, env = dropoutlab_cli(src, study, store, "--stack", "auto")
            key = f"{code}-{runs}-{'on' if eval_train else 'off'}"
            label = f"{name}, {runs} runs, eval_train {'on' if eval_train else 'off'}"
            every.append(Contender(key, label, argv, run_flops, size["epochs"], env, store))
    if has_keras(args.keras_python):
        for runs in (3, 6):
            argv = (
                args.keras_python,
                __file__,
                "--part",
                "keras",
                "--study",
                str(write_study(size, runs, False)),
            )
            every.append(Contender(f"keras-{runs}", f"Keras 3 (torch backend), {runs} runs", argv, run_flops,
                                   size["epochs"], (("KERAS_BACKEND", "torch"),)))  # fmt: skip
    return [c for c in every if c.key not in args.skip]


def table(results: dict[str, dict]) -> str:
    """Old against new per workload, with the new code's rates and the Keras reference where run."""
    lines = ["| workload | new code | old code | new vs old | model-epochs/s (new) | GFLOP/s (new) | "
             "of matmul peak (new) | peak memory (new) | Keras | new vs Keras |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for runs, eval_train in WORKLOADS:
        tag = f"{runs}-{'on' if eval_train else 'off'}"
        new, old, keras = results.get(f"new-{tag}"), results.get(f"old-{tag}"), results.get(f"keras-{runs}")
        if new is None:
            continue
        lines.append(
            f"| {runs} runs, eval_train {'on' if eval_train else 'off'} | {new['wall_s']:.1f} s | "
            + (f"{old['wall_s']:.1f} s | {old['wall_s'] / new['wall_s']:.2f}x | " if old else "- | - | ")
            + f"{new['me_per_s']:.3f} | {new['gflops']:.1f} | {new['of_peak']:.0%} | {new['peak_mib']:.0f} MiB | "
            + (f"{keras['wall_s']:.1f} s | {keras['wall_s'] / new['wall_s']:.2f}x |" if keras else "- | - |")
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 epoch, 1,000 + 500 images")
    parser.add_argument("--keras-python", help="a Python with keras installed, for the Keras reference")
    parser.add_argument("--part", choices=["keras"], help=argparse.SUPPRESS)
    parser.add_argument("--study", type=Path, help=argparse.SUPPRESS)
    parse_common(parser, "new|old-3|6-on|off (e.g. old-3-on), keras-3, keras-6")
    args = parser.parse_args()
    if args.part == "keras":
        return report(part_keras(args.study))

    size = QUICK if args.quick else FULL
    train_flops, eval_flops = flops_per_sample(cnn(), (3, 32, 32), batch=32)
    run_flops = size["epochs"] * size["n_train"] * train_flops + size["n_test"] * eval_flops
    load_before = load_average()
    results = run_contenders(contenders(args, size, run_flops), args.repeat)

    print(f"\nper run: {size['n_train']} training images x {size['epochs']} epoch(s), {size['n_test']} test "
          f"images = {run_flops / 1e9:.0f} GFLOP (eval_train's pass over the training set not counted)")  # fmt: skip
    print(f"machine: {machine()}; load average before: {load_before}")
    print(peaks_line(results))
    print(table(results))
    print("\nEvery round (wall time, fraction of the matmul peak measured just before):")
    print(rounds_table(results))
    write_json(args.json, results, size=size, run_flops=run_flops)


if __name__ == "__main__":
    main()
