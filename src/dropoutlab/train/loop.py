"""The training loop: one run, top to bottom."""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

import dropoutlab
from dropoutlab.data.prepare import PreparedData, Split
from dropoutlab.models import build_model
from dropoutlab.study.grid import RunSpec
from dropoutlab.study.spec import OptimizerSpec
from dropoutlab.train.early_stopping import EarlyStopping

EVAL_BATCH = 2048


@dataclass
class RunResult:
    """What one run produced: per-epoch history, the test score of the kept model, timings.

    ``history`` has one dict per epoch with ``epoch`` (1-based), ``train_loss``/``train_acc``
    (running averages over the epoch, train mode: dropout on), ``val_loss``/``val_acc`` and
    ``train_eval_loss``/``train_eval_acc`` (eval mode); ``None`` where not measured.
    Accuracies are fractions in [0, 1]. ``status`` is ``completed``, ``diverged`` or ``failed``.
    """

    run: RunSpec
    status: str
    history: list[dict[str, Any]]
    test: dict[str, float | None]
    best_epoch: int | None
    stopped_epoch: int | None
    wall_s: float
    env: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def environment(device: torch.device) -> dict[str, Any]:
    """Versions and device, stored with every run."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {
        "dropoutlab": dropoutlab.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": f"{device.type}: {name}",
        "threads": torch.get_num_threads(),
    }


def diverged_record(metrics: dict[str, Any]) -> dict[str, Any]:
    """The history entry of the epoch where the training loss stopped being finite."""
    return {**metrics, "train_loss": None, "val_loss": None, "val_acc": None,
            "train_eval_loss": None, "train_eval_acc": None}  # fmt: skip


def best_epoch_of(history: list[dict[str, Any]], stopper: EarlyStopping | None, status: str) -> int | None:
    """The early-stopping best epoch; without early stopping, the epoch of least validation loss."""
    if stopper and stopper.best_epoch is not None:
        return stopper.best_epoch
    if history and history[0].get("val_loss") is not None and status == "completed":
        return min(history, key=lambda h: h["val_loss"])["epoch"]
    return None


def make_optimizer(params, spec: OptimizerSpec) -> torch.optim.Optimizer:
    """The optimizer of a run; ``weight_decay`` is the L2 coefficient."""
    if spec.name == "sgd":
        return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
    if spec.name == "adam":
        return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)


@torch.no_grad()
def evaluate(model: nn.Module, split: Split) -> tuple[float | None, float | None]:
    """Mean cross-entropy and accuracy of ``model`` in eval mode on ``split`` (None if empty)."""
    if len(split) == 0:
        return None, None
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=split.x.device)
    correct = torch.zeros((), device=split.x.device)
    for x, y in zip(split.x.split(EVAL_BATCH), split.y.split(EVAL_BATCH), strict=True):
        logits = model(x)
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    model.train(was_training)
    return loss_sum.item() / len(split), correct.item() / len(split)


def train_run(
    run: RunSpec,
    data: PreparedData,
    device: torch.device,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Train one run and score the kept model on the test split.

    The seed fixes the initial weights, the order of the batches and the dropout masks, so
    the same run gives the same history on the same CPU. A non-finite training loss ends
    the run with status ``diverged`` at that epoch.
    """
    s = run.settings
    start = time.perf_counter()
    torch.manual_seed(run.seed)
    model = build_model(s.layers, s.dropout, data.input_shape, data.num_classes, init=s.init).to(device)
    optimizer = make_optimizer(model.parameters(), s.optimizer)
    order_rng = torch.Generator(device="cpu").manual_seed(run.seed)
    es = s.early_stopping
    stopper = EarlyStopping(es.monitor, es.patience, es.min_delta) if es else None
    history: list[dict[str, Any]] = []
    status = "completed"
    n = len(data.train)

    for epoch in range(1, s.epochs + 1):
        model.train()
        order = torch.randperm(n, generator=order_rng).to(device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        for batch in order.split(s.batch_size):
            x, y = data.train.x[batch], data.train.y[batch]
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(batch)  # summed on the device: no sync per step
            correct += (logits.detach().argmax(1) == y).sum()

        metrics = {"epoch": epoch, "train_loss": loss_sum.item() / n, "train_acc": correct.item() / n}
        if not math.isfinite(metrics["train_loss"]):
            status = "diverged"
            history.append(diverged_record(metrics))
            break
        metrics["val_loss"], metrics["val_acc"] = evaluate(model, data.val)
        metrics["train_eval_loss"], metrics["train_eval_acc"] = (
            evaluate(model, data.train_eval) if s.eval_train else (None, None)
        )
        history.append(metrics)
        if on_epoch:
            on_epoch(metrics)
        if stopper:
            stopper.update(epoch, metrics, model)
            if stopper.should_stop:
                break

    best_epoch = best_epoch_of(history, stopper, status)
    if stopper and stopper.best_epoch is not None and es.restore_best:
        model.load_state_dict(stopper.best_state)

    test_loss, test_acc = evaluate(model, data.test) if status == "completed" else (None, None)
    return RunResult(
        run=run,
        status=status,
        history=history,
        test={"loss": test_loss, "acc": test_acc},
        best_epoch=best_epoch,
        stopped_epoch=history[-1]["epoch"] if history else None,
        wall_s=time.perf_counter() - start,
        env=environment(device),
    )
