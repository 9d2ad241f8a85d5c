"""Which way of stacking is fastest: the measurement behind dropoutlab.train.stacked's design.

Times one optimizer step of M members (forward, backward, Adam/SGD update; random data,
per-member dropout rates) four ways:

* ``one-by-one``: M ``nn.Sequential`` models, each with its own ``torch.optim`` optimizer,
  stepped in a Python loop (what ``--stack off`` does per step);
* ``vmap``: ``torch.func.stack_module_state`` + ``vmap(grad_and_value(...),
  randomness="different")`` over a functional copy of the network, per-member keep
  probabilities as a vmapped tensor, then the same fused stacked optimizer;
* ``grouped``: dropoutlab's :class:`~dropoutlab.layers.stacked.StackedNet` (batched
  matrix products, grouped convolutions, one dropout mask for the stack);
* ``grouped, conv loop``: the same, with convolutions run one member at a time.

Written against the stacked engine's internals of commit ee26d23 (``StackedNet``'s old
constructor, ``train.stacked.StackedOptimizer``); until ported to the refactored engine, run
it on that commit's code: ``PYTHONPATH=/tmp/base/src python benchmarks/stack_strategies.py``.

Usage: ``python benchmarks/stack_strategies.py [--threads 2]``; prints a table of
milliseconds per member-step and model FLOP/s.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from torch.func import functional_call, grad_and_value, stack_module_state, vmap
from torch.nn import functional as F

from dropoutlab.layers.dropout import Dropout
from dropoutlab.layers.stacked import StackedNet
from dropoutlab.models import PRESETS, build_model
from dropoutlab.train.stacked import StackedOptimizer

WORKLOADS = {
    # name: (preset, input shape, batch, members, rates of the slots, optimizer)
    "mlp (Fashion-MNIST)": (
        "mlp",
        (1, 28, 28),
        64,
        24,
        {"input": 0.0, "hidden1": 0.5, "hidden2": 0.0},
        "adam",
    ),
    "cnn (CIFAR-10)": ("cnn", (3, 32, 32), 32, 6, {"conv": 0.2, "dense1": 0.0, "dense2": 0.0}, "sgd"),
}


def timed(step, repeats: int) -> float:
    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats


def one_by_one(models, xs, ys, optimizer):
    opts = [torch.optim.Adam(m.parameters(), 1e-3) if optimizer == "adam" else torch.optim.SGD(m.parameters(), 0.01)
            for m in models]  # fmt: skip

    def step():
        for model, opt, x, y in zip(models, opts, xs, ys, strict=True):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return step


class TensorRateDropout(torch.nn.Module):
    """Dropout whose keep probability is a (vmapped) tensor buffer: usable under vmap."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("keep", torch.ones(()))

    def forward(self, x):
        return x * (torch.rand_like(x) < self.keep) / self.keep


def vmapped(models, rates, xs, ys, optimizer):
    template = copy.deepcopy(models[0]).to("meta")
    for name, module in list(template.named_children()):
        if isinstance(module, Dropout):
            setattr(template, name, TensorRateDropout())
    members = [copy.deepcopy(m) for m in models]
    for m in members:
        for name, module in list(m.named_children()):
            if isinstance(module, Dropout):
                replacement = TensorRateDropout()
                replacement.keep.fill_(1 - module.p)
                setattr(m, name, replacement)
    for name, module in template.named_children():  # slots with rate 0 are absent from the models
        if isinstance(module, TensorRateDropout):
            for m in members:
                if not hasattr(m, name):
                    raise SystemExit("vmap variant needs every slot present; use rates > 0")
    params, buffers = stack_module_state(members)
    params = {k: v.detach().requires_grad_(False) for k, v in params.items()}

    def loss_fn(p, b, x, y):
        return F.cross_entropy(functional_call(template, (p, b), (x,)), y)

    compute = vmap(grad_and_value(loss_fn), randomness="different")
    names = list(params)
    size = len(models)
    opt = StackedOptimizer([params[k] for k in names], optimizer, [1e-3 if optimizer == "adam" else 0.01] * size,
                           [0.0] * size, [0.0] * size)  # fmt: skip

    def step():
        grads, _ = compute(params, buffers, xs, ys)
        opt.step([params[k] for k in names], [grads[k] for k in names])

    return step


def grouped(models, template, rates, xs, ys, optimizer, conv_loop=False):
    keeps = {
        name: [1 - rates[module.slot]] * len(models)
        for name, module in template.named_children()
        if isinstance(module, Dropout)
    }
    net = StackedNet(
        template, [m.state_dict() for m in models], keeps, torch.device("cpu"), conv_loop=conv_loop
    )
    size = len(models)
    opt = StackedOptimizer(net.params, optimizer, [1e-3 if optimizer == "adam" else 0.01] * size,
                           [0.0] * size, [0.0] * size)  # fmt: skip
    gens = {name: [torch.Generator().manual_seed(i) for i in range(size)] for name in keeps}
    x = torch.stack(xs)
    y = torch.stack(ys)

    def step():
        logits = net.forward(x, "member", training=True, generators=gens)
        losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(size, -1).mean(1)
        opt.step(net.params, torch.autograd.grad(losses.sum(), net.params))

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from common import flops_per_sample, load_average, machine

    print(f"machine: {machine()}; load average {load_average()}")
    print("| workload | members | strategy | ms per member-step | GFLOP/s |\n|---|---:|---|---:|---:|")
    for name, (preset, shape, batch, size, rates, optimizer) in WORKLOADS.items():
        layers = PRESETS[preset]
        models = []
        for seed in range(size):
            torch.manual_seed(seed)
            models.append(build_model(layers, rates, shape, 10))
        template = build_model(layers, dict.fromkeys(rates, 0.5), shape, 10)
        xs = [torch.randn(batch, *shape) for _ in range(size)]
        ys = [torch.randint(0, 10, (batch,)) for _ in range(size)]
        train_flops, _ = flops_per_sample(copy.deepcopy(models[0]), shape, batch)
        variants = {
            "one-by-one": one_by_one([copy.deepcopy(m) for m in models], xs, ys, optimizer),
            "grouped": grouped(models, template, rates, xs, ys, optimizer),
        }
        if preset == "cnn":
            variants["grouped, conv loop"] = grouped(
                models, template, rates, xs, ys, optimizer, conv_loop=True
            )
        try:
            all_present = {k: v or 0.01 for k, v in rates.items()}
            vm_models = []
            for seed in range(size):
                torch.manual_seed(seed)
                vm_models.append(build_model(layers, all_present, shape, 10))
            variants["vmap"] = vmapped(vm_models, all_present, torch.stack(xs), torch.stack(ys), optimizer)
        except Exception as exc:  # vmap coverage differs between PyTorch versions
            print(f"(vmap failed: {type(exc).__name__}: {exc})")
        repeats = args.repeats if preset == "mlp" else max(args.repeats // 4, 3)
        for strategy, step in variants.items():
            seconds = timed(step, repeats) / size
            print(
                f"| {name} | {size} | {strategy} | {seconds * 1e3:.3f} | {batch * train_flops / seconds / 1e9:.0f} |"
            )


if __name__ == "__main__":
    main()
