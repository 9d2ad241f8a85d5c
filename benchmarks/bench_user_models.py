"""A user's own nn.Modules, timed: runs stacked through torch.func against one at a time and a plain loop.

Workload (issue 27, "Training it fast"): two models a user writes as ``nn.Module`` classes
(below, :class:`UserMLP` and :class:`UserCNN`), named in a study file by their factories
(``model = "bench_user_models:make_mlp"``), on Fashion-MNIST-shaped images (*synthesized*:
no download is possible on the benchmark machine, see ``common.synthetic_images``):

* the MLP 784-256-128-10 (ReLU), dropout after each hidden layer (slots ``drop1``, ``drop2``);
  a grid over ``dropout.drop1`` of 0, 0.2, 0.5 (``drop2`` = 0.3) times the seeds;
* the CNN conv(8, 3x3)-ReLU-maxpool-``Dropout2d``-conv(16, 3x3)-ReLU-maxpool-dense(64)-ReLU-
  ``Dropout``-dense(10) (slots ``drop_conv`` = 0.1, ``drop_fc``); a grid over ``dropout.drop_fc``
  of 0, 0.25, 0.5 times the seeds.

Batch 64, Adam lr 3e-3, ``eval_train = false``: per epoch a training pass (dropout on) and a
validation pass, then the test set. Each contender is one whole process, timed from the
outside from its start to its exit (start-up, imports, reading the study, preparing the
data), the matmul peak measured right before it (``common.run_contenders``):

* ``MODEL-auto``: ``dropoutlab run STUDY --stack auto`` (default ``--workers``): the runs of
  one configuration shape stacked by the functional engine (``train/functional.py``);
* ``MODEL-off``: ``dropoutlab run STUDY --stack off``: the same code one run at a time;
* ``MODEL-plain``: the loop a user writes, tensors in memory: ``randperm`` slices, the same
  factory's module with its rates set, ``torch.optim.Adam``, validation each epoch and the
  test set at the end, runs one after another (:func:`part_plain`), with PyTorch's default
  threads (one per core);
* ``MODEL-plain1``: the same loop on one thread (``OMP_NUM_THREADS=1``), as each of
  dropoutlab's worker processes trains: on a shared machine two threads per process can
  cost more than they give.

Commands (from the repository root)::

    python benchmarks/bench_user_models.py --quick                 # smoke test, ~3 min
    python benchmarks/bench_user_models.py --json user_models.json  # the measurement
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import (  # noqa: E402
    CACHE,
    Contender,
    dropoutlab_cli,
    evaluate,
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

# sized for 2 shared cores: the whole measurement (8 processes) takes ~10 min there
FULL = {"epochs": 2, "seeds": 2, "n_train": 4_000, "n_test": 1_000}
QUICK = {"epochs": 1, "seeds": 2, "n_train": 1_500, "n_test": 500}
VALIDATION = 0.1667


# --- the user's models: plain nn.Modules, as a user writes them ---------------------------------


class UserMLP(nn.Module):
    """784-256-128-10 with ReLU and dropout after each hidden layer."""

    def __init__(self, width: int = 256) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, width)
        self.drop1 = nn.Dropout(0.5)
        self.fc2 = nn.Linear(width, width // 2)
        self.drop2 = nn.Dropout(0.5)
        self.out = nn.Linear(width // 2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop1(F.relu(self.fc1(x.flatten(1))))
        return self.out(self.drop2(F.relu(self.fc2(x))))


class UserCNN(nn.Module):
    """Two convolutions with pooling, channel dropout between them, a dense layer with dropout."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)
        self.drop_conv = nn.Dropout2d(0.1)
        self.conv2 = nn.Conv2d(channels, 2 * channels, 3, padding=1)
        self.fc = nn.Linear(2 * channels * 7 * 7, 64)
        self.drop_fc = nn.Dropout(0.5)
        self.out = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop_conv(F.max_pool2d(F.relu(self.conv1(x)), 2))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2).flatten(1)
        return self.out(self.drop_fc(F.relu(self.fc(x))))


def make_mlp(width: int = 256) -> nn.Module:
    """The MLP factory a study file names (``bench_user_models:make_mlp``)."""
    return UserMLP(width)


def make_cnn(channels: int = 8) -> nn.Module:
    """The CNN factory a study file names (``bench_user_models:make_cnn``)."""
    return UserCNN(channels)


MODELS = {
    "mlp": {"factory": make_mlp, "fixed": {"drop2": 0.3}, "swept": "drop1", "rates": [0.0, 0.2, 0.5]},
    "cnn": {"factory": make_cnn, "fixed": {"drop_conv": 0.1}, "swept": "drop_fc", "rates": [0.0, 0.25, 0.5]},
}

STUDY = """\
# Written by benchmarks/bench_user_models.py: a user's {name} as an nn.Module, a grid over one slot.
name = "bench-user-{name}"
dataset = "npz:{data}"
model = "bench_user_models:make_{name}"
epochs = {epochs}
batch_size = 64
seeds = {seeds}
normalize = "symmetric"
validation = {validation}
eval_train = false

[dropout]
{fixed}

[optimizer]
name = "adam"
lr = 0.003

[grid]
"dropout.{swept}" = {rates}
"""


def write_study(name: str, size: dict) -> Path:
    """The study file of model ``name`` that every contender reads (and its synthetic data)."""
    data = synthetic_images(
        CACHE / f"fashion_synth_{size['n_train']}_{size['n_test']}.npz",
        size["n_train"],
        size["n_test"],
        (28, 28),
    )
    spec = MODELS[name]
    path = CACHE / f"bench_user_{name}_{size['epochs']}e_{size['seeds']}s_{size['n_train']}.toml"
    fixed = "\n".join(f"{slot} = {rate}" for slot, rate in spec["fixed"].items())
    path.write_text(STUDY.format(name=name, data=data, epochs=size["epochs"], seeds=list(range(size["seeds"])),
                                 validation=VALIDATION, fixed=fixed, swept=spec["swept"], rates=spec["rates"]))  # fmt: skip
    return path


# --- contender: the plain PyTorch loop, tensors in memory -----------------------------------------


def part_plain(study_path: Path) -> dict:
    """Every run of the study, one after another, in the loop a user writes."""
    start = time.perf_counter()
    with open(study_path, "rb") as f:
        study = tomllib.load(f)
    name = study["model"].split("make_")[1]
    spec = MODELS[name]
    with np.load(study["dataset"].removeprefix("npz:")) as f:
        x, y = torch.from_numpy(f["x_train"]), torch.from_numpy(f["y_train"])
        x_test, y_test = torch.from_numpy(f["x_test"]), torch.from_numpy(f["y_test"])

    def normalise(images: torch.Tensor) -> torch.Tensor:
        return images.unsqueeze(1).float().div_(127.5).sub_(1)

    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    n_val = round(len(y) * study["validation"])
    fit, val = order[n_val:], order[:n_val]
    (xf, yf), (xv, yv), (xt, yt) = (
        (normalise(x[fit]), y[fit]),
        (normalise(x[val]), y[val]),
        (normalise(x_test), y_test),
    )
    batch, accs = study["batch_size"], []
    for rate in study["grid"][f"dropout.{spec['swept']}"]:
        for seed in study["seeds"]:
            torch.manual_seed(seed)
            model = spec["factory"]()
            for slot, p in {**study["dropout"], spec["swept"]: rate}.items():
                model.get_submodule(slot).p = p
            optimizer = torch.optim.Adam(model.parameters(), lr=study["optimizer"]["lr"])
            batches = torch.Generator().manual_seed(seed)
            for _epoch in range(study["epochs"]):
                model.train()
                perm = torch.randperm(len(yf), generator=batches)
                for i in range(0, len(yf), batch):
                    idx = perm[i : i + batch]
                    loss = F.cross_entropy(model(xf[idx]), yf[idx])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                evaluate(model, xv, yv)
            accs.append(evaluate(model, xt, yt)[1])
    return {
        "in_process_s": time.perf_counter() - start,
        "runs": len(accs),
        "mean_test_acc": float(np.mean(accs)),
    }


# --- the contenders and the table ----------------------------------------------------------------


def contenders(args, studies: dict[str, Path], flops: dict[str, float], epochs: int) -> list[Contender]:
    every = []
    for name, study in studies.items():
        store = CACHE / f"bench_user_{name}.db"
        for stack in ("auto", "off"):
            argv, _ = dropoutlab_cli(args.new_src, study, store, "--stack", stack)
            env = (("PYTHONPATH", f"{args.new_src}:{HERE}"),)  # the factories live in this file
            label = f"{name}: dropoutlab run --stack {stack}"
            every.append(Contender(f"{name}-{stack}", label, argv, flops[name], epochs, env, store))
        argv = (sys.executable, __file__, "--part", "plain", "--study", str(study))
        every.append(Contender(f"{name}-plain", f"{name}: plain PyTorch loop", argv, flops[name], epochs))
        label = f"{name}: plain PyTorch loop, 1 thread"
        every.append(
            Contender(f"{name}-plain1", label, argv, flops[name], epochs, (("OMP_NUM_THREADS", "1"),))
        )
    return [c for c in every if c.key not in args.skip]


def table(results: dict[str, dict]) -> str:
    """Speeds, the ratio to the same model's plain loop, peak fraction, memory, accuracy."""
    lines = ["| contender | wall | model-epochs/s | vs plain loop | GFLOP/s | of matmul peak | peak memory | "
             "mean test acc |", "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for key, out in results.items():
        plain = results.get(key.split("-")[0] + "-plain")  # the loop with default threads
        ratio = f"{out['me_per_s'] / plain['me_per_s']:.2f}x" if plain else "-"
        lines.append(f"| {out['label']} | {out['wall_s']:.1f} s | {out['me_per_s']:.3f} | {ratio} | "
                     f"{out['gflops']:.1f} | {out['of_peak']:.0%} | {out['peak_mib']:.0f} MiB | "
                     f"{out['mean_test_acc']:.3f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 1 epoch, 2 seeds, 1,500 + 500 images"
    )
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--part", choices=["plain"], help=argparse.SUPPRESS)
    parser.add_argument("--study", type=Path, help=argparse.SUPPRESS)
    parse_common(parser, "mlp-auto, mlp-off, mlp-plain, mlp-plain1, cnn-auto, cnn-off, cnn-plain, cnn-plain1")
    args = parser.parse_args()
    if args.part == "plain":
        return report(part_plain(args.study))

    size = QUICK if args.quick else FULL
    studies = {name: write_study(name, size) for name in args.models}
    n_val = round(size["n_train"] * VALIDATION)
    n_fit = size["n_train"] - n_val
    flops, lines = {}, []
    for name in args.models:
        train_flops, eval_flops = flops_per_sample(MODELS[name]["factory"](), (1, 28, 28))
        flops[name] = (
            size["epochs"] * (n_fit * train_flops + n_val * eval_flops) + size["n_test"] * eval_flops
        )
        lines.append(f"{name}: {flops[name] / 1e9:.1f} GFLOP per run (training step {train_flops:.0f} FLOP/sample, "
                     f"evaluation {eval_flops:.0f})")  # fmt: skip
    load_before = load_average()
    results = run_contenders(contenders(args, studies, flops, size["epochs"]), args.repeat)
    runs = 3 * size["seeds"]
    print(f"\n{runs} runs per model x {size['epochs']} epochs: {n_fit} training + {n_val} validation images "
          f"per epoch, {size['n_test']} test images")  # fmt: skip
    print("\n".join(lines))
    print(f"machine: {machine()}; load average before: {load_before}")
    print(peaks_line(results))
    print(table(results))
    print("\nEvery round (wall time, fraction of the matmul peak measured just before):")
    print(rounds_table(results))
    write_json(args.json, results, size=size, run_flops=flops)


if __name__ == "__main__":
    main()
