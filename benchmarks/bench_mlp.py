"""Seed 001's study, timed: dropoutlab (stacked and one by one) against seed 001's own way.

Workload: seed 001's MLP (784-120-60-10, ReLU) on Fashion-MNIST-shaped data: 60,000 training
and 10,000 test images of 28x28 uint8 pixels and 10 labels, *synthesized* (no download is
possible on the benchmark machine; see ``common.synthetic_images``), split 49,998 / 10,002
into training and validation as ``validation = 0.1667`` does, normalised to [-1, 1],
Adam lr 1e-3, batch 64. A grid of 6 dropout rates after the first hidden layer times 4
seeds = 24 runs of 2 epochs (``--all-slots`` adds seed 001's input dropout 0.2 and 0.5
after the second hidden layer to every run).

Each run does the same work in every contender: per epoch a training pass (dropout on)
and a validation pass (eval mode), then one pass over the test set; ``eval_train = false``.

* ``reference``: seed 001's code: a ``torch.utils.data.Dataset`` that converts one sample at
  a time exactly as ``torchvision.datasets.FashionMNIST`` with ``ToTensor()`` and
  ``Normalize((0.5,), (0.5,))`` does (PIL image, numpy copy, permute, divide, normalise;
  torchvision itself is not installed here), ``DataLoader(batch_size=64, shuffle=True)``,
  seed 001's ``train()`` loop with Adam and a validation ``DataLoader`` each epoch, then
  the test set. Ratios are to this one.
* ``tensor``: the same, converting each sample with tensor operations only (no PIL): a
  stricter baseline, 2.5x cheaper per sample, to show how much of the gap is PIL.
* ``dropoutlab --stack off``: ``run_study`` one run at a time (``train_run``).
* ``dropoutlab --stack auto``: ``run_study`` with stacked training.

Each contender runs in its own process (clean peak memory), one after the other, on the
same machine, with the matmul peak measured right before it; timings run from reading the
data file to the last result. FLOPs are counted with PyTorch's FlopCounterMode on the
model (matrix products only). ``--repeat N`` times every contender N times, interleaved,
and reports the median (see ``common.run_contenders``).

Usage: ``python benchmarks/bench_mlp.py [--epochs 2] [--seeds 4] [--repeat 1] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    CACHE,
    add_run_options,
    flops_per_sample,
    load_average,
    machine,
    peaks_line,
    report,
    run_contenders,
    synthetic_images,
    table,
    time_study,
)

RATES = [0.0, 0.1, 0.2, 0.3, 0.5, 0.7]
N_TRAIN, N_TEST, VALIDATION = 60_000, 10_000, 0.1667


def data_path() -> Path:
    return synthetic_images(CACHE / "fashion_synth.npz", N_TRAIN, N_TEST, (28, 28))


def slot_rates(rate: float, all_slots: bool) -> dict[str, float]:
    return {"input": 0.2 if all_slots else 0.0, "hidden1": rate, "hidden2": 0.5 if all_slots else 0.0}


# --- seed 001, as written there (torchvision replaced by its exact per-sample steps) -------


class FashionMNISTLike(torch.utils.data.Dataset):
    """``torchvision.datasets.FashionMNIST`` + ``ToTensor()`` + ``Normalize((0.5,), (0.5,))``, one sample at a time."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.data = torch.from_numpy(images)  # uint8 (N, 28, 28), as torchvision keeps it
        self.targets = torch.from_numpy(labels)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        from PIL import Image

        img, target = self.data[index], int(self.targets[index])
        img = Image.fromarray(img.numpy())  # torchvision: Image.fromarray(img.numpy(), mode="L")
        # ToTensor (transforms.functional.to_tensor for a PIL image)
        tensor = torch.from_numpy(np.array(img, np.uint8, copy=True))
        tensor = tensor.view(img.size[1], img.size[0], 1).permute((2, 0, 1)).contiguous()
        tensor = tensor.to(dtype=torch.get_default_dtype()).div(255)
        # Normalize((0.5,), (0.5,)) (transforms.functional.normalize, not in place)
        tensor = tensor.clone()
        mean = torch.as_tensor((0.5,), dtype=tensor.dtype)
        std = torch.as_tensor((0.5,), dtype=tensor.dtype)
        if (std == 0).any():
            raise ValueError("std evaluated to zero")
        tensor.sub_(mean.view(-1, 1, 1)).div_(std.view(-1, 1, 1))
        return tensor, target


class TensorOnly(FashionMNISTLike):
    """The same samples converted without PIL: a stricter (faster) per-sample reference."""

    def __getitem__(self, index: int):
        tensor = self.data[index].unsqueeze(0).to(dtype=torch.get_default_dtype()).div(255)
        return (tensor - 0.5) / 0.5, int(self.targets[index])


class RandomDropoutModel(nn.Module):
    """Seed 001's ``RandomDropoutModel``, with its three rates as arguments."""

    def __init__(self, p1: float, p2: float, p3: float) -> None:
        super().__init__()
        self.dropout1 = nn.Dropout(p=p1)
        self.fc1 = nn.Linear(784, 120)
        self.dropout2 = nn.Dropout(p=p2)
        self.fc2 = nn.Linear(120, 60)
        self.dropout3 = nn.Dropout(p=p3)
        self.fc3 = nn.Linear(60, 10)

    def forward(self, x):
        x = x.view(-1, 784)
        x = self.dropout1(x)
        x = nn.functional.relu(self.fc1(x))
        x = self.dropout2(x)
        x = nn.functional.relu(self.fc2(x))
        x = self.dropout3(x)
        return self.fc3(x)


def seed001_train(model, trainloader, validloader, epochs=5, lr=0.001):
    """Seed 001's ``train()``, without its prints."""
    optimizer = torch.optim.Adam(model.parameters(), lr)
    criterion = nn.CrossEntropyLoss()
    train_history, valid_history = [], []
    for _epoch in range(epochs):
        model.train()
        running_loss, correct_train, total_train = 0.0, 0, 0
        for images, labels in trainloader:
            optimizer.zero_grad()
            outputs = model(images)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
            _, predicted = torch.max(outputs, 1)
            total_train += labels.size(0)
            correct_train += (predicted == labels).sum().item()
        train_history.append((running_loss / len(trainloader), 100 * correct_train / total_train))
        valid_history.append(seed001_evaluate(model, validloader, criterion))
    return train_history, valid_history


def seed001_evaluate(model, loader, criterion):
    model.eval()
    loss_sum, correct, total = 0.0, 0, 0
    with torch.no_grad():
        for images, labels in loader:
            outputs = model(images)
            loss_sum += criterion(outputs, labels).item()
            _, predicted = torch.max(outputs, 1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()
    return loss_sum / len(loader), 100 * correct / total


def part_reference(args) -> dict:
    from torch.utils.data import DataLoader, Subset

    from dropoutlab.data.prepare import split_indices

    start = time.perf_counter()
    kind = TensorOnly if args.transform == "tensor" else FashionMNISTLike
    with np.load(data_path()) as f:
        dataset = kind(f["x_train"], f["y_train"])
        testset = kind(f["x_test"], f["y_test"])
    train_idx, val_idx = split_indices(len(dataset), VALIDATION, 0)  # the same split as dropoutlab's
    trainset, validset = Subset(dataset, train_idx.tolist()), Subset(dataset, val_idx.tolist())
    accs = []
    for rate in RATES:
        rates = slot_rates(rate, args.all_slots)
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            trainloader = DataLoader(trainset, batch_size=64, shuffle=True)
            validloader = DataLoader(validset, batch_size=64, shuffle=False)
            testloader = DataLoader(testset, batch_size=64, shuffle=False)
            model = RandomDropoutModel(rates["input"], rates["hidden1"], rates["hidden2"])
            seed001_train(model, trainloader, validloader, epochs=args.epochs, lr=0.001)
            accs.append(seed001_evaluate(model, testloader, nn.CrossEntropyLoss())[1] / 100)
    return {"wall_s": time.perf_counter() - start, "runs": len(accs), "mean_test_acc": float(np.mean(accs))}


def study(args):
    from dropoutlab.study.spec import parse_study

    return parse_study({
        "name": "bench-seed001",
        "dataset": f"npz:{data_path()}",
        "model": "mlp",
        "epochs": args.epochs,
        "batch_size": 64,
        "normalize": "symmetric",
        "validation": VALIDATION,
        "eval_train": False,
        "seeds": list(range(args.seeds)),
        "optimizer": {"name": "adam", "lr": 0.001},
        "grid": {"dropout": [slot_rates(rate, args.all_slots) for rate in RATES]},
    })  # fmt: skip


def part_dropoutlab(args) -> dict:

    spec = study(args)
    return time_study(spec, "cpu", args.stack, args.workers)


def main() -> None:
    parser = argparse.ArgumentParser(description="seed 001's study: dropoutlab vs seed 001's own code")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--all-slots", action="store_true", help="also input dropout 0.2 and hidden2 0.5")
    parser.add_argument("--part", choices=["reference", "dropoutlab"], help=argparse.SUPPRESS)
    add_run_options(parser)
    parser.add_argument("--transform", default="pil", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--skip", nargs="*", default=[], help="contenders to leave out (reference, tensor, off, auto1, auto)"
    )
    args = parser.parse_args()

    if args.part == "reference":
        return report(part_reference(args))
    if args.part == "dropoutlab":
        return report(part_dropoutlab(args))

    data_path()
    common = ["--epochs", str(args.epochs), "--seeds", str(args.seeds)] + (
        ["--all-slots"] if args.all_slots else []
    )
    loads = [load_average()]
    model = RandomDropoutModel(0.0, 0.5, 0.0)
    train_flops, eval_flops = flops_per_sample(model, (1, 28, 28))
    n_val = round(N_TRAIN * VALIDATION)
    n_fit = N_TRAIN - n_val
    run_flops = args.epochs * (n_fit * train_flops + n_val * eval_flops) + N_TEST * eval_flops
    contenders = {
        "reference": ("seed 001 reference (Dataset + DataLoader)", ["--part", "reference"]),
        "tensor": (
            "stricter reference: no PIL in the per-sample conversion",
            ["--part", "reference", "--transform", "tensor"],
        ),
        "off": (
            "dropoutlab --stack off --workers 1",
            ["--part", "dropoutlab", "--stack", "off", "--workers", "1"],
        ),
        "auto1": (
            "dropoutlab --stack auto --workers 1",
            ["--part", "dropoutlab", "--stack", "auto", "--workers", "1"],
        ),
        "auto": ("dropoutlab --stack auto (--workers auto)", ["--part", "dropoutlab", "--stack", "auto"]),
    }
    results = run_contenders(
        __file__,
        contenders,
        args.skip,
        common,
        "MLP seed 001",
        args.epochs,
        run_flops,
        loads,
        repeat=args.repeat,
    )
    print(f"\nmachine: {machine()}; load averages (1 min) during the runs: {', '.join(loads)}")
    print(
        f"FLOPs per run: {run_flops / 1e9:.1f} GFLOP (train step {train_flops:.0f}/sample, eval {eval_flops:.0f}/sample)"
    )
    print(peaks_line(results))
    print(table(list(results.values())))
    if "tensor" in results:
        strict = results["tensor"]["me_per_s"]
        print("vs the stricter reference: " + ", ".join(
            f"{key} {out['me_per_s'] / strict:.2f}x" for key, out in results.items() if key in ("off", "auto1", "auto")))  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
