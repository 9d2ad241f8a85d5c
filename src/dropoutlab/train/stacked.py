"""Stacked training: the runs of one stack trained together, as one batched network.

Runs whose networks have the same shapes (same layer list, data, batch size, epochs,
optimizer kind, ...: :func:`stack_key`) are trained in one loop over a
:class:`~dropoutlab.layers.stacked.StackedNet`. Each member keeps everything that makes it
its own run:

* its initial weights: built with ``torch.manual_seed(run.seed)`` then ``build_model`` as in
  :func:`~dropoutlab.train.loop.train_run`, so the same seed starts from the same weights;
* its data order: ``torch.randperm`` from ``torch.Generator().manual_seed(run.seed)``,
  one permutation per epoch, as in ``train_run``; members with the same seed, side by side
  in a stack, share each gathered batch (:func:`order_groups`);
* its dropout rates (a per-member tensor; rate 0 is exactly the identity) and its own masks,
  drawn from a generator per member and dropout layer seeded by the run's id and the layer,
  so a run's masks do not depend on which runs share its stack (or on ``--stack``, or on a
  resume). They differ from those of ``train_run`` (PyTorch's ``F.dropout``), so with
  dropout a stacked run equals a one-by-one run in distribution, not bit for bit; with every
  rate 0 the two agree to float rounding;
* its learning rate, weight decay, momentum and optimizer state (:class:`StackedOptimizer`);
* its early stopping (patience, min_delta) and divergence: a member that stops, or whose
  training loss is not finite, leaves the stack at the end of that epoch and keeps its weights
  (the best ones with ``restore_best``); the others go on, untouched.

Timing: each member's ``wall_s`` is the stack's wall time divided by its number of members
(``env["stack"]`` holds the stack's size and total wall time).

On CUDA the forward passes run under bf16 autocast with channels-last images; on the CPU
everything is float32.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from dropoutlab.data.prepare import PreparedData, Split
from dropoutlab.errors import DropoutlabError
from dropoutlab.layers.dropout import Dropout
from dropoutlab.layers.stacked import StackedNet, ungroup
from dropoutlab.models import build_model, summarize_model
from dropoutlab.study.grid import RunSpec
from dropoutlab.train.early_stopping import EarlyStopping
from dropoutlab.train.loop import EVAL_BATCH, RunResult, best_epoch_of, diverged_record, environment

CPU_BUDGET = 1 << 30  # bytes of parameters, optimizer state and activations per stack on the CPU
CPU_CACHE_BUDGET = 64 << 20  # bytes of weights and optimizer state per stack on the CPU
CUDA_BUDGET_FRACTION = 0.5  # of the free GPU memory
# members per stack with --stack auto, beyond the memory bound. On the CPU, 12: per member a
# step costs the same in stacks of 4 to 24 (seed 001's MLP), and a sweep of 24 runs then makes
# two stacks that two worker processes train side by side.
AUTO_MAX = {"cpu": 12, "cuda": 256}
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def stack_key(run: RunSpec) -> tuple:
    """What runs must share to train in one stack.

    Everything but the per-member settings: seed, dropout rates, learning rate, weight decay,
    momentum, early-stopping patience and min_delta.
    """
    s = run.settings
    es = s.early_stopping
    return (
        s.dataset, s.validation, s.split_seed, s.normalize, s.layers, tuple(s.dropout),
        s.epochs, s.batch_size, s.init, s.eval_train, s.optimizer.name,
        (es.monitor, es.restore_best) if es else None,
    )  # fmt: skip


def member_bytes(run: RunSpec, data: PreparedData) -> tuple[int, int]:
    """Estimated training memory of one member in bytes (float32): ``(total, weights and state)``.

    Weights and state are the parameters, their gradient and the optimizer state (two
    moments for adam, a momentum buffer for sgd) plus one best copy with early stopping;
    the total adds the activations of a batch three times over (kept for the backward
    pass, their gradients, dropout masks).
    """
    s = run.settings
    rows = _stack_rows(s.layers, s.dropout, data)
    params = sum(r.params for r in rows)
    per_sample = _per_sample_floats(rows, data.input_shape)
    copies = 4 if s.optimizer.name in ("adam", "adamw") else 3
    copies += 1 if s.early_stopping else 0
    state = 4 * params * copies
    return state + 4 * 3 * s.batch_size * per_sample, state


def plan_stacks(
    runs: list[RunSpec], data: PreparedData, device: torch.device, stack: str | int
) -> list[list[RunSpec]]:
    """Group ``runs`` by :func:`stack_key` and cut each group into stacks.

    ``stack`` is the most members per stack (a whole number), or ``"auto"``: as many as fit
    a memory budget (see :func:`member_bytes`): half the free memory on CUDA; on the CPU
    1 GiB per stack (per worker process), and at most ``CPU_CACHE_BUDGET`` of weights and
    optimizer state, because a CPU step streams them through the caches (measured: seed
    001's MLP runs as fast per member in stacks of 4 to 24, 1.6 MB each; seed 000's CNN,
    90 MB each, is fastest alone). At most ``AUTO_MAX`` members either way. A group is cut
    into stacks of nearly equal sizes, its runs ordered by seed (stable), so that runs with
    the same seed, which draw the same batches, sit side by side (see :func:`order_groups`).
    A run's results do not depend on the plan (see :func:`mask_generators`), only its speed
    does.
    """
    groups: dict[tuple, list[RunSpec]] = {}
    for run in sorted(runs, key=lambda run: run.seed):
        groups.setdefault(stack_key(run), []).append(run)
    stacks: list[list[RunSpec]] = []
    for group in groups.values():
        if stack == "auto":
            total, state = member_bytes(group[0], data)
            limit = _budget(device) // total
            if device.type == "cpu":
                limit = min(limit, CPU_CACHE_BUDGET // state)
            limit = max(1, min(limit, AUTO_MAX.get(device.type, AUTO_MAX["cuda"])))
        elif isinstance(stack, int) and not isinstance(stack, bool) and stack >= 1:
            limit = stack
        else:
            raise DropoutlabError(
                f"--stack: {stack!r} is not allowed; allowed: auto, off or a whole number >= 1"
            )
        count = math.ceil(len(group) / limit)
        size, extra = divmod(len(group), count)
        start = 0
        for i in range(count):
            end = start + size + (1 if i < extra else 0)
            stacks.append(group[start:end])
            start = end
    return stacks


def _budget(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * CUDA_BUDGET_FRACTION)
    return CPU_BUDGET


def _all_slots(rates: dict[str, float]) -> dict[str, float]:
    # every slot present (any rate > 0 adds the layer), so all members share one structure
    return dict.fromkeys(rates, 0.5)


class StackedOptimizer:
    """Adam, AdamW or SGD over stacked parameters, with each member's own hyperparameters.

    Each member is updated exactly as ``torch.optim`` would update it alone: for ``adam``
    weight decay is L2 added to the gradient, for ``adamw`` it is decoupled
    (``p *= 1 - lr * wd``), both with bias correction and ``eps`` added to
    ``sqrt(v / (1 - beta2^t))``; for ``sgd`` weight decay is L2 added to the gradient and the
    momentum buffer starts at the first gradient. Members with equal hyperparameters are
    updated by one call to PyTorch's fused kernel; without one (old PyTorch, other devices)
    the same formulas run as tensor operations with per-member hyperparameter tensors.
    """

    def __init__(
        self,
        params: list[torch.Tensor],
        name: str,
        lrs: list[float],
        weight_decays: list[float],
        momenta: list[float],
        fused: bool | None = None,
    ) -> None:
        self.name = name
        self.hyper = [(lr, wd, mo) for lr, wd, mo in zip(lrs, weight_decays, momenta, strict=True)]
        kinds = 2 if name in ("adam", "adamw") else 1
        self.state = [[torch.zeros_like(p, memory_format=torch.contiguous_format) for _ in range(kinds)]
                      for p in params]  # fmt: skip
        self.steps = 0
        self._step_t = torch.zeros((), device=params[0].device)
        self.fused = _has_fused_kernels(params[0].device) if fused is None else fused

    def select(self, keep_idx: list[int]) -> None:
        """Keep the state of the members at positions ``keep_idx`` only."""
        index = torch.tensor(keep_idx, device=self._step_t.device)
        self.hyper = [self.hyper[i] for i in keep_idx]
        self.state = [[s.index_select(0, index) for s in states] for states in self.state]

    @torch.no_grad()
    def step(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        """One update of every member (``params`` are updated in place)."""
        self.steps += 1
        self._step_t.fill_(self.steps)
        # the fused kernels read tensors as flat arrays: parameter and gradient layouts must agree
        grads = [g if g.is_contiguous() else g.contiguous() for g in grads]
        if self.fused:
            self._fused_step(params, grads)
        else:
            self._manual_step(params, grads)

    def _groups(self) -> list[tuple[tuple[float, float, float], list[int] | None]]:
        """Members with equal hyperparameters, each group updated by one kernel call."""
        groups: dict[tuple, list[int]] = {}
        for i, h in enumerate(self.hyper):
            groups.setdefault(h, []).append(i)
        if len(groups) == 1:
            return [(next(iter(groups)), None)]  # None: the whole stack, no per-member views
        return list(groups.items())

    def _fused_step(self, params, grads) -> None:
        for (lr, wd, momentum), members in self._groups():
            ps, gs = _members(params, members), _members(grads, members)
            if self.name == "sgd":
                bufs = _members([s[0] for s in self.state], members) if momentum else []
                torch._fused_sgd_(ps, gs, bufs, weight_decay=wd, momentum=momentum, lr=lr, dampening=0.0,
                                  nesterov=False, maximize=False, is_first_step=False)  # fmt: skip
            else:
                kernel = torch._fused_adam_ if self.name == "adam" else torch._fused_adamw_
                ms = _members([s[0] for s in self.state], members)
                vs = _members([s[1] for s in self.state], members)
                kernel(ps, gs, ms, vs, [], [self._step_t] * len(ps), lr=lr, beta1=ADAM_BETAS[0],
                       beta2=ADAM_BETAS[1], weight_decay=wd, eps=ADAM_EPS, amsgrad=False, maximize=False)  # fmt: skip

    def _manual_step(self, params, grads) -> None:
        device = params[0].device
        lr, wd, momentum = (torch.tensor(v, device=device) for v in zip(*self.hyper, strict=True))
        for p, g, state in zip(params, grads, self.state, strict=True):
            shape = (-1,) + (1,) * (p.dim() - 1)
            p_lr, p_wd, p_mo = lr.view(shape), wd.view(shape), momentum.view(shape)
            if self.name == "adamw":
                p.mul_(1 - p_lr * p_wd)
            else:
                g = g + p_wd * p
            if self.name == "sgd":
                buf = state[0]
                buf.mul_(p_mo).add_(g)  # zeros at first: the buffer starts at the first gradient
                p.sub_(p_lr * buf)
                continue
            b1, b2 = ADAM_BETAS
            m, v = state
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / math.sqrt(1 - b2**self.steps)).add_(ADAM_EPS)
            p.sub_(m / denom * (p_lr / (1 - b1**self.steps)))


def _members(tensors: list[torch.Tensor], members: list[int] | None) -> list[torch.Tensor]:
    """The stacked ``tensors`` whole (``members`` None) or as per-member views."""
    return list(tensors) if members is None else [t[i] for t in tensors for i in members]


def _has_fused_kernels(device: torch.device) -> bool:
    """Whether PyTorch has fused Adam/AdamW/SGD kernels for ``device`` (CPU ones came in 2.4)."""
    try:
        p, g, m, v = (torch.zeros(1, device=device) for _ in range(4))
        step = torch.ones((), device=device)
        torch._fused_adam_([p], [g], [m], [v], [], [step], lr=0.1, beta1=0.9, beta2=0.999,
                           weight_decay=0.0, eps=1e-8, amsgrad=False, maximize=False)  # fmt: skip
        torch._fused_sgd_([p], [g], [], weight_decay=0.0, momentum=0.0, lr=0.1, dampening=0.0,
                          nesterov=False, maximize=False, is_first_step=False)  # fmt: skip
        return True
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


class _MemberView:
    """What :class:`EarlyStopping` snapshots for one member: its weights, as a state dict."""

    def __init__(self, net: StackedNet, position: int) -> None:
        self.net, self.position = net, position

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.net.member_state(self.position)


def mask_generators(
    runs: list[RunSpec], template: nn.Sequential, device: torch.device
) -> dict[str, list[torch.Generator]]:
    """For each dropout layer of ``template``, one generator per run, seeded by the run's id
    and the layer's name: what makes a member's masks its own, whatever its stack."""
    return {
        name: [torch.Generator(device=device).manual_seed(_mask_seed(run, name)) for run in runs]
        for name, module in template.named_children()
        if isinstance(module, Dropout)
    }


def _mask_seed(run: RunSpec, layer: str) -> int:
    return int(hashlib.sha256(f"{run.id}/{layer}".encode()).hexdigest()[:15], 16)


def _autocast(device: torch.device):
    if device.type != "cuda":
        return contextlib.nullcontext()  # float32 on the CPU
    return torch.autocast("cuda", dtype=torch.bfloat16)


def member_losses(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each member's every sample: ``logits`` ``(M, B, classes)``, ``y`` ``(M, B)``.

    The classes are read along the middle axis of a transposed view: PyTorch's CPU
    log-softmax is slow over a short contiguous last axis (measured on 24 x 64 x 10 logits,
    forward and backward: 66 us this way, 175 us the plain way).
    """
    return F.cross_entropy(logits.float().transpose(1, 2), y, reduction="none")


def predictions(logits: torch.Tensor) -> torch.Tensor:
    """The predicted class of each sample (the first of tied maxima, as ``argmax``).

    ``max().indices`` rather than ``argmax``: 3x faster on the CPU for 10 classes.
    """
    return logits.max(-1).indices


@torch.no_grad()
def evaluate_stack(net: StackedNet, split: Split, chunk: int = EVAL_BATCH) -> tuple[list, list]:
    """Each member's mean cross-entropy and accuracy on ``split`` in eval mode (Nones if empty)."""
    n = len(split)
    if n == 0:
        return [None] * net.size, [None] * net.size
    device = split.x.device
    loss_sum = torch.zeros(net.size, device=device)
    correct = torch.zeros(net.size, device=device)
    for x, y in zip(split.x.split(chunk), split.y.split(chunk), strict=True):
        with _autocast(device):
            logits = net.forward(x, "shared", training=False)
        loss_sum += member_losses(logits, y.expand(net.size, -1)).sum(1)
        correct += (predictions(logits) == y).sum(1)
    return (loss_sum / n).tolist(), (correct / n).tolist()


def _eval_chunk(net: StackedNet, per_sample_floats: int, device: torch.device) -> int:
    room = _budget(device) // (4 * net.size * max(per_sample_floats, 1))
    return int(max(64, min(EVAL_BATCH, room)))


def _stack_rows(layers, rates: dict[str, float], data: PreparedData):
    """The layer rows (output shapes, parameter counts) of a stack's network, every slot present."""
    return summarize_model(layers, _all_slots(rates), data.input_shape, data.num_classes)


def _per_sample_floats(rows, input_shape) -> int:
    """Floats one sample occupies through the network: its input and every layer's output."""
    return math.prod(input_shape) + sum(math.prod(r.output_shape) for r in rows)


def build_stack(
    runs: list[RunSpec], data: PreparedData, device: torch.device
) -> tuple[StackedNet, nn.Sequential]:
    """The stacked network of ``runs`` and its template (the layer list with every slot present).

    Each member starts from exactly ``train_run``'s weights: ``torch.manual_seed(run.seed)``
    then ``build_model`` with the run's own rates (a slot's dropout holds no weights, so
    which slots exist does not change them).
    """
    s = runs[0].settings
    with torch.random.fork_rng(devices=[]):  # the template's own weights are never used
        template = build_model(s.layers, _all_slots(s.dropout), data.input_shape, data.num_classes)
    states = []
    for run in runs:
        torch.manual_seed(run.seed)
        model = build_model(s.layers, run.settings.dropout, data.input_shape, data.num_classes, init=s.init)
        states.append(model.state_dict())
    cuda = device.type == "cuda"
    net = StackedNet(template, states, _keeps(template, runs), device, channels_last=cuda, conv_loop=not cuda)
    return net, template


def _keeps(template: nn.Sequential, runs: list[RunSpec]) -> dict[str, list[float]]:
    """Each member's keep probability (1 - rate) at each dropout layer of the template."""
    return {
        name: [1.0 - (run.settings.dropout[module.slot] if module.slot else module.p) for run in runs]
        for name, module in template.named_children()
        if isinstance(module, Dropout)
    }


def order_groups(orders: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """``orders`` ``(M, n)`` without repeats: ``(distinct orders (G, n), group sizes)``.

    Consecutive members with the same order (runs with the same seed) form a group, whose
    batches are gathered once for all of them.
    """
    firsts = [0] + [i for i in range(1, len(orders)) if not torch.equal(orders[i], orders[i - 1])]
    sizes = [end - start for start, end in zip(firsts, firsts[1:] + [len(orders)], strict=True)]
    return orders[firsts], sizes


def _train_epoch(net, opt, data, orders, batch_size, mask_rngs, device) -> tuple[list[float], list[float]]:
    """One pass over the training split, each member in its own order (``orders`` ``(M, n)``).

    Members in a row with the same order share each gathered batch (:func:`order_groups`),
    unless the network starts with images, which are gathered per member straight into
    ``(B, M*C, H, W)``. Returns each member's mean training loss and accuracy (dropout on),
    as train_run does.
    """
    members, n = orders.shape
    group_sizes = None
    if not net.image_input:
        distinct, sizes = order_groups(orders)
        if len(sizes) < members:  # else the groups are the members
            orders, group_sizes = distinct, sizes
    loss_sum = torch.zeros(members, device=device)
    correct = torch.zeros(members, device=device)
    flat_x = data.train.x.reshape(n, -1)  # rows picked by index_select: faster than x[idx]
    sample_shape = data.train.x.shape[1:]
    for idx in orders.split(batch_size, dim=1):
        b = idx.shape[1]
        y = data.train.y.index_select(0, idx.flatten()).view(idx.shape)
        if net.image_input:  # gathered straight into (B, M*C, H, W)
            x, layout = flat_x.index_select(0, idx.t().flatten()).view(b, -1, *sample_shape[1:]), "image"
        elif group_sizes:
            x, layout = flat_x.index_select(0, idx.flatten()).view(len(idx), b, *sample_shape), "grouped"
            y = ungroup(y, group_sizes)
        else:
            x, layout = flat_x.index_select(0, idx.flatten()).view(members, b, *sample_shape), "member"
        with _autocast(device):
            logits = net.forward(x, layout, training=True, generators=mask_rngs, group_sizes=group_sizes)
        losses = member_losses(logits, y).sum(1)  # each member's summed loss over its batch
        opt.step(net.params, torch.autograd.grad(losses.sum() / b, net.params))
        loss_sum += losses.detach()  # summed on the device: no sync per step
        correct += (predictions(logits.detach()) == y).sum(1)
    return (loss_sum / n).tolist(), (correct / n).tolist()


def train_stack(
    runs: list[RunSpec],
    data: PreparedData,
    device: torch.device,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> list[RunResult]:
    """Train ``runs`` (all with the same :func:`stack_key`) as one stack; one result per run, in order.

    Results have the same fields and meaning as :func:`~dropoutlab.train.loop.train_run`'s.
    ``on_epoch`` is called once per stack epoch with ``{"epoch": e, "members": n}``, ``n``
    the members still training during that epoch. A stack of one member is trained here
    too (on the CPU it is faster than ``train_run`` for networks that do not gain from stacking).
    """
    if len({stack_key(run) for run in runs}) != 1:
        raise ValueError("train_stack needs runs with one stack_key; group them with plan_stacks")
    start = time.perf_counter()
    s, size, es = runs[0].settings, len(runs), runs[0].settings.early_stopping
    net, template = build_stack(runs, data, device)
    opt = StackedOptimizer(
        net.params,
        s.optimizer.name,
        [r.settings.optimizer.lr for r in runs],
        [r.settings.optimizer.weight_decay for r in runs],
        [r.settings.optimizer.momentum for r in runs],
    )
    order_rngs = [torch.Generator(device="cpu").manual_seed(run.seed) for run in runs]  # as train_run
    mask_rngs = mask_generators(runs, template, device)
    stoppers = [EarlyStopping(es.monitor, r.settings.early_stopping.patience, r.settings.early_stopping.min_delta)
                if es else None for r in runs]  # fmt: skip
    chunk = _eval_chunk(
        net, _per_sample_floats(_stack_rows(s.layers, s.dropout, data), data.input_shape), device
    )
    histories: list[list[dict[str, Any]]] = [[] for _ in runs]
    statuses = ["completed"] * size
    kept: list[dict[str, torch.Tensor] | None] = [None] * size  # the weights each member ends with
    live = list(range(size))  # the run of each stack position

    for epoch in range(1, s.epochs + 1):
        orders = torch.stack([torch.randperm(len(data.train), generator=order_rngs[i]) for i in live])
        train_loss, train_acc = _train_epoch(
            net, opt, data, orders.to(device), s.batch_size, mask_rngs, device
        )
        val = evaluate_stack(net, data.val, chunk)
        train_eval = (
            evaluate_stack(net, data.train_eval, chunk) if s.eval_train else ([None] * len(live),) * 2
        )
        leaving: list[int] = []
        for pos, i in enumerate(live):
            metrics = {"epoch": epoch, "train_loss": train_loss[pos], "train_acc": train_acc[pos]}
            if not math.isfinite(metrics["train_loss"]):
                statuses[i] = "diverged"
                histories[i].append(diverged_record(metrics))
                leaving.append(pos)
                continue
            metrics["val_loss"], metrics["val_acc"] = val[0][pos], val[1][pos]
            metrics["train_eval_loss"], metrics["train_eval_acc"] = train_eval[0][pos], train_eval[1][pos]
            histories[i].append(metrics)
            if stoppers[i]:
                stoppers[i].update(epoch, metrics, _MemberView(net, pos))
            if (stoppers[i] and stoppers[i].should_stop) or epoch == s.epochs:
                leaving.append(pos)
        if on_epoch:
            on_epoch({"epoch": epoch, "members": len(live)})
        for pos in leaving:  # a member that stops keeps its best (or last) weights and leaves
            i = live[pos]
            if statuses[i] == "completed":
                best = stoppers[i] and es.restore_best and stoppers[i].best_state
                kept[i] = best if best else net.member_state(pos)
                stoppers[i] = stoppers[i] and _Finished(stoppers[i])  # drop its snapshot
        if leaving:
            stay = [pos for pos in range(len(live)) if pos not in leaving]
            live = [live[pos] for pos in stay]
            if not live:
                break
            net.select(stay)
            opt.select(stay)
            mask_rngs = {name: [gens[pos] for pos in stay] for name, gens in mask_rngs.items()}

    tests = _test(template, runs, kept, statuses, data, device, chunk)
    wall = time.perf_counter() - start
    env = {**environment(device), "stack": {"size": size, "wall_s": wall}}
    return [_result(run, statuses[i], histories[i], stoppers[i], tests.get(i, (None, None)), wall / size, env)
            for i, run in enumerate(runs)]  # fmt: skip


def _test(template, runs, kept, statuses, data, device, chunk) -> dict[int, tuple[float, float]]:
    """Test loss and accuracy of each completed run's kept weights, all in one stack."""
    done = [i for i, status in enumerate(statuses) if status == "completed"]
    if not done:
        return {}
    keeps = _keeps(template, [runs[i] for i in done])
    final = StackedNet(template, [kept[i] for i in done], keeps, device, channels_last=device.type == "cuda")
    losses, accs = evaluate_stack(final, data.test, chunk)
    return {i: (losses[pos], accs[pos]) for pos, i in enumerate(done)}


def _result(run, status, history, stopper, test, wall_s, env) -> RunResult:
    """A RunResult exactly as train_run fills it in."""
    return RunResult(
        run=run,
        status=status,
        history=history,
        test={"loss": test[0], "acc": test[1]},
        best_epoch=best_epoch_of(history, stopper, status),
        stopped_epoch=history[-1]["epoch"] if history else None,
        wall_s=wall_s,
        env=env,
    )


class _Finished:
    """The numbers of a finished member's :class:`EarlyStopping`, without its weight snapshot."""

    def __init__(self, stopper: EarlyStopping) -> None:
        self.best_epoch = stopper.best_epoch
