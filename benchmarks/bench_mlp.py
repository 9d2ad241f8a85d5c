"""The Fashion-MNIST with/without dropout comparison's MLP, timed: what a user gains with dropoutlab.

Workload (the notebook's model as written): an MLP 784-120-60-10 (ReLU) with dropout 0.2 on
its input, a swept rate after the first hidden layer and 0.5 after the second; a grid over
``dropout.hidden1`` of 0, 0.1, 0.2, 0.3, 0.5, 0.7 times 4 seeds = 24 runs of 2 epochs, batch
64, Adam lr 1e-3, on 60,000 + 10,000 Fashion-MNIST-shaped images (*synthesized*: no download
is possible on the benchmark machine, see ``common.synthetic_images``), 49,998 / 10,002
split into training and validation, pixels normalised to [-1, 1]. Every run does the same
work in every contender: per epoch a training pass (dropout on) and a validation pass, then
one pass over the test set; no evaluation of the training set (``eval_train = false``).

The study is a file (``$DROPOUTLAB_BENCH_DIR/bench_mlp*.toml``, default under
``/tmp/dropoutlab-bench``) that every contender reads. Each contender is one whole process,
timed from the outside from its start to its exit (Python's start-up, imports, reading the
study and preparing the data included), the matmul peak measured right before it:

* ``auto``: ``dropoutlab run STUDY --stack auto`` (default ``--workers``): the product;
* ``off``: ``dropoutlab run STUDY --stack off``: the same code one run at a time, so
  ``auto`` against ``off`` is the gain of stacking alone;
* ``plain``: the loop a user writes with the images already in memory as normalised float
  tensors: batches sliced from a ``randperm``, ``nn.Sequential`` with ``nn.Dropout``,
  ``torch.optim.Adam``, validation each epoch and the test set at the end; runs one after
  another (:func:`part_plain`);
* ``notebook``: the original notebook's loop: a ``Dataset`` converting one sample at a time
  (``ToTensor()`` + ``Normalize((0.5,), (0.5,))`` written with tensor operations, no PIL),
  ``DataLoader(batch_size=64, shuffle=True)``, the notebook's ``train()`` and validation
  loader; ratios "vs notebook" are to this one (:func:`part_notebook`);
* ``notebook-pil``: the same through torchvision's per-sample PIL path, as the notebook
  really ran it (torchvision is not installed; its steps are reproduced exactly);
* ``vmap``: ``torch.func``: ``functional_call`` + ``vmap`` over the stacked parameters of all
  24 same-shaped MLPs, per-member dropout rates (a slot whose rate is 0 in every member is
  left out), per-member masks (``randomness="different"``), per-member batch orders,
  ``torch.optim.Adam`` on the stacked tensors (exact per member: Adam is elementwise and lr
  is shared); same epochs, validation and test (:func:`part_vmap`);
* ``old-auto``, ``old-off``: ``dropoutlab run`` of an older checkout (``--old-src``), so
  that "no slower than before" is measured in the same run on the same machine.

FLOPs are counted with PyTorch's FlopCounterMode (matrix products only, what autograd
really computes). ``--repeat N`` interleaves N rounds and reports the median.

Commands (from the repository root; ``git worktree add /tmp/base <old commit>`` first for
the old code)::

    python benchmarks/bench_mlp.py --quick --skip notebook-pil               # smoke test, ~2 min
    python benchmarks/bench_mlp.py --repeat 3 --old-src /tmp/base/src --json mlp.json
                      # the final measurement: ~8 min a round on 2 cores, ~25 min in all
    python benchmarks/bench_mlp.py --repeat 3 --old-src /tmp/base/src --skip notebook-pil
                      # without the slowest contender (~2.5 min of each round)
"""

from __future__ import annotations

import argparse
import copy
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    CACHE,
    EVAL_CHUNK,
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

RATES = [0.0, 0.1, 0.2, 0.3, 0.5, 0.7]
FULL = {"epochs": 2, "seeds": 4, "n_train": 60_000, "n_test": 10_000}
QUICK = {"epochs": 1, "seeds": 2, "n_train": 12_000, "n_test": 2_000}
VALIDATION = 0.1667
DROPOUT_AT = {1: "input", 4: "hidden1", 7: "hidden2"}  # index of each dropout layer in mlp()

STUDY = """\
# Written by benchmarks/bench_mlp.py: the notebook's MLP, the grid over one slot.
name = "bench-mlp"
dataset = "npz:{data}"
model = "mlp"
epochs = {epochs}
batch_size = 64
seeds = {seeds}
normalize = "symmetric"
validation = {validation}
eval_train = false

[dropout]
input = 0.2
hidden2 = 0.5

[optimizer]
name = "adam"
lr = 0.001

[grid]
"dropout.hidden1" = {rates}
"""


def write_study(size: dict) -> Path:
    """The study file every contender reads (and its synthetic data), for sizes ``size``."""
    data = synthetic_images(
        CACHE / f"fashion_synth_{size['n_train']}_{size['n_test']}.npz",
        size["n_train"],
        size["n_test"],
        (28, 28),
    )
    path = CACHE / f"bench_mlp_{size['epochs']}e_{size['seeds']}s_{size['n_train']}.toml"
    path.write_text(STUDY.format(data=data, epochs=size["epochs"], seeds=list(range(size["seeds"])),
                                 validation=VALIDATION, rates=RATES))  # fmt: skip
    return path


# --- what the hand-written contenders share: reading the study, the data, the model -------


def read_study(path: Path) -> dict:
    """The study file as the hand-written contenders use it: settings plus one (rates, seed) per run."""
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    base = raw["dropout"]
    runs = [({**base, "hidden1": r}, seed) for r in raw["grid"]["dropout.hidden1"] for seed in raw["seeds"]]
    return {**raw, "data": raw["dataset"].removeprefix("npz:"), "runs": runs, "lr": raw["optimizer"]["lr"]}


def split_indices(n: int, validation: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Training and validation indices: a fixed random split of ``round(n * validation)`` images."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    n_val = round(n * validation)
    return order[n_val:], order[:n_val]


def load_tensors(study: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Training, validation and test images as flat float tensors in [-1, 1], labels as int64."""
    with np.load(study["data"]) as f:
        x, y = torch.from_numpy(f["x_train"]), torch.from_numpy(f["y_train"])
        x_test, y_test = torch.from_numpy(f["x_test"]), torch.from_numpy(f["y_test"])

    def normalise(images: torch.Tensor) -> torch.Tensor:
        return images.reshape(len(images), -1).float().div_(127.5).sub_(1)

    fit, val = split_indices(len(y), study["validation"])
    return {"fit": (normalise(x[fit]), y[fit]), "val": (normalise(x[val]), y[val]),
            "test": (normalise(x_test), y_test)}  # fmt: skip


def mlp(rates: dict[str, float]) -> nn.Sequential:
    """The notebook's model: dropout on the input, after the first and after the second hidden layer."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Dropout(rates["input"]),
        nn.Linear(784, 120),
        nn.ReLU(),
        nn.Dropout(rates["hidden1"]),
        nn.Linear(120, 60),
        nn.ReLU(),
        nn.Dropout(rates["hidden2"]),
        nn.Linear(60, 10),
    )


def result(start: float, accs: list[float]) -> dict:
    return {
        "in_process_s": time.perf_counter() - start,
        "runs": len(accs),
        "mean_test_acc": float(np.mean(accs)),
    }


# --- contender: the plain PyTorch loop, tensors in memory --------------------------------


def part_plain(study_path: Path) -> dict:
    start = time.perf_counter()
    study = read_study(study_path)
    data = load_tensors(study)
    (x, y), batch = data["fit"], study["batch_size"]
    accs = []
    for rates, seed in study["runs"]:
        torch.manual_seed(seed)
        model = mlp(rates)
        optimizer = torch.optim.Adam(model.parameters(), lr=study["lr"])
        order = torch.Generator().manual_seed(seed)
        for _epoch in range(study["epochs"]):
            model.train()
            perm = torch.randperm(len(y), generator=order)
            for i in range(0, len(y), batch):
                idx = perm[i : i + batch]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            evaluate(model, *data["val"])
        accs.append(evaluate(model, *data["test"])[1])
    return result(start, accs)


# --- contender: the original notebook's per-sample loop ----------------------------------


class FashionMNISTLike(torch.utils.data.Dataset):
    """``torchvision.datasets.FashionMNIST`` + ``ToTensor()`` + ``Normalize((0.5,), (0.5,))``, one sample at a time.

    torchvision is not installed here, so its steps are written out: a PIL image, a numpy
    copy, permute, divide, then normalise (not in place).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.data = torch.from_numpy(images)  # uint8 (N, 28, 28), as torchvision keeps it
        self.targets = torch.from_numpy(labels)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        from PIL import Image

        img, target = self.data[index], int(self.targets[index])
        img = Image.fromarray(img.numpy())  # torchvision: Image.fromarray(img.numpy(), mode="L")
        tensor = torch.from_numpy(np.array(img, np.uint8, copy=True))  # ToTensor of a PIL image
        tensor = tensor.view(img.size[1], img.size[0], 1).permute((2, 0, 1)).contiguous()
        tensor = tensor.to(dtype=torch.get_default_dtype()).div(255)
        tensor = tensor.clone()  # Normalize((0.5,), (0.5,)), transforms.functional.normalize
        mean = torch.as_tensor((0.5,), dtype=tensor.dtype)
        std = torch.as_tensor((0.5,), dtype=tensor.dtype)
        if (std == 0).any():
            raise ValueError("std evaluated to zero")
        tensor.sub_(mean.view(-1, 1, 1)).div_(std.view(-1, 1, 1))
        return tensor, target


class TensorOnly(FashionMNISTLike):
    """The same samples converted with tensor operations only (no PIL): the stricter notebook loop."""

    def __getitem__(self, index: int):
        tensor = self.data[index].unsqueeze(0).to(dtype=torch.get_default_dtype()).div(255)
        return (tensor - 0.5) / 0.5, int(self.targets[index])


def notebook_train(model, trainloader, validloader, epochs, lr):
    """The notebook's ``train()``, without its prints."""
    optimizer = torch.optim.Adam(model.parameters(), lr)
    criterion = nn.CrossEntropyLoss()
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
        notebook_evaluate(model, validloader, criterion)


def notebook_evaluate(model, loader, criterion):
    model.eval()
    loss_sum, correct, total = 0.0, 0, 0
    with torch.no_grad():
        for images, labels in loader:
            outputs = model(images)
            loss_sum += criterion(outputs, labels).item()
            _, predicted = torch.max(outputs, 1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()
    return loss_sum / len(loader), correct / total


def part_notebook(study_path: Path, pil: bool) -> dict:
    from torch.utils.data import DataLoader, Subset

    start = time.perf_counter()
    study = read_study(study_path)
    kind = FashionMNISTLike if pil else TensorOnly
    with np.load(study["data"]) as f:
        dataset, testset = kind(f["x_train"], f["y_train"]), kind(f["x_test"], f["y_test"])
    fit, val = split_indices(len(dataset), study["validation"])
    trainset, validset = Subset(dataset, fit.tolist()), Subset(dataset, val.tolist())
    accs = []
    for rates, seed in study["runs"]:
        torch.manual_seed(seed)
        trainloader = DataLoader(trainset, batch_size=study["batch_size"], shuffle=True)
        validloader = DataLoader(validset, batch_size=study["batch_size"], shuffle=False)
        testloader = DataLoader(testset, batch_size=study["batch_size"], shuffle=False)
        model = mlp(rates)
        notebook_train(model, trainloader, validloader, study["epochs"], study["lr"])
        accs.append(notebook_evaluate(model, testloader, nn.CrossEntropyLoss())[1])
    return result(start, accs)


# --- contender: torch.func vmap over the stacked parameters of every run ------------------


class RateDropout(nn.Module):
    """Dropout whose rate is a buffer, so that ``vmap`` gives each member its own rate and mask."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("p", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        keep = 1 - self.p
        return x * (torch.rand_like(x) < keep) / keep


def vmap_members(runs: list[tuple[dict, int]]) -> tuple[nn.Module, dict, dict]:
    """A template module on the meta device, and the members' stacked parameters and buffers.

    Each member is initialised as :func:`part_plain` initialises it (``torch.manual_seed``
    of its seed, then ``mlp``); a dropout slot whose rate is 0 in every member is left out.
    """
    from torch.func import stack_module_state

    members = []
    for rates, seed in runs:
        torch.manual_seed(seed)
        model = mlp(rates)
        for index, slot in DROPOUT_AT.items():
            model[index] = RateDropout() if any(r[slot] > 0 for r, _ in runs) else nn.Identity()
            if isinstance(model[index], RateDropout):
                model[index].p.fill_(rates[slot])
        members.append(model)
    params, buffers = stack_module_state(members)
    return copy.deepcopy(members[0]).to("meta"), params, buffers


def vmap_evaluate(forward, params, buffers, x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-member mean loss and accuracy on ``(x, y)``, every member on the same images."""
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(y), EVAL_CHUNK):
            logits = forward(params, buffers, x[i : i + EVAL_CHUNK])  # (members, chunk, classes)
            target = y[i : i + EVAL_CHUNK].expand(len(logits), -1)
            loss += F.cross_entropy(logits.transpose(1, 2), target, reduction="none").sum(1)
            correct += (logits.argmax(2) == target).sum(1)
    return loss / len(y), correct / len(y)


def part_vmap(study_path: Path) -> dict:
    from torch.func import functional_call, vmap

    start = time.perf_counter()
    study = read_study(study_path)
    data = load_tensors(study)
    (x, y), batch = data["fit"], study["batch_size"]
    template, params, buffers = vmap_members(study["runs"])

    def member(p, b, images):
        return functional_call(template, (p, b), (images,))

    train_forward = vmap(member, randomness="different")  # own images and masks per member
    eval_forward = vmap(member, in_dims=(0, 0, None))  # the same images for every member
    optimizer = torch.optim.Adam(params.values(), lr=study["lr"])
    orders = [torch.Generator().manual_seed(seed) for _, seed in study["runs"]]
    for _epoch in range(study["epochs"]):
        template.train()
        perms = torch.stack([torch.randperm(len(y), generator=g) for g in orders])  # (members, N)
        for i in range(0, len(y), batch):
            idx = perms[:, i : i + batch]
            logits = train_forward(params, buffers, x[idx])
            loss = F.cross_entropy(logits.transpose(1, 2), y[idx], reduction="none").mean(1).sum()
            optimizer.zero_grad()
            loss.backward()  # members are independent: each gets the gradient of its own loss
            optimizer.step()
        template.eval()
        vmap_evaluate(eval_forward, params, buffers, *data["val"])
    template.eval()
    _, accs = vmap_evaluate(eval_forward, params, buffers, *data["test"])
    return result(start, accs.tolist())


# --- the contenders, timed ----------------------------------------------------------------


def contenders(args, study: Path, run_flops: float, epochs: int) -> list[Contender]:
    store = CACHE / "bench_mlp.db"

    def part(key: str, label: str, name: str) -> Contender:
        argv = (sys.executable, __file__, "--part", name, "--study", str(study))
        return Contender(key, label, argv, run_flops, epochs)

    def cli(key: str, label: str, src: Path, *options: str) -> Contender:
        argv, env = dropoutlab_cli(src, study, store, *options)
        return Contender(key, label, argv, run_flops, epochs, env, store)

    every = [
        cli("auto", "dropoutlab run --stack auto", args.new_src, "--stack", "auto"),
        cli("off", "dropoutlab run --stack off", args.new_src, "--stack", "off"),
        part("plain", "plain PyTorch loop, tensors in memory", "plain"),
        part("notebook", "notebook loop (per-sample Dataset + DataLoader, no PIL)", "notebook"),
        part("notebook-pil", "notebook loop as it ran (torchvision's PIL path)", "notebook-pil"),
        part("vmap", "torch.func vmap over stacked parameters", "vmap"),
    ]
    if args.old_src:
        every += [
            cli("old-auto", f"old code ({args.old_src}) --stack auto", args.old_src, "--stack", "auto"),
            cli("old-off", f"old code ({args.old_src}) --stack off", args.old_src, "--stack", "off"),
        ]
    return [c for c in every if c.key not in args.skip]


def table(results: dict[str, dict]) -> str:
    """The headline table: speeds, ratios to the notebook and the plain loop, peak fraction, memory."""

    def ratio(out: dict, key: str) -> str:
        return f"{out['me_per_s'] / results[key]['me_per_s']:.2f}x" if key in results else "-"

    lines = ["| contender | wall | model-epochs/s | vs notebook loop | vs plain loop | GFLOP/s | "
             "of matmul peak | peak memory | mean test acc |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for out in results.values():
        lines.append(
            f"| {out['label']} | {out['wall_s']:.1f} s | {out['me_per_s']:.3f} | {ratio(out, 'notebook')} | "
            f"{ratio(out, 'plain')} | {out['gflops']:.1f} | {out['of_peak']:.0%} | {out['peak_mib']:.0f} MiB | "
            f"{out['mean_test_acc']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 1 epoch, 2 seeds, 12,000 + 2,000 images")  # fmt: skip
    parser.add_argument(
        "--part", choices=["plain", "notebook", "notebook-pil", "vmap"], help=argparse.SUPPRESS
    )
    parser.add_argument("--study", type=Path, help=argparse.SUPPRESS)
    parse_common(parser, "auto, off, plain, notebook, notebook-pil, vmap, old-auto, old-off")
    args = parser.parse_args()
    if args.part == "plain":
        return report(part_plain(args.study))
    if args.part in ("notebook", "notebook-pil"):
        return report(part_notebook(args.study, pil=args.part == "notebook-pil"))
    if args.part == "vmap":
        return report(part_vmap(args.study))

    size = QUICK if args.quick else FULL
    study = write_study(size)
    train_flops, eval_flops = flops_per_sample(
        mlp({"input": 0.2, "hidden1": 0.5, "hidden2": 0.5}), (1, 28, 28)
    )
    n_val = round(size["n_train"] * VALIDATION)
    n_fit = size["n_train"] - n_val
    run_flops = size["epochs"] * (n_fit * train_flops + n_val * eval_flops) + size["n_test"] * eval_flops
    load_before = load_average()
    results = run_contenders(contenders(args, study, run_flops, size["epochs"]), args.repeat)

    runs = len(RATES) * size["seeds"]
    print(f"\n{runs} runs x {size['epochs']} epochs: {n_fit} training + {n_val} validation images per epoch, "
          f"{size['n_test']} test images; {run_flops / 1e9:.1f} GFLOP per run "
          f"(training step {train_flops:.0f} FLOP/sample, evaluation {eval_flops:.0f})")  # fmt: skip
    print(f"machine: {machine()}; load average before: {load_before}")
    print(peaks_line(results))
    print(table(results))
    print("\nEvery round (wall time, fraction of the matmul peak measured just before):")
    print(rounds_table(results))
    for new, old in (("auto", "old-auto"), ("off", "old-off")):
        if new in results and old in results:
            print(f"--stack {new}: new code {results[new]['wall_s']:.1f} s, old code {results[old]['wall_s']:.1f} s "
                  f"(new is {results[old]['wall_s'] / results[new]['wall_s']:.2f}x the old speed)")  # fmt: skip
    write_json(args.json, results, size=size, run_flops=run_flops)


if __name__ == "__main__":
    main()
