"""The optimizer of a stack: each member updated as ``torch.optim`` would update it alone."""

from __future__ import annotations

import torch
from torch.optim.adam import adam
from torch.optim.adamw import adamw
from torch.optim.sgd import sgd

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


class StackedOptimizer:
    """Adam, AdamW or SGD over stacked parameters, with each member's own hyperparameters.

    Parameters have the member axis first. Members with equal hyperparameters are updated
    by one call of ``torch.optim``'s functional ``adam``/``adamw``/``sgd`` (PyTorch's fused
    kernel where the device has one, else its ``foreach`` form) on the whole stacked tensors
    or on each member's slices, so each member follows exactly the update of
    ``torch.optim.Adam``/``AdamW``/``SGD`` (``weight_decay`` L2 for sgd and adam, decoupled
    for adamw; sgd's momentum buffer starts at the first gradient). The parameters at the
    positions in ``undecayed`` get no weight decay (a parameter group with
    ``weight_decay = 0`` in ``torch.optim``).
    """

    def __init__(
        self,
        params: list[torch.Tensor],
        name: str,
        lrs: list[float],
        weight_decays: list[float],
        momenta: list[float],
        fused: bool | None = None,
        undecayed: set[int] = frozenset(),
    ) -> None:
        self.name = name
        # parameter positions updated together: all of them, or the decayed ones then the others
        decayed = [i for i in range(len(params)) if i not in undecayed]
        self.parts = (
            [(tuple(decayed), True), (tuple(sorted(undecayed)), False)]
            if undecayed
            else [(tuple(range(len(params))), True)]
        )
        self.hyper = list(zip(lrs, weight_decays, momenta, strict=True))
        kinds = 2 if name in ("adam", "adamw") else 1
        self.state = [[torch.zeros_like(p, memory_format=torch.contiguous_format) for _ in range(kinds)]
                      for p in params]  # fmt: skip
        self.steps = 0
        self.fused = has_fused_kernels(params[0].device) if fused is None else fused
        self._step_counts: dict[tuple, list[torch.Tensor]] = {}  # per group: adam's step tensors

    def state_dict(self) -> dict:
        """The members' optimizer state (moments or momentum buffers) and the step count."""
        return {"state": self.state, "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        """Take up the state :meth:`state_dict` gave (the same members, in the same order)."""
        self.state = [[t.to(s.device) for t, s in zip(saved, mine, strict=True)]
                      for saved, mine in zip(state["state"], self.state, strict=True)]  # fmt: skip
        self.steps = state["steps"]
        self._step_counts.clear()

    def select(self, keep_idx: list[int]) -> None:
        """Keep the state of the members at positions ``keep_idx`` only."""
        index = torch.tensor(keep_idx, device=self.state[0][0].device)
        self.hyper = [self.hyper[i] for i in keep_idx]
        self.state = [[s.index_select(0, index) for s in states] for states in self.state]
        self._step_counts.clear()

    @torch.no_grad()
    def step(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        """One update of every member (``params`` are updated in place)."""
        self.steps += 1
        # the fused kernels read tensors as flat arrays: parameter and gradient layouts must agree
        grads = [g if g.is_contiguous() else g.contiguous() for g in grads]
        options = {"fused": self.fused, "foreach": not self.fused, "maximize": False}
        for (lr, decay, momentum), members in self._groups():
            for positions, decayed in self.parts:
                wd = decay if decayed else 0.0
                pick = [params[i] for i in positions], [grads[i] for i in positions]
                ps, gs = _members(pick[0], members), _members(pick[1], members)
                states = [self.state[i] for i in positions]
                if self.name == "sgd":
                    bufs = _members([s[0] for s in states], members) if momentum else [None] * len(ps)
                    sgd(ps, gs, bufs, **options, weight_decay=wd, momentum=momentum, lr=lr, dampening=0.0,
                        nesterov=False)  # fmt: skip
                    continue
                ms = _members([s[0] for s in states], members)
                vs = _members([s[1] for s in states], members)
                update = adam if self.name == "adam" else adamw
                steps = self._steps_of((lr, decay, momentum, decayed), len(ps), ps[0].device)
                update(ps, gs, ms, vs, [], steps, **options, amsgrad=False, beta1=ADAM_BETAS[0],
                       beta2=ADAM_BETAS[1], lr=lr, weight_decay=wd, eps=ADAM_EPS)  # fmt: skip

    def _steps_of(self, group: tuple, count: int, device: torch.device) -> list[torch.Tensor]:
        """One step tensor per updated tensor of ``group`` (adam adds 1 to each before its update)."""
        if group not in self._step_counts:
            where = device if self.fused else torch.device("cpu")
            self._step_counts[group] = [torch.full((), self.steps - 1.0, device=where) for _ in range(count)]
        return self._step_counts[group]

    def _groups(self) -> list[tuple[tuple[float, float, float], list[int] | None]]:
        """Members with equal hyperparameters, each group updated by one call."""
        groups: dict[tuple, list[int]] = {}
        for i, h in enumerate(self.hyper):
            groups.setdefault(h, []).append(i)
        if len(groups) == 1:
            return [(next(iter(groups)), None)]  # None: the whole stack, no per-member views
        return list(groups.items())


def _members(tensors: list[torch.Tensor], members: list[int] | None) -> list[torch.Tensor]:
    """The stacked ``tensors`` whole (``members`` None) or as per-member views."""
    return list(tensors) if members is None else [t[i] for t in tensors for i in members]


def has_fused_kernels(device: torch.device) -> bool:
    """Whether ``torch.optim`` has fused Adam and SGD kernels for ``device`` (CPU ones came in 2.4)."""
    try:
        p, g, m, v = (torch.zeros(1, device=device) for _ in range(4))
        adam([p], [g], [m], [v], [], [torch.zeros((), device=device)], fused=True, amsgrad=False, beta1=0.9,
             beta2=0.999, lr=0.1, weight_decay=0.0, eps=1e-8, maximize=False)  # fmt: skip
        sgd([p], [g], [None], fused=True, weight_decay=0.0, momentum=0.0, lr=0.1, dampening=0.0,
            nesterov=False, maximize=False)  # fmt: skip
        return True
    except (RuntimeError, NotImplementedError):
        return False
