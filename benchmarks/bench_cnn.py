"""Seed 000's study, timed: dropoutlab against seed 000's own Keras code, on the CPU.

Workload: seed 000's CNN (two 3x3 convolutions of 32 filters, dense 300, dense 300, 10
classes; ReLU; Glorot-uniform weights), SGD lr 0.01, batch 32, pixels / 255, on
CIFAR-10-shaped data: 32x32x3 uint8 images and 10 labels, *synthesized* (no download is
possible on the benchmark machine; see ``common.synthetic_images``). Seed 000's sweep of the
dropout rate between the two convolutions, 0, 0.05, 0.1, 0.2, 0.5, 0.8, times 3 seeds =
18 runs.

Scaled down for the CPU (the full study, 50,000 images x 10 epochs x 18 runs, is about
9 hours of a 2-core CPU): by default 6,000 training images of which 1,000 are held out for
validation, 1,000 test images, 1 epoch. Every contender does exactly this work per run: a
training pass, a validation pass, then one pass over the test set.

* ``reference``: seed 000's code: ``keras.Sequential`` with ``Conv2D``/``Dropout``/``Dense``,
  ``compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])``,
  ``fit(X / 255, y, validation_data=...)``, then ``evaluate`` on the test set. It runs with
  ``KERAS_BACKEND=torch`` in a Python that has ``keras`` (``pip install keras`` there; it is
  not a dropoutlab dependency): ``--keras-python PATH``.
* ``dropoutlab --stack off`` / ``--stack auto`` / ``--stack 6``: ``run_study``. On the CPU,
  ``auto`` trains this CNN one run at a time (its 7.5 M weights per member overflow the
  caches; see ``dropoutlab.train.stacked.plan_stacks``) through the stacked loop
  (``train_stack`` with one member), while ``--stack off`` is the reference loop
  (``train_run``). ``--stack 6`` (off by default) shows the cost of stacking this CNN on a
  CPU anyway.

Usage: ``python benchmarks/bench_cnn.py --keras-python /path/to/venv/bin/python [--repeat 1] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    CACHE,
    add_run_options,
    load_average,
    machine,
    peaks_line,
    report,
    run_contenders,
    synthetic_images,
    table,
    time_study,
)

RATES = [0.0, 0.05, 0.1, 0.2, 0.5, 0.8]
SEEDS = [0, 1, 2]


def data_path(args) -> Path:
    name = f"cifar_synth_{args.train_images}_{args.test_images}.npz"
    return synthetic_images(CACHE / name, args.train_images, args.test_images, (32, 32, 3))


def validation(args) -> float:
    return args.val_images / args.train_images


def part_keras(args) -> dict:
    import keras
    from keras import layers

    from dropoutlab.data.prepare import split_indices

    start = time.perf_counter()
    with np.load(data_path(args)) as f:
        x_train, y_train, x_test, y_test = f["x_train"], f["y_train"], f["x_test"], f["y_test"]
    x_train, x_test = x_train / 255, x_test / 255  # seed 000: X_train = X_train / 255
    fit_idx, val_idx = (i.numpy() for i in split_indices(len(y_train), validation(args), 0))
    accs = []
    for rate in RATES:
        for seed in SEEDS:
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
            model.fit(x_train[fit_idx], y_train[fit_idx], epochs=args.epochs, verbose=0,
                      validation_data=(x_train[val_idx], y_train[val_idx]))  # fmt: skip
            accs.append(model.evaluate(x_test, y_test, verbose=0)[1])
    return {"wall_s": time.perf_counter() - start, "runs": len(accs), "mean_test_acc": float(np.mean(accs))}


def part_dropoutlab(args) -> dict:

    from dropoutlab.study.spec import parse_study

    spec = parse_study({
        "name": "bench-seed000",
        "dataset": f"npz:{data_path(args)}",
        "model": "cnn",
        "epochs": args.epochs,
        "batch_size": 32,
        "init": "keras",
        "normalize": "unit",
        "validation": validation(args),
        "eval_train": False,
        "seeds": SEEDS,
        "optimizer": {"name": "sgd", "lr": 0.01},
        "grid": {"dropout.conv": RATES},
    })  # fmt: skip
    return time_study(spec, args.device, args.stack, args.workers)


def main() -> None:
    parser = argparse.ArgumentParser(description="seed 000's study: dropoutlab vs seed 000's Keras code")
    parser.add_argument("--keras-python", default=sys.executable, help="a Python with keras installed")
    parser.add_argument("--train-images", type=int, default=6000)
    parser.add_argument("--val-images", type=int, default=1000)
    parser.add_argument("--test-images", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip", nargs="*", default=["6"],
                        help="contenders to leave out: reference, off, auto1, auto, 6 (default: 6)")  # fmt: skip
    parser.add_argument("--json", type=Path)
    parser.add_argument("--part", choices=["keras", "dropoutlab"], help=argparse.SUPPRESS)
    add_run_options(parser)
    args = parser.parse_args()
    if args.part == "keras":
        return report(part_keras(args))
    if args.part == "dropoutlab":
        return report(part_dropoutlab(args))

    from dropoutlab.models import PRESETS, build_model

    data_path(args)
    sizes = ["--train-images", str(args.train_images), "--val-images", str(args.val_images),
             "--test-images", str(args.test_images), "--epochs", str(args.epochs), "--device", args.device]  # fmt: skip
    loads = [load_average()]
    from common import flops_per_sample

    model = build_model(PRESETS["cnn"], {"conv": 0.1}, (3, 32, 32), 10, init="keras")
    train_flops, eval_flops = flops_per_sample(model, (3, 32, 32), batch=32)
    n_fit = args.train_images - round(args.train_images * validation(args))
    n_val = args.train_images - n_fit
    run_flops = args.epochs * (n_fit * train_flops + n_val * eval_flops) + args.test_images * eval_flops
    contenders = {
        "reference": ("seed 000 reference (Keras 3, torch backend)", ["--part", "keras"], args.keras_python),
        "off": (
            "dropoutlab --stack off --workers 1",
            ["--part", "dropoutlab", "--stack", "off", "--workers", "1"],
            None,
        ),
        "auto1": (
            "dropoutlab --stack auto --workers 1",
            ["--part", "dropoutlab", "--stack", "auto", "--workers", "1"],
            None,
        ),
        "auto": (
            "dropoutlab --stack auto (--workers auto)",
            ["--part", "dropoutlab", "--stack", "auto"],
            None,
        ),
        "6": (
            "dropoutlab --stack 6 --workers 1",
            ["--part", "dropoutlab", "--stack", "6", "--workers", "1"],
            None,
        ),
    }
    results = run_contenders(__file__, contenders, args.skip, sizes, "CNN seed 000", args.epochs, run_flops,
                             loads, env={"KERAS_BACKEND": "torch"}, repeat=args.repeat)  # fmt: skip
    print(f"\nmachine: {machine()}; load averages (1 min) during the runs: {', '.join(loads)}")
    print(f"work per run: {n_fit} training + {n_val} validation images x {args.epochs} epoch(s), "
          f"{args.test_images} test images = {run_flops / 1e9:.0f} GFLOP")  # fmt: skip
    print(peaks_line(results))
    print(table(list(results.values())))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
