"""The stacked engine: the runs of one stack trained together, as one :class:`StackedNet`.

Runs with the same :func:`~dropoutlab.train.plan.stack_key` train in one stack. Each member
keeps everything that makes it its own run:

* its initial weights: built with ``torch.manual_seed(run.seed)`` then ``build_network``, as
  the single engine builds them, so the same seed starts from the same weights;
* its data order: ``torch.randperm`` from ``torch.Generator().manual_seed(run.seed)``, one
  permutation per epoch, as in the single engine; members with the same seed, side by side
  in a stack, share each gathered batch (:func:`order_groups`);
* its dropout rates (rate 0 is exactly the identity) and its own masks, drawn from a
  generator per member and dropout layer seeded by the run's id and the layer, so a run's
  masks do not depend on which runs share its stack (or on ``--stack``, or on a resume).
  They differ from ``F.dropout``'s, so with dropout a stacked run equals a single-engine
  run in distribution, not bit for bit; with every rate 0 the two agree to float rounding;
* its learning rate, weight decay, momentum and optimizer state (:class:`StackedOptimizer`).

Early stopping, divergence, restore-best and the results are the loop's
(:func:`~dropoutlab.train.loop.train_runs`), the same for both engines: a member that
stops leaves the stack (:meth:`StackedEngine.keep_members`) and the others go on.

On CUDA the forward passes run under bf16 autocast with channels-last images; on the CPU
everything is float32 (torch's default dtype: the tests train both engines in float64).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from dropoutlab.data.prepare import PreparedData, Split
from dropoutlab.layers import StackedNet
from dropoutlab.layers.stacked import ungroup
from dropoutlab.layers.stacked_kinds import StackedConcreteDropout
from dropoutlab.models import build_network
from dropoutlab.runs import RunSpec
from dropoutlab.train.augment import (
    Augmentation,
    apply_augmentation,
    augmentation_generator,
    draw_augmentation,
)
from dropoutlab.train.optim import StackedOptimizer
from dropoutlab.train.plan import all_slots, memory_budget, per_sample_floats, stack_key, stack_rows
from dropoutlab.train.regularizers import apply_stacked_max_norm, penalized, penalty, undecayed
from dropoutlab.train.single import EVAL_BATCH


def member_losses(logits: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of each member's every sample: ``logits`` ``(M, B, classes)``, ``y`` ``(M, B)``.

    The classes are read along the middle axis of a transposed view: PyTorch's CPU
    log-softmax is slow over a short contiguous last axis (measured on 24 x 64 x 10 logits,
    forward and backward: 66 us this way, 175 us the plain way).
    """
    wide = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 up, float64 kept
    return F.cross_entropy(wide.transpose(1, 2), y, reduction="none", label_smoothing=label_smoothing)


def predictions(logits: torch.Tensor) -> torch.Tensor:
    """The predicted class of each sample (the first of tied maxima, as ``argmax``).

    ``max().indices`` rather than ``argmax``: 3x faster on the CPU for 10 classes.
    """
    return logits.max(-1).indices


def order_groups(orders: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """``orders`` ``(M, n)`` without repeats: ``(distinct orders (G, n), group sizes)``.

    Consecutive members with the same order (runs with the same seed) form a group, whose
    batches are gathered once for all of them.
    """
    firsts = [0] + [i for i in range(1, len(orders)) if not torch.equal(orders[i], orders[i - 1])]
    sizes = [end - start for start, end in zip(firsts, firsts[1:] + [len(orders)], strict=True)]
    return orders[firsts], sizes


def mask_seed(run: RunSpec, layer: str) -> int:
    """The seed of ``run``'s mask generator at ``layer``: from the run's settings and seed alone, so
    it is the same whatever the run's stack, and under any study name (the run id, which hashes
    the name too, would make a renamed copy of a study draw other masks)."""
    blob = json.dumps({"spec": run.settings.to_dict(), "seed": run.seed, "layer": layer}, sort_keys=True)
    return int(hashlib.sha256(blob.encode()).hexdigest()[:15], 16)


def build_stack(
    runs: list[RunSpec], data: PreparedData, device: torch.device
) -> tuple[StackedNet, nn.Sequential]:
    """The stacked network of ``runs`` and its template (the layer list with every slot present).

    Each member starts from exactly the single engine's weights: ``torch.manual_seed(run.seed)``
    then ``build_network`` with the run's own rates (a slot's dropout holds no weights, so
    which slots exist does not change them). Each random layer gets one generator per member
    (:func:`mask_seed`).
    """
    s = runs[0].settings
    with torch.random.fork_rng(devices=[]):  # the template's own weights are never used
        template = build_network(s, data.input_shape, data.num_classes, rates=all_slots(s.dropout))
    members = []
    for run in runs:
        torch.manual_seed(run.seed)
        members.append(build_network(run.settings, data.input_shape, data.num_classes))
    cuda = device.type == "cuda"
    net = StackedNet.from_members(template, members, device, channels_last=cuda, conv_loop=not cuda)
    for name, layer in net.layers.named_children():
        if layer.random:
            layer.generators = [
                torch.Generator(device=device).manual_seed(mask_seed(run, name)) for run in runs
            ]
    return net, template


@torch.no_grad()
def evaluate_stack(
    net: StackedNet, split: Split, chunk: int = EVAL_BATCH, autocast: bool = False
) -> list[tuple]:
    """Each member's ``(mean cross-entropy, accuracy)`` on ``split`` in eval mode (Nones if empty)."""
    n = len(split)
    if n == 0:
        return [(None, None)] * net.size
    net.eval()
    device = split.x.device
    loss_sum = torch.zeros(net.size, device=device)
    correct = torch.zeros(net.size, device=device)
    for x, y in zip(split.x.split(chunk), split.y.split(chunk), strict=True):
        with _autocast(device, autocast):
            logits = net(x, "shared")
        loss_sum += member_losses(logits, y.expand(net.size, -1)).sum(1)
        correct += (predictions(logits) == y).sum(1)
    return list(zip((loss_sum / n).tolist(), (correct / n).tolist(), strict=True))


def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


class StackedEngine:
    """Trains K >= 1 runs of one :func:`stack_key` side by side as one :class:`StackedNet`.

    ``autocast`` (default: on CUDA) runs forward passes under bf16 autocast.
    """

    name = "stacked"

    def __init__(
        self, runs: list[RunSpec], data: PreparedData, device: torch.device, autocast: bool | None = None
    ) -> None:
        if len({stack_key(run) for run in runs}) != 1:
            raise ValueError("a stack needs runs with one stack_key; group them with plan_stacks")
        s = runs[0].settings
        self.runs, self.data, self.device, self.batch_size = runs, data, device, s.batch_size
        self.autocast = device.type == "cuda" if autocast is None else autocast
        self.dtype = "bf16-autocast" if self.autocast else "float32"
        self.net, self.template = build_stack(runs, data, device)
        self.penalized = penalized(self.net)
        free = undecayed(self.net)
        self.optimizer = StackedOptimizer(
            list(self.net.parameters()),
            s.optimizer.name,
            [r.settings.optimizer.lr for r in runs],
            [r.settings.optimizer.weight_decay for r in runs],
            [r.settings.optimizer.momentum for r in runs],
            undecayed={i for i, p in enumerate(self.net.parameters()) if id(p) in free},
        )
        self.order_rngs = [torch.Generator(device="cpu").manual_seed(run.seed) for run in runs]
        # one augmentation stream per seed: runs of one seed draw the same batches and the same crops
        self.augment_rngs = (
            {run.seed: augmentation_generator(run.seed, device) for run in runs} if s.augment else {}
        )
        self.max_norm = torch.tensor([r.settings.max_norm or math.inf for r in runs], device=device)
        self.live = list(range(len(runs)))  # the run of each stack position
        room = memory_budget(device) // (4 * len(runs) * max(per_sample_floats(
            stack_rows(s.layers, s.dropout, data), data.input_shape), 1))  # fmt: skip
        self.eval_chunk = int(max(64, min(EVAL_BATCH, room)))

    def train_epoch(self) -> list[tuple[float, float]]:
        """One pass over the training split, each member in its own order: its (mean loss, accuracy).

        The loss is each member's data loss (cross-entropy, label-smoothed with
        ``label_smoothing``) before layers' penalties, as the single engine records it; each
        step minimises the members' summed losses plus the penalties (concrete dropout's).

        Members in a row with the same order share each gathered batch (:func:`order_groups`),
        unless the network starts with images, which are gathered per member straight into
        ``(B, M*C, H, W)``.
        """
        net, data, device = self.net, self.data, self.device
        net.train()
        n = len(data.train)
        orders = torch.stack([torch.randperm(n, generator=self.order_rngs[i]) for i in self.live]).to(device)
        members = len(self.live)
        group_sizes = None
        if not net.image_input:
            distinct, sizes = order_groups(orders)
            if len(sizes) < members:  # else the groups are the members
                orders, group_sizes = distinct, sizes
        loss_sum = torch.zeros(members, device=device)
        correct = torch.zeros(members, device=device)
        flat_x = data.train.x.reshape(n, -1)  # rows picked by index_select: faster than x[idx]
        sample_shape = data.train.x.shape[1:]
        params = list(net.parameters())
        s = self.runs[0].settings
        seeds = [self.runs[i].seed for i in self.live]
        row_seeds = [seeds[sum(group_sizes[:g])] for g in range(len(group_sizes))] if group_sizes else seeds
        clip = bool(torch.isfinite(self.max_norm).any())
        for idx in orders.split(self.batch_size, dim=1):
            b = idx.shape[1]
            y = data.train.y.index_select(0, idx.flatten()).view(idx.shape)
            if net.image_input:  # gathered straight into (B, M*C, H, W)
                x, layout = flat_x.index_select(0, idx.t().flatten()).view(b, -1, *sample_shape[1:]), "image"
            elif group_sizes:
                x, layout = flat_x.index_select(0, idx.flatten()).view(len(idx), b, *sample_shape), "grouped"
                y = ungroup(y, group_sizes)
            else:
                x, layout = flat_x.index_select(0, idx.flatten()).view(members, b, *sample_shape), "member"
            if s.augment:
                x = self.augment(x, layout, row_seeds, sample_shape)
            with _autocast(device, self.autocast):
                logits = net(x, layout, group_sizes)
            losses = member_losses(logits, y, s.label_smoothing).sum(1)  # each member's summed loss
            objective = losses.sum() / b
            if self.penalized:
                objective = objective + penalty(self.penalized)
            self.optimizer.step(params, torch.autograd.grad(objective, params))
            if clip:
                apply_stacked_max_norm(net, self.max_norm)
            loss_sum += losses.detach()  # summed on the device: no sync per step
            correct += (predictions(logits.detach()) == y).sum(1)
        return list(zip((loss_sum / n).tolist(), (correct / n).tolist(), strict=True))

    def augment(self, x: torch.Tensor, layout: str, row_seeds: list[int], sample_shape) -> torch.Tensor:
        """A gathered batch augmented: one draw per seed (rows of one seed get the same crops)."""
        ops, height = self.runs[0].settings.augment, sample_shape[1]
        draws = {}
        for seed in row_seeds:
            if seed not in draws:
                draws[seed] = draw_augmentation(ops, x.shape[1 if layout != "image" else 0], height,
                                                self.augment_rngs[seed])  # fmt: skip
        rows = [draws[seed] for seed in row_seeds]
        joined = Augmentation(
            None if rows[0].flip is None else torch.cat([r.flip for r in rows]),
            None if rows[0].shift is None else torch.cat([r.shift for r in rows]),
            rows[0].pad,
        )
        if layout == "image":  # (B, M*C, H, W): each member's images apart, then back
            b = x.shape[0]
            per_member = x.view(b, len(rows), *sample_shape).transpose(0, 1).flatten(0, 1)
            out = apply_augmentation(per_member, joined).view(len(rows), b, *sample_shape)
            return out.transpose(0, 1).reshape(x.shape)
        return apply_augmentation(x.flatten(0, 1), joined).view(x.shape)

    def evaluate(self, split: Split) -> list[tuple[float | None, float | None]]:
        """Each live member's (mean loss, accuracy) on ``split`` in eval mode, one wide pass."""
        return evaluate_stack(self.net, split, self.eval_chunk, self.autocast)

    def learned_rates(self) -> list[dict[str, float]]:
        """Each live member's ``{slot: rate}`` of its ``concrete`` dropout layers (empty without)."""
        out: list[dict[str, float]] = [{} for _ in self.live]
        slots = {name: getattr(module, "slot", name) for name, module in self.template.named_children()}
        for name, layer in self.net.layers.named_children():
            if isinstance(layer, StackedConcreteDropout):
                for pos, (rate, active) in enumerate(
                    zip(layer.current_rates(), layer.active.tolist(), strict=True)
                ):
                    if active:
                        out[pos][slots[name]] = rate
        return out

    def member_state(self, position: int) -> dict[str, torch.Tensor]:
        """A copy of the weights of the member at ``position``."""
        return self.net.member_state(position)

    def keep_members(self, positions: list[int]) -> None:
        """Keep the members at ``positions``; the others leave the stack."""
        self.net.select(positions)
        self.optimizer.select(positions)
        self.max_norm = self.max_norm[positions]
        self.live = [self.live[pos] for pos in positions]

    def state(self) -> dict[str, Any]:
        """The live members' weights and optimizer state, and every generator: batch orders,
        each dropout layer's masks, augmentation's."""
        return {
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "order_rngs": [g.get_state() for g in self.order_rngs],
            "mask_rngs": {
                name: [g.get_state() for g in layer.generators]
                for name, layer in self.net.layers.named_children()
                if layer.random
            },  # fmt: skip
            "augment_rngs": {str(seed): g.get_state() for seed, g in self.augment_rngs.items()},
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Take up training where :meth:`state` left it (the same members kept)."""
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        for g, saved in zip(self.order_rngs, state["order_rngs"], strict=True):
            g.set_state(saved)
        layers = dict(self.net.layers.named_children())
        for name, saved in state["mask_rngs"].items():
            for g, st in zip(layers[name].generators, saved, strict=True):
                g.set_state(st)
        for seed, g in self.augment_rngs.items():
            g.set_state(state["augment_rngs"][str(seed)])

    def test(self, indices: list[int], states: list[dict[str, torch.Tensor]]) -> list[tuple[float, float]]:
        """The test loss and accuracy of the runs at ``indices`` with weights ``states``, in one stack."""
        members = []
        with torch.random.fork_rng(devices=[]):  # only the shapes of these models are used
            for i, state in zip(indices, states, strict=True):
                model = build_network(self.runs[i].settings, self.data.input_shape, self.data.num_classes)
                model.load_state_dict(state)
                members.append(model)
        cuda = self.device.type == "cuda"
        final = StackedNet.from_members(self.template, members, self.device, channels_last=cuda)
        return evaluate_stack(final, self.data.test, self.eval_chunk, self.autocast)
