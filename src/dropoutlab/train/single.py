"""The single engine: one run's own ``nn.Sequential`` and ``torch.optim`` optimizer (``--stack off``).

This is the reference the stacked engine is tested against: plain PyTorch, one model, the
dropout masks of ``F.dropout`` drawn from the global generator seeded by the run's seed.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from dropoutlab.data.prepare import PreparedData, Split
from dropoutlab.layers.kinds import ConcreteDropout
from dropoutlab.models import build_network
from dropoutlab.runs import OptimizerSpec, RunSpec
from dropoutlab.train.augment import apply_augmentation, augmentation_generator, draw_augmentation
from dropoutlab.train.regularizers import apply_max_norm, penalized, penalty, undecayed

EVAL_BATCH = 2048


def make_optimizer(model: nn.Module, spec: OptimizerSpec) -> torch.optim.Optimizer:
    """The optimizer of a run's ``model``; ``weight_decay`` is the L2 coefficient (decoupled for
    adamw), applied to every parameter but concrete dropout's learned rates (:func:`undecayed`)."""
    free = undecayed(model)
    params = [p for p in model.parameters() if id(p) not in free]
    if free:
        params = [
            {"params": params},
            {"params": [p for p in model.parameters() if id(p) in free], "weight_decay": 0.0},
        ]
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


class SingleEngine:
    """Trains one run (K = 1 member) with its own model and optimizer.

    The seed fixes the initial weights (``torch.manual_seed`` before building the model),
    the order of the batches (a generator of its own) and the dropout masks (the global
    generator), so the same run gives the same history on the same CPU.
    """

    name = "single"
    dtype = "float32"

    def __init__(self, runs: list[RunSpec], data: PreparedData, device: torch.device) -> None:
        if len(runs) != 1:
            raise ValueError(f"the single engine trains one run at a time, got {len(runs)}")
        run = runs[0]
        s = run.settings
        self.data, self.device, self.batch_size = data, device, s.batch_size
        self.settings = s
        torch.manual_seed(run.seed)
        self.model = build_network(s, data.input_shape, data.num_classes).to(device)
        self.optimizer = make_optimizer(self.model, s.optimizer)
        self.penalized = penalized(self.model)
        self.order_rng = torch.Generator(device="cpu").manual_seed(run.seed)
        self.augment_rng = augmentation_generator(run.seed, device) if s.augment else None

    def train_epoch(self) -> list[tuple[float, float]]:
        """One pass over the training split in a fresh order: ``[(mean loss, accuracy)]``, dropout on.

        The recorded loss is the data loss: cross-entropy (label-smoothed with ``label_smoothing``)
        before layers' penalties, as the stacked engine records it. Each step minimises that loss
        plus the penalties (concrete dropout's) and is followed by the max-norm constraint when set.
        """
        model, train, n = self.model, self.data.train, len(self.data.train)
        model.train()
        order = torch.randperm(n, generator=self.order_rng).to(self.device)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        s = self.settings
        for batch in order.split(self.batch_size):
            x, y = train.x[batch], train.y[batch]
            if self.augment_rng is not None:
                x = apply_augmentation(
                    x, draw_augmentation(s.augment, len(batch), x.shape[2], self.augment_rng)
                )
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=s.label_smoothing)
            objective = loss + penalty(self.penalized) if self.penalized else loss
            self.optimizer.zero_grad(set_to_none=True)
            objective.backward()
            self.optimizer.step()
            if s.max_norm is not None:
                apply_max_norm(model, s.max_norm)
            loss_sum += loss.detach() * len(batch)  # summed on the device: no sync per step
            correct += (logits.detach().argmax(1) == y).sum()
        return [(loss_sum.item() / n, correct.item() / n)]

    def evaluate(self, split: Split) -> list[tuple[float | None, float | None]]:
        """``[(mean loss, accuracy)]`` on ``split`` in eval mode."""
        return [evaluate(self.model, split)]

    def learned_rates(self) -> list[dict[str, float]]:
        """``[{slot: rate}]`` of the model's ``concrete`` dropout layers (empty without)."""
        return [{m.slot: m.current_rate() for m in self.model.modules() if isinstance(m, ConcreteDropout)}]

    def member_state(self, position: int) -> dict[str, torch.Tensor]:
        """A copy of the model's weights."""
        return copy.deepcopy(self.model.state_dict())

    def keep_members(self, positions: list[int]) -> None:
        """Nothing to do: a single run leaves only when the loop ends."""

    def state(self) -> dict[str, Any]:
        """The weights, optimizer state and every generator: batch order, the global one (dropout
        masks) and augmentation's."""
        out = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
               "order_rng": self.order_rng.get_state(), "torch_rng": torch.get_rng_state()}  # fmt: skip
        if self.device.type == "cuda":
            out["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        if self.augment_rng is not None:
            out["augment_rng"] = self.augment_rng.get_state()
        return out

    def restore(self, state: dict[str, Any]) -> None:
        """Take up training where :meth:`state` left it."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.order_rng.set_state(state["order_rng"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        if self.augment_rng is not None:
            self.augment_rng.set_state(state["augment_rng"])

    def test(self, indices: list[int], states: list[dict[str, torch.Tensor]]) -> list[tuple[float, float]]:
        """Load the kept weights and score them on the test split."""
        self.model.load_state_dict(states[0])
        return [evaluate(self.model, self.data.test)]
