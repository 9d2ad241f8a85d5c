"""The functional engine: M runs of one user ``nn.Module`` trained at once through ``torch.func``.

A user's model is any ``nn.Module`` (issue 27), so it has no stacked form layer by layer as
the layer-list models have (:mod:`dropoutlab.train.stacked`). Instead the members' weights
are stacked (``torch.func.stack_module_state``: one tensor per parameter, the member axis
first) and one forward pass of the model is mapped over them (``torch.func.vmap`` of
``torch.func.functional_call``). Each member keeps everything that makes it its own run, as
:class:`~dropoutlab.train.single.SingleEngine` would train it alone:

* its initial weights: ``torch.manual_seed(run.seed)`` then the run's own model, as the
  single engine builds it;
* its data order: ``torch.randperm`` from ``torch.Generator().manual_seed(run.seed)``, and its
  augmentation from its own generator (:func:`~dropoutlab.train.augment.augmentation_generator`);
* its dropout rates and its own masks. **Design:** each dropout submodule (a *slot*) of the
  template model is replaced by a :class:`NoiseSlot`, which in training computes
  ``x * multiplier (+ offset)`` from tensors passed into the mapped function. Those tensors
  are drawn per member, *outside* ``vmap``, before each step, from a generator per member
  that starts where the global generator stands after the member's model is built (where
  the single engine's ``F.dropout`` draws its masks from). They are drawn as the module's own
  forward draws them, in the order the slots are called, with the member's own rate at that
  slot (:func:`draw_noise`: ``bernoulli_(1 - p)`` then ``/ (1 - p)`` for ``nn.Dropout``, the
  feature-wise shape for ``Dropout1d/2d/3d``, ATen's affine form for the alpha kinds, the
  kinds' own functions for dropoutlab's ``gaussian``, ``spatial``, ``dropblock``, ``alpha``),
  so on the CPU a member's masks are bit for bit the single engine's, and a stacked run's
  history equals the single engine's to float rounding (a rate of 0 draws nothing, as
  ``F.dropout`` draws nothing). The shapes of a step's slots come from one recording pass
  per batch size (:meth:`FunctionalEngine.slot_calls`). ``vmap`` runs with
  ``randomness="error"``: any other random operation inside the model is refused, not
  silently shared between members. On CUDA, ``F.dropout`` draws with a fused kernel, so
  there the masks follow the same law but not the same bits;
* its learning rate, weight decay, momentum and optimizer state
  (:class:`~dropoutlab.train.optim.StackedOptimizer` over the stacked parameters), and its
  max-norm bound.

On the CPU, a model with convolutions runs its members' passes one after another on their
slices of the stacked weights instead of through ``vmap`` (:class:`FunctionalEngine`'s
``loop``): the same noise, the same numbers, and the optimizer step, batches and evaluation
still shared.

Where a model's modules do not allow this (batch norm updating running statistics in
training, a random module without a functional form here), the plan says why in one line
(:func:`functional_reason`, through :func:`~dropoutlab.train.plan.trains_alone`) and the runs
train one at a time. What only a pass shows (data-dependent control flow, a random operation
of the model's own, an in-place write ``vmap`` refuses) refuses the stack when the engine is
built, before any training (:class:`NotStackable`, logged with its reason), and the runner
then trains its runs one by one.
Early stopping, divergence, restore-best, checkpoints and MC dropout are the loop's
(:func:`~dropoutlab.train.loop.train_runs`), as for the other engines.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.nn import functional as F

from dropoutlab.data.prepare import PreparedData, Split
from dropoutlab.layers.dropout import Dropout as LabDropout
from dropoutlab.layers.kinds import (
    AlphaDropout as LabAlphaDropout,
)
from dropoutlab.layers.kinds import (
    DropBlock,
    GaussianDropout,
    SpatialDropout,
    alpha_constants,
    drop_block,
    gaussian_dropout,
    spatial_dropout,
)
from dropoutlab.models import build_network, dropout_kinds
from dropoutlab.runs import RunSpec
from dropoutlab.train.augment import apply_augmentation, augmentation_generator, draw_augmentation
from dropoutlab.train.optim import StackedOptimizer
from dropoutlab.train.regularizers import clip_norms
from dropoutlab.train.single import EVAL_BATCH

Weights = dict[str, torch.Tensor]
log = logging.getLogger(__name__)

# ATen's alpha dropout constant (SELU's lambda * alpha), as F.alpha_dropout uses it
ALPHA = 1.7580993408473766
BERNOULLI_KINDS = (nn.Dropout, LabDropout)
FEATURE_KINDS = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
ATEN_ALPHA_KINDS = (nn.AlphaDropout, nn.FeatureAlphaDropout)
MULTIPLIER_KINDS = (GaussianDropout, SpatialDropout, DropBlock)
#: Every dropout module the functional engine can draw the noise of (:func:`draw_noise`).
FUNCTIONAL_KINDS = (*BERNOULLI_KINDS, *FEATURE_KINDS, *ATEN_ALPHA_KINDS, *MULTIPLIER_KINDS, LabAlphaDropout)
#: PyTorch's dropout modules: each is a dropout slot (as are dropoutlab's kinds).
TORCH_DROPOUTS = (*BERNOULLI_KINDS[:1], *FEATURE_KINDS, *ATEN_ALPHA_KINDS)
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
INSTANCE_NORMS = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)


def member_losses(logits: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of each member's every sample: ``logits`` ``(M, B, classes)``, ``y`` ``(M, B)``.

    As :func:`dropoutlab.train.stacked.member_losses` (classes along a transposed middle axis,
    faster on the CPU), not imported from there: ``plan.py`` imports this module for the plan's
    reasons, and ``stacked.py`` imports ``plan.py``.
    """
    return F.cross_entropy(logits.transpose(1, 2), y, reduction="none", label_smoothing=label_smoothing)


def predictions(logits: torch.Tensor) -> torch.Tensor:
    """The predicted class of each sample (``max().indices``: faster than ``argmax`` on the CPU)."""
    return logits.max(-1).indices


class NotStackable(RuntimeError):
    """A model the functional engine cannot map over its members; the message is one line.

    Not a :class:`~dropoutlab.errors.DropoutlabError`: the runner trains such a stack's runs
    one by one instead (their numbers do not depend on their stack)."""


def is_dropout(module: nn.Module) -> bool:
    """Whether ``module`` is a dropout slot: PyTorch's dropout modules or a dropoutlab kind."""
    return isinstance(module, (*TORCH_DROPOUTS, *dropout_kinds().values()))


def functional_reason(model: nn.Module) -> str | None:
    """Why ``model``'s runs cannot train together through ``torch.func`` (one line), or None.

    Looks at the modules only: batch norm that updates running statistics in training (the
    mapped pass cannot write them back per member), a dropout kind or random module without
    a functional form here. What only a pass can show (an in-place write into shared data,
    data-dependent control flow) is refused by :class:`FunctionalEngine` when it builds
    (:class:`NotStackable`), and the runs then train one by one.
    """
    for path, module in model.named_modules():
        norms = BATCH_NORMS + INSTANCE_NORMS
        if isinstance(module, norms) and module.track_running_stats:
            return (
                f"{type(module).__name__} at {path!r} updates running statistics in training: "
                "this model's runs train one at a time"
            )
        random = is_dropout(module) or isinstance(module, nn.RReLU)
        if random and not isinstance(module, FUNCTIONAL_KINDS):
            what = getattr(module, "kind", None) or type(module).__name__
            return f"{what} at {path!r} has no functional form: this model's runs train one at a time"
    return None


# --- the noise of each dropout kind, drawn as the module's own forward draws it --------------


def bernoulli_noise(shape, p: float, dtype, device, generator) -> torch.Tensor:
    """ATen's dropout noise on the CPU: ``bernoulli_(1 - p)`` then ``/ (1 - p)`` (zeros at p = 1)."""
    if p == 1.0:
        return torch.zeros(shape, dtype=dtype, device=device)
    return (
        torch.empty(shape, dtype=dtype, device=device).bernoulli_(1.0 - p, generator=generator).div_(1.0 - p)
    )


def feature_shape(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The noise shape of a feature-wise dropout module for an input of ``shape``: one draw per
    sample and channel; ``Dropout1d``/``3d`` treat a 2-d/4-d input as one unbatched sample
    (drawn as ``(1, C, 1, ...)``, the same draws as ``(C, 1, ...)``)."""
    unbatched = (isinstance(module, nn.Dropout1d) and len(shape) == 2) or (
        isinstance(module, nn.Dropout3d) and len(shape) != 5
    )
    if unbatched:
        return (shape[0], *[1] * (len(shape) - 1))
    return (shape[0], shape[1], *[1] * (len(shape) - 2))


def draw_noise(
    module: nn.Module, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, generator
) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """The ``(multiplier, offset)`` of ``module``'s training forward on an input of ``shape``
    (offset None: none), drawn from ``generator`` as the module's forward draws from the
    global generator; None where it draws nothing (rate 0: the identity)."""
    p = float(module.p)
    if p == 0.0:
        return None
    if isinstance(module, BERNOULLI_KINDS):
        return bernoulli_noise(shape, p, dtype, device, generator), None
    if isinstance(module, FEATURE_KINDS):
        return bernoulli_noise(feature_shape(module, shape), p, dtype, device, generator), None
    if isinstance(module, ATEN_ALPHA_KINDS):
        if p == 1.0:
            return torch.zeros((), dtype=dtype, device=device), None
        noise_shape = feature_shape(module, shape) if isinstance(module, nn.FeatureAlphaDropout) else shape
        noise = torch.empty(noise_shape, dtype=dtype, device=device).bernoulli_(1.0 - p, generator=generator)
        a = 1.0 / math.sqrt((ALPHA * ALPHA * p + 1) * (1 - p))
        offset = noise.add(-1).mul_(ALPHA * a).add_(ALPHA * a * p)  # ATen's order of operations
        return noise.mul_(a), offset
    if isinstance(module, LabAlphaDropout):
        a, offset, dropped = alpha_constants(p)
        kept = torch.empty(shape, dtype=torch.float32, device=device).uniform_(generator=generator) < 1.0 - p
        zero = torch.zeros((), dtype=dtype, device=device)
        return torch.where(kept, zero + a, zero), torch.where(kept, zero + offset, zero + dropped)
    ones = torch.ones(shape, dtype=dtype, device=device)  # these kinds multiply: f(1) is the multiplier
    if isinstance(module, GaussianDropout):
        return gaussian_dropout(ones, p, True, generator), None
    if isinstance(module, SpatialDropout):
        return spatial_dropout(ones, p, True, generator), None
    if isinstance(module, DropBlock):
        return drop_block(ones, p, True, module.block_size, generator), None
    raise NotStackable(f"{type(module).__name__} has no functional form")


# --- the template's dropout slots --------------------------------------------------------------


@dataclass(frozen=True)
class SlotCall:
    """One call of a dropout slot in a training step: its module path, the input's shape (one
    member's), and whether any member draws there (``active``) and any adds an offset."""

    path: str
    shape: tuple[int, ...]
    active: bool
    offset: bool


class NoiseFeed:
    """What the :class:`NoiseSlot` modules of one template read in a pass: ``record`` their
    calls (path and shape, the output the input itself), or ``apply`` the noise tensors
    passed into the mapped function, call by call."""

    def __init__(self) -> None:
        self.mode = "off"
        self.calls: list[tuple[str, tuple[int, ...]]] = []
        self.plan: list[SlotCall] = []
        self.noise: list[torch.Tensor] = []
        self.at = 0
        self.used = 0

    def __call__(self, path: str, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "record":
            self.calls.append((path, tuple(x.shape)))
            return x
        if self.mode != "apply":
            return x
        if self.at >= len(self.plan) or self.plan[self.at].path != path:
            raise NotStackable(f"dropout at {path!r} was called out of its recorded order")
        call = self.plan[self.at]
        self.at += 1
        if not call.active:
            return x
        out = x * self.noise[self.used]
        self.used += 1
        if call.offset:
            out = out + self.noise[self.used]
            self.used += 1
        return out


class NoiseSlot(nn.Module):
    """A dropout slot of the template: the identity in eval mode; in training ``x * multiplier
    (+ offset)``, the member's noise for this call, read from the template's :class:`NoiseFeed`.
    Every kind here is the identity in eval mode, so no rate is needed in the mapped pass."""

    def __init__(self, path: str, feed: NoiseFeed, original: nn.Module) -> None:
        super().__init__()
        self.path, self.original_repr = path, repr(original)
        object.__setattr__(self, "feed", feed)  # shared by every slot, not a submodule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feed(self.path, x) if self.training else x

    def extra_repr(self) -> str:
        return f"{self.path!r}, was {self.original_repr}"


def dropout_paths(model: nn.Module) -> list[str]:
    """The module paths of ``model``'s dropout slots (:func:`is_dropout`), in module order."""
    return [path for path, module in model.named_modules() if path and is_dropout(module)]


def with_noise_slots(model: nn.Module, feed: NoiseFeed) -> nn.Module:
    """A deep copy of ``model`` with each dropout slot replaced by a :class:`NoiseSlot`."""
    template = copy.deepcopy(model)
    for path in dropout_paths(template):
        parent, _, name = path.rpartition(".")
        owner = template.get_submodule(parent) if parent else template
        setattr(owner, name, NoiseSlot(path, feed, owner.get_submodule(name)))
    return template


def member_model(run: RunSpec, data: PreparedData) -> nn.Module:
    """A run's own model, as the single engine builds it (the global generator as it is)."""
    return build_network(run.settings, data.input_shape, data.num_classes)


class FunctionalEngine:
    """Trains K >= 1 runs of one user model side by side through ``torch.func`` (see the module).

    ``build(run, data)`` makes a run's own model (default :func:`member_model`); the engine
    calls it once per member after ``torch.manual_seed(run.seed)``, as the single engine does.
    Raises :class:`NotStackable` when the model cannot be mapped over its members.

    ``loop`` (default: on the CPU for a model with convolutions) runs the members' passes one
    after another on their slices of the stacked weights instead of through ``vmap``, with the
    same noise and the same numbers: on the CPU, ``vmap`` maps a convolution over members as a
    grouped one and a pooling over a strided view, measured 30% slower than the members' own
    passes (a user's CNN on 1 thread, ``benchmarks/RESULTS.md``); the optimizer step, the
    batches and the evaluation stay shared. ``vmap`` still checks the model at the start.
    """

    name = "stacked"
    dtype = "float32"

    def __init__(
        self,
        runs: list[RunSpec],
        data: PreparedData,
        device: torch.device,
        build: Callable[[RunSpec, PreparedData], nn.Module] = member_model,
        loop: bool | None = None,
    ) -> None:
        s = runs[0].settings
        self.runs, self.data, self.device, self.settings = runs, data, device, s
        models, self.mask_rngs = [], []
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            for run in runs:
                torch.manual_seed(run.seed)
                model = build(run, data).to(device)
                models.append(model)
                # the single engine's masks come from the global generator, from here on
                g = torch.Generator(device=device)
                g.set_state(
                    torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()
                )
                self.mask_rngs.append(g)
        for model in models:  # a slot's kind may differ between members (a kind at rate 0 keeps the module)
            reason = functional_reason(model)
            if reason:
                raise refused(reason)
        shapes = [[(k, tuple(v.shape)) for k, v in m.state_dict().items()] for m in models]
        if any(shape != shapes[0] for shape in shapes):
            raise refused("the runs' models differ in their weights' names or shapes")
        self.paths = dropout_paths(models[0])
        # each member's own module at each slot: its kind and rate, which its noise is drawn with
        self.slots = {path: [m.get_submodule(path) for m in models] for path in self.paths}
        self.feed = NoiseFeed()
        self.template = with_noise_slots(models[0], self.feed)
        self.params, self.buffers = stack_module_state(models)
        self.state_names = canonical_names(models[0])
        self.max_norm_weights = [  # as apply_max_norm: each dense and convolution layer's weight
            self.state_names[f"{path}.weight" if path else "weight"]
            for path, m in models[0].named_modules()
            if isinstance(m, nn.Linear | nn.Conv2d)
        ]
        self.max_norm = torch.tensor([r.settings.max_norm or math.inf for r in runs], device=device)
        self.optimizer = StackedOptimizer(
            list(self.params.values()),
            s.optimizer.name,
            [r.settings.optimizer.lr for r in runs],
            [r.settings.optimizer.weight_decay for r in runs],
            [r.settings.optimizer.momentum for r in runs],
        )
        self.order_rngs = [torch.Generator(device="cpu").manual_seed(run.seed) for run in runs]
        self.augment_rngs = [augmentation_generator(run.seed, device) for run in runs] if s.augment else []
        self.live = list(range(len(runs)))
        self.calls: dict[int, list[SlotCall]] = {}
        self.vmapped = vmap(self.forward, in_dims=(0, 0, 0, 0), randomness="error")
        self.vmapped_eval = vmap(self.forward, in_dims=(0, 0, None, None), randomness="error")
        convolutions = any(isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d) for m in models[0].modules())
        self.loop = device.type == "cpu" and convolutions if loop is None else loop
        self.eval_chunk = max(256, EVAL_BATCH // len(runs))
        try:  # one step's forward on two samples: whatever vmap cannot map shows here
            self.slot_calls(2)
            x = data.train.x[:2].unsqueeze(0).expand(len(runs), *data.train.x[:2].shape)
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                noise = self.draw_noise(self.slot_calls(2), [copy_generator(g) for g in self.mask_rngs])
            self.template.train()
            self.vmapped(self.params, self.buffers, x, noise)
        except NotStackable as exc:
            raise refused(str(exc)) from None
        except Exception as exc:
            line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise refused(f"torch.func cannot map this model over its runs: {line}") from exc

    def forward(self, params: Weights, buffers: Weights, x: torch.Tensor, noise: list[torch.Tensor]):
        """One member's pass (inside ``vmap``): the template with its weights and its noise."""
        self.feed.noise, self.feed.at, self.feed.used = noise or [], 0, 0
        if noise is not None:  # training: the calls recorded for this batch size
            self.feed.plan, self.feed.mode = self.calls[x.shape[0]], "apply"
        try:
            out = functional_call(self.template, (params, buffers), (x,))
        finally:
            self.feed.mode = "off"
        return out

    def mapped(self, params: Weights, buffers: Weights, x: torch.Tensor, noise: list[torch.Tensor] | None):
        """Every member's pass: ``x`` ``(M, B, ...)`` with ``noise`` in training, ``(B, ...)`` shared and
        ``noise`` None in evaluation; ``(M, B, classes)``. Through ``vmap``, or member by member."""
        if not self.loop:
            return (self.vmapped if noise is not None else self.vmapped_eval)(params, buffers, x, noise)
        outs = []
        for i in range(next(iter(params.values())).shape[0]):
            mine = {k: v[i] for k, v in params.items()}, {k: v[i] for k, v in buffers.items()}
            outs.append(
                self.forward(
                    *mine, x if noise is None else x[i], None if noise is None else [t[i] for t in noise]
                )
            )
        return torch.stack(outs)

    def slot_calls(self, batch: int) -> list[SlotCall]:
        """The dropout calls of a training step on ``batch`` samples, recorded once per size."""
        if batch not in self.calls:
            self.feed.calls, self.feed.mode = [], "record"
            self.template.train()
            sample = self.data.train.x[:1]
            x = sample.expand(batch, *sample.shape[1:])
            first = {name: t[0] for name, t in self.params.items()}
            bufs = {name: t[0] for name, t in self.buffers.items()}
            try:
                with torch.no_grad():
                    functional_call(self.template, (first, bufs), (x,))
            finally:
                self.feed.mode = "off"
            self.calls[batch] = [
                SlotCall(
                    path,
                    shape,
                    any(float(m.p) > 0 for m in self.slots[path]),
                    any(isinstance(m, ATEN_ALPHA_KINDS + (LabAlphaDropout,)) for m in self.slots[path]),
                )
                for path, shape in self.feed.calls
            ]
        return self.calls[batch]

    def draw_noise(self, calls: list[SlotCall], generators: list[torch.Generator]) -> list[torch.Tensor]:
        """Each call's noise tensors, stacked over the live members (member axis first), each
        member's drawn from its own generator in the order of the calls."""
        dtype, device = self.data.train.x.dtype, self.device
        per_member = []
        for pos, g in enumerate(generators):
            drawn = []
            for call in calls:
                if not call.active:
                    continue
                got = draw_noise(self.slots[call.path][pos], call.shape, dtype, device, g)
                mult, offset = got if got else (torch.ones((), dtype=dtype, device=device), None)
                drawn.append(mult)
                if call.offset:
                    drawn.append(
                        offset if offset is not None else torch.zeros((), dtype=dtype, device=device)
                    )
            per_member.append(drawn)
        out = []
        for i in range(len(per_member[0]) if per_member else 0):
            column = [drawn[i] for drawn in per_member]
            shape = torch.broadcast_shapes(*(t.shape for t in column))
            out.append(torch.stack([t.expand(shape) for t in column]))
        return out

    def train_epoch(self) -> list[tuple[float, float]]:
        """One pass over the training split, each member in its own order: its (mean loss, accuracy).

        The loss is each member's data loss (cross-entropy, label-smoothed with
        ``label_smoothing``); each step minimises the members' summed mean losses, so each
        member's gradient is its own mean loss's, as alone.
        """
        s, data, device = self.settings, self.data, self.device
        train, n = data.train, len(data.train)
        self.template.train()
        orders = torch.stack([torch.randperm(n, generator=self.order_rngs[i]) for i in self.live]).to(device)
        members = len(self.live)
        loss_sum = torch.zeros(members, device=device)
        correct = torch.zeros(members, device=device)
        params = list(self.params.values())
        clip = bool(torch.isfinite(self.max_norm).any())
        generators = [self.mask_rngs[i] for i in self.live]
        for idx in orders.split(s.batch_size, dim=1):
            b = idx.shape[1]
            x, y = train.x[idx], train.y[idx]  # (M, B, ...), (M, B)
            if self.augment_rngs:
                x = torch.stack([
                    apply_augmentation(x[pos], draw_augmentation(s.augment, b, x.shape[3], self.augment_rngs[i]))
                    for pos, i in enumerate(self.live)
                ])  # fmt: skip
            noise = self.draw_noise(self.slot_calls(b), generators)
            logits = self.mapped(self.params, self.buffers, x, noise)  # (M, B, classes)
            losses = member_losses(logits, y, s.label_smoothing).sum(1)
            grads = torch.autograd.grad(losses.sum() / b, params)
            self.optimizer.step(params, grads)
            if clip:
                for name in self.max_norm_weights:
                    w = self.params[name]
                    clip_norms(w, self.max_norm.view(-1, *[1] * (w.dim() - 1)), tuple(range(2, w.dim())))
            loss_sum += losses.detach()
            correct += (predictions(logits.detach()) == y).sum(1)
        return list(zip((loss_sum / n).tolist(), (correct / n).tolist(), strict=True))

    @torch.no_grad()
    def evaluate_with(self, params: Weights, buffers: Weights, split: Split) -> list[tuple]:
        """Each member's (mean loss, accuracy) on ``split`` in eval mode with stacked ``params``."""
        members = next(iter(params.values())).shape[0] if params else len(self.live)
        if len(split) == 0:
            return [(None, None)] * members
        self.template.eval()
        loss_sum = torch.zeros(members, device=self.device)
        correct = torch.zeros(members, device=self.device)
        for x, y in zip(split.x.split(self.eval_chunk), split.y.split(self.eval_chunk), strict=True):
            logits = self.mapped(params, buffers, x, None)
            loss_sum += member_losses(logits, y.expand(members, -1)).sum(1)
            correct += (predictions(logits) == y).sum(1)
        self.template.train()
        n = len(split)
        return list(zip((loss_sum / n).tolist(), (correct / n).tolist(), strict=True))

    def evaluate(self, split: Split) -> list[tuple[float | None, float | None]]:
        """Each live member's (mean loss, accuracy) on ``split`` in eval mode, one mapped pass."""
        return self.evaluate_with(self.params, self.buffers, split)

    def learned_rates(self) -> list[dict[str, float]]:
        """No learned rates: concrete dropout has no functional form here."""
        return [{} for _ in self.live]

    def member_state(self, position: int) -> Weights:
        """A copy of the member's weights, keyed as its own model's ``state_dict()``."""
        stacked = {**self.params, **self.buffers}
        return {key: stacked[name][position].detach().clone() for key, name in self.state_names.items()}

    def keep_members(self, positions: list[int]) -> None:
        """Keep the members at ``positions``; the others leave the stack."""
        index = torch.tensor(positions, device=self.device)
        self.params = {k: p.detach().index_select(0, index).requires_grad_(p.requires_grad)
                       for k, p in self.params.items()}  # fmt: skip
        self.buffers = {k: b.index_select(0, index) for k, b in self.buffers.items()}
        self.optimizer.select(positions)
        self.max_norm = self.max_norm[positions]
        self.slots = {path: [mods[i] for i in positions] for path, mods in self.slots.items()}
        self.live = [self.live[i] for i in positions]

    def state(self) -> dict[str, Any]:
        """The live members' weights and optimizer state, and every generator (batch orders,
        masks, augmentation), for a checkpoint."""
        return {
            "params": {k: p.detach() for k, p in self.params.items()},
            "buffers": self.buffers,
            "optimizer": self.optimizer.state_dict(),
            "order_rngs": [g.get_state() for g in self.order_rngs],
            "mask_rngs": [g.get_state() for g in self.mask_rngs],
            "augment_rngs": [g.get_state() for g in self.augment_rngs],
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Take up training where :meth:`state` left it (the same members kept)."""
        self.params = {k: t.to(self.device).detach().clone().requires_grad_(self.params[k].requires_grad)
                       for k, t in state["params"].items()}  # fmt: skip
        self.buffers = {k: t.to(self.device) for k, t in state["buffers"].items()}
        self.optimizer.load_state_dict(state["optimizer"])
        for gens, key in ((self.order_rngs, "order_rngs"), (self.mask_rngs, "mask_rngs"),
                          (self.augment_rngs, "augment_rngs")):  # fmt: skip
            for g, saved in zip(gens, state[key], strict=True):
                g.set_state(saved)

    def test(self, indices: list[int], states: list[Weights]) -> list[tuple[float, float]]:
        """The test loss and accuracy of the runs at ``indices`` with weights ``states``, one mapped pass."""
        names = {name: key for key, name in self.state_names.items()}
        params = {n: torch.stack([st[names[n]] for st in states]).to(self.device) for n in self.params}
        buffers = {n: torch.stack([st[names[n]] for st in states]).to(self.device)
                   for n in self.buffers if n in names}  # fmt: skip
        for n, b in self.buffers.items():  # a buffer outside the state_dict (not persistent) stays as built
            buffers.setdefault(n, b[:1].expand(len(states), *b.shape[1:]))
        return self.evaluate_with(params, buffers, self.data.test)


def refused(reason: str) -> NotStackable:
    """The :class:`NotStackable` of ``reason``, logged once: the runner then trains the stack's runs
    one by one, and its own warning names only the exception's class."""
    log.warning("%s; these runs train one at a time", reason)
    return NotStackable(reason)


def copy_generator(g: torch.Generator) -> torch.Generator:
    """A new generator in ``g``'s state (drawing from it leaves ``g`` as it is)."""
    return torch.Generator(device=g.device).set_state(g.get_state())


def canonical_names(model: nn.Module) -> dict[str, str]:
    """Each ``state_dict()`` key of ``model`` and the name ``stack_module_state`` stacks it under
    (a weight shared by two modules is stacked once, under its first name)."""
    first = {}
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        first.setdefault(id(tensor), name)
    return {key: first[id(tensor)] for key, tensor in model.state_dict(keep_vars=True).items()}
