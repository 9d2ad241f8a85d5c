"""The decision: which configuration to choose, how sure that is, and which seeds to add next.

``decide(runs, design) -> Decision`` is one pure function over the runs table of
``Store.runs()`` (one row per run: ``config``, ``seed``, ``status``, ``test_acc`` as a
fraction in [0, 1]) and a ``Design``. It trains nothing, writes nothing and keeps no state:
the same table and design give the same decision, so a study killed during a step and run
again continues the same design, and a user or a test can simulate the whole sequential
procedure by feeding it tables (``tests/test_decide.py``, ``benchmarks/bench_decide.py``).

Each configuration is compared with the baseline on test accuracy, paired by seed (the same
seed gives the same initial weights and data order), and gets one of four verdicts:

- ``better`` / ``worse``: the interval of the difference (config minus baseline) excludes 0;
- ``equivalent``: the whole interval lies inside (-min_effect, +min_effect): two one-sided
  tests (TOST, Schuirmann 1987) on the paired differences;
- ``undecided``: neither yet; the comparison says what would decide it (seeds to add).

Beside the verdicts: the configurations that could be the best (Hsu's multiple comparisons
with the best, 1984/1996, on the paired seeds), those worse than the best and by at least
how much, those within ``min_effect`` of the best, and the choice by a stated rule.

The method, and why every claim is covered
------------------------------------------
Seeds are added in looks on a grid fixed by the design: ``start``, ``start + step``, ...,
``max_seeds`` seeds (``Design.grid``). Seeds are positions in one sequence shared by all
configurations (the table's seeds in ascending order, then the next integers), and every
configuration runs a prefix of it, so at grid point ``g`` a pair of configurations is
*observed* when both have run (completed, failed or diverged) the first ``g`` seeds. Its
interval at ``g`` is the exact Student t interval of the mean paired difference over the
seeds among those ``g`` that both completed.

The error rate ``alpha`` is spent over the grid by a Lan-DeMets (1983) spending function:
half of it over the looks before the last in the O'Brien-Fleming (1979) shape,
``spend(t) = (2 - 2 Phi(z_{1 - alpha/2} / sqrt(t))) / 2`` with ``t = g / max_seeds``, and the
rest at the last look (``FINAL_SHARE``): grid point ``g`` receives
``spend(t_g) - spend(t_{g-1})``, and these increments add up to ``spend(1) = alpha``. At
each grid point the increment is split by Bonferroni over ``T = 3 m - 1`` one-sided tails,
``m`` being the number of comparisons with the baseline (``k - 1`` for ``k``
configurations): each pairwise interval is two-sided with ``level = increment / T`` in each
tail (``Decision.boundary``).

Let ``b`` be the best configuration. The event ``C``: at every grid point, (i) every
interval of a configuration against the baseline covers its true difference (2 m tails), and
(ii) every interval of ``b`` minus another configuration ``j`` has its upper end at or above
``mu_b - mu_j`` (``k - 1 = m`` tails, one of them already in (i) when ``b`` is not the
baseline, all of them when it is). That is at most ``3 m - 1`` tails of ``level`` each per
grid point, so by Bonferroni over tails and grid points ``P(not C) <= sum_g increment_g =
alpha``. Each interval is a fixed function of the first ``g`` seeds (failed runs are taken to
fail for reasons unrelated to the accuracy they would have reached), so with normal paired
differences (the t interval's assumption) each tail has probability exactly ``level``
whatever the procedure did before: adding seeds to some configurations and not others,
stopping early or looking again cannot break the bound. A pair's running interval is the intersection of its
intervals over the grid points observed so far, which covers whenever they all do.

On ``C`` every claim is true:

- a verdict ``better``/``worse`` (the running interval excludes 0) or ``equivalent`` (it
  lies inside +-min_effect), at whatever look it was reached; a verdict, once reached,
  stands (the first one is kept; on ``C`` a later one could not contradict it);
- ``b`` is in the could-be-best set: a configuration ``i`` leaves the set when some ``j``
  has an interval of ``i - j`` entirely below 0 (Hsu's constrained MCB), which on ``C``
  cannot happen to ``b``, since its upper ends of ``b - j`` are at least ``mu_b - mu_j >= 0``;
- ``i`` is within ``min_effect`` of the best when Hsu's lower bound
  ``min(0, min_j low(i - j))`` exceeds ``-min_effect``: on ``C``, ``mu_i - mu_b >= low(i - b)``;
- ``i`` is worse than the best by at least ``max_j low(j - baseline) - high(i - baseline)``
  (with 0 for the baseline itself), from (i) alone; a positive amount also removes ``i``
  from the could-be-best set.

So with probability at least ``1 - alpha`` the procedure makes no false claim of any kind
(with several configurations tied for best, at least one of them stays in the set, as in
Hsu's definition). Bonferroni over looks ignores that the looks' statistics are correlated;
that costs power against an exact group-sequential boundary, but it keeps the proof to these
lines and holds with the unknown, unequal variances of t intervals and adaptive sampling,
where exact boundaries need approximations. Because Bonferroni adds the looks' levels, pure
O'Brien-Fleming spending would leave the last of many looks a small part of ``alpha`` (with
steps of 2 up to 39 seeds, 12 %) and push the maximum up by half; keeping half of ``alpha``
for the last look bounds that cost by a fixed design at ``alpha / 2``, while the
O'Brien-Fleming half still stops early when an effect is large (``recommend_max_seeds``
plans the maximum). ``docs/decisions.md`` gives the method in plain words,
the choice of it over confidence sequences, and a worked example.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import special, stats

from dropoutlab.errors import DropoutlabError

#: Defaults of a sequential design: seeds added per look, and the most seeds per configuration.
DEFAULT_STEP = 2
DEFAULT_MAX_SEEDS = 20

#: The part of alpha kept for the last look; the rest is spent over the earlier looks in the
#: O'Brien-Fleming shape (see ``spending``).
FINAL_SHARE = 0.5

#: The four verdicts of a comparison with the baseline.
VERDICTS: tuple[str, ...] = ("better", "worse", "equivalent", "undecided")

# Below this standard deviation the paired differences count as identical: accuracies are
# stored as float32, so the same difference of images on every seed (9 of 360) differs in its
# last digits, a spread near 3e-8 that is no evidence of certainty; no interval is formed.
_ZERO_SD = 1e-6

# Past this many seeds recommend_max_seeds gives up and returns inf.
_SEARCH_LIMIT = 2000


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


@dataclass(frozen=True)
class Design:
    """A sequential design: what is compared, how sure, and how many seeds at most.

    ``baseline``: the ``config`` label every configuration is compared with.
    ``min_effect``: the smallest difference in test accuracy worth detecting, a fraction
    (0.01 is one percentage point); differences inside +-min_effect count as equivalent.
    ``alpha``: the family-wise error rate over every claim at every look.
    ``start``: seeds per configuration at the first look; ``step``: seeds added per look;
    ``max_seeds``: the most seeds any configuration gets (the last look).

    No record of earlier looks is needed: alpha is spent over the grid of planned looks
    (``grid``), so ``decide`` recomputes every earlier look from the table. The design must
    stay the same for the whole study: changing it after a look, say raising ``max_seeds``
    because a comparison is undecided, changes every look's level after seeing the data and
    voids the guarantee. Invalid values raise ``DropoutlabError`` with one line.
    """

    baseline: str
    min_effect: float | None
    alpha: float = 0.05
    start: int = 3
    step: int = DEFAULT_STEP
    max_seeds: int = DEFAULT_MAX_SEEDS

    def __post_init__(self) -> None:
        if self.min_effect is None:
            raise DropoutlabError(
                "min_effect: missing; deciding needs the smallest difference worth detecting, "
                "a fraction > 0 such as 0.01 (one percentage point)"
            )
        if isinstance(self.min_effect, bool) or not isinstance(self.min_effect, int | float | np.number):
            raise DropoutlabError(
                f"min_effect: {self.min_effect!r} is not a number; expected a fraction in (0, 1)"
            )
        if not (math.isfinite(self.min_effect) and 0 < self.min_effect < 1):
            raise DropoutlabError(
                f"min_effect: {self.min_effect!r}; expected a fraction in (0, 1), e.g. 0.01 for one percentage point"
            )
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, int | float | np.number):
            raise DropoutlabError(f"alpha: {self.alpha!r} is not a number; expected a level in (0, 1)")
        if not 0 < self.alpha < 1:
            raise DropoutlabError(f"alpha: {self.alpha!r}; expected a level in (0, 1) such as 0.05")
        for name in ("start", "step", "max_seeds"):
            if not _is_int(getattr(self, name)):
                raise DropoutlabError(f"{name}: {getattr(self, name)!r} is not a whole number of seeds")
        if self.start < 2:
            raise DropoutlabError(
                f"start: {self.start} seed(s); at least 2 (a paired interval needs two seeds)"
            )
        if self.step < 1:
            raise DropoutlabError(f"step: {self.step}; at least 1 seed added per look")
        if self.max_seeds < self.start:
            raise DropoutlabError(
                f"max_seeds: {self.max_seeds} is below start ({self.start}); expected max_seeds >= start"
            )
        if not isinstance(self.baseline, str) or not self.baseline:
            raise DropoutlabError(f"baseline: {self.baseline!r}; expected a configuration label")

    def grid(self) -> tuple[int, ...]:
        """The planned looks, in seeds per configuration: start, start + step, ..., max_seeds."""
        return tuple(range(self.start, self.max_seeds, self.step)) + (self.max_seeds,)

    def check(self, configs: Sequence[str]) -> None:
        """Raise ``DropoutlabError`` (one line) unless ``configs`` (the grid's labels) holds the
        baseline and at least one other configuration; for the CLI, before anything trains."""
        labels = list(dict.fromkeys(map(str, configs)))
        if len(labels) < 2:
            raise DropoutlabError(
                f"nothing to compare: the grid has {len(labels)} configuration(s); "
                "deciding needs a baseline and at least one other"
            )
        if self.baseline not in labels:
            raise DropoutlabError(
                f"baseline {self.baseline!r} is not a configuration of this study; available: {', '.join(labels)}"
            )


def spending(t, alpha: float):
    """The part of ``alpha`` spent by information time ``t`` in [0, 1] (seeds over
    ``max_seeds``): before the last look, ``1 - FINAL_SHARE`` (a half) of the Lan-DeMets
    O'Brien-Fleming-type function ``2 - 2 Phi(z_{1-alpha/2} / sqrt(t))``; all of ``alpha`` at
    ``t = 1`` (0 at ``t = 0``; non-decreasing)."""
    t = np.clip(np.asarray(t, dtype=float), 0.0, 1.0)
    z = stats.norm.isf(alpha / 2)
    with np.errstate(divide="ignore"):
        obf = np.where(t > 0, 2 * stats.norm.sf(z / np.sqrt(np.where(t > 0, t, 1.0))), 0.0)
    return np.where(t >= 1, alpha, (1 - FINAL_SHARE) * obf)


def tails(comparisons: int) -> int:
    """The one-sided tails one look's alpha is split over, ``3 m - 1`` for ``m`` comparisons
    with the baseline (see the module docstring)."""
    return max(3 * comparisons - 1, 1)


def look_levels(design: Design, comparisons: int) -> dict[int, float]:
    """Per grid point (seeds), the level of each one-sided tail: the spending increment over
    ``tails(comparisons)``. Two-sided intervals have this level in each tail."""
    return dict(_look_levels(design, comparisons))


@functools.lru_cache(maxsize=256)
def _look_levels(design: Design, comparisons: int) -> tuple[tuple[int, float], ...]:
    grid = np.array(design.grid(), dtype=float)
    spent = spending(grid / design.max_seeds, design.alpha)
    increments = np.diff(np.concatenate([[0.0], spent]))
    return tuple((int(g), float(a) / tails(comparisons)) for g, a in zip(grid, increments, strict=True))


@dataclass(frozen=True)
class Comparison:
    """One configuration against the baseline, on test accuracy (fractions), paired by seed.

    ``n``: paired seeds (both completed) at ``look``, the seeds per configuration of the last
    look at which the pair was observed; ``diff``: their mean difference config minus baseline; ``low``/``high``: the
    running interval (the intersection of the intervals of every look so far; infinite before
    any); ``p_value``: the two-sided paired t p-value at that look, a difference claimed there
    when it is below ``2 * level``; ``p_tost``: the TOST p-value (the larger of the two
    one-sided ones against -+min_effect), equivalence when below ``level``; ``level``: the
    one-sided level of that look. ``verdict`` one of ``VERDICTS``, reached at ``decided_at``
    seeds (None while undecided); ``path``: ``(seeds, verdict)`` at every look observed;
    ``to_decide``: what would decide it, in words (empty when decided).
    """

    config: str
    baseline: str
    n: int
    look: int
    diff: float
    low: float
    high: float
    p_value: float
    p_tost: float
    level: float
    verdict: str
    decided_at: int | None
    path: tuple[tuple[int, str], ...]
    to_decide: str


@dataclass(frozen=True)
class Decision:
    """What ``decide`` concludes from a runs table and a design.

    ``comparisons``: one ``Comparison`` per configuration other than the baseline.
    ``could_be_best``: the configurations that could have the highest true test accuracy
    (Hsu's MCB); ``worse_than_best``: configuration -> the amount (fraction) by which it is
    worse than the best at least, for those the data bound away from the best (0.0 when only
    "not the best" is known); ``within_min_effect``: those shown within ``min_effect`` of the
    best; ``means``: mean test accuracy of each configuration over its completed seeds.
    ``choice`` and ``rule``: the configuration to choose and the rule that chose it, in words.
    ``settled``: every configuration that could be best is within ``min_effect`` of the best
    (or only one remains). ``next_seeds``: configuration -> the seeds to train next (empty
    when done); ``look``: seeds per configuration at this look (0 before the first);
    ``alpha_look``: the part of alpha spent at this look, and ``boundary`` its one-sided level
    per tail; ``done`` and ``reason`` (``"decided"``, ``"max_seeds reached"`` or what remains).
    """

    design: Design
    comparisons: tuple[Comparison, ...]
    could_be_best: tuple[str, ...]
    worse_than_best: dict[str, float]
    within_min_effect: tuple[str, ...]
    means: dict[str, float]
    choice: str | None
    rule: str
    settled: bool
    next_seeds: dict[str, tuple] = field(default_factory=dict)
    look: int = 0
    alpha_look: float = 0.0
    boundary: float = 0.0
    done: bool = False
    reason: str = ""

    @property
    def decided(self) -> bool:
        """Whether every comparison with the baseline has a verdict other than undecided."""
        return all(c.verdict != "undecided" for c in self.comparisons)

    def verdicts(self) -> dict[str, str]:
        """Configuration -> verdict."""
        return {c.config: c.verdict for c in self.comparisons}

    def to_dict(self) -> dict:
        """The decision as JSON-ready data (non-finite numbers as None, tuples as lists)."""
        return _json_ready(
            {
                "design": asdict(self.design),
                "comparisons": [asdict(c) for c in self.comparisons],
                "could_be_best": list(self.could_be_best),
                "worse_than_best": dict(self.worse_than_best),
                "within_min_effect": list(self.within_min_effect),
                "means": dict(self.means),
                "choice": self.choice,
                "rule": self.rule,
                "settled": self.settled,
                "next_seeds": {k: list(v) for k, v in self.next_seeds.items()},
                "look": self.look,
                "alpha_look": self.alpha_look,
                "boundary": self.boundary,
                "done": self.done,
                "reason": self.reason,
            }
        )


def _json_ready(value):
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ----------------------------------------------------------------------------------------
# The table


@dataclass(frozen=True)
class _Table:
    configs: list[str]  # the baseline first
    seeds: list  # the seed sequence (positions)
    acc: np.ndarray  # (k, P) test accuracy of completed runs, NaN otherwise
    prefix: np.ndarray  # (k,) seeds run (any status) before the first gap


def _table(runs: pd.DataFrame, design: Design) -> _Table:
    missing = [c for c in ("config", "seed", "status", "test_acc") if c not in runs.columns]
    if missing:
        raise DropoutlabError(
            f"runs table: column(s) {', '.join(missing)} missing; expected the table of Store.runs()"
        )
    names = [str(c) for c in runs["config"].to_numpy()]
    labels = sorted(set(names))  # the same table in any row order gives the same decision
    design.check(labels)
    configs = [design.baseline, *(c for c in labels if c != design.baseline)]
    run_seeds = runs["seed"].tolist()
    seeds = list(dict.fromkeys(run_seeds))
    with contextlib.suppress(TypeError):  # mixed types keep the order of first appearance
        seeds = sorted(seeds)
    seed_index = {s: i for i, s in enumerate(seeds)}
    config_index = {c: i for i, c in enumerate(configs)}
    rows = np.array([config_index[c] for c in names], dtype=int)
    cols = np.array([seed_index[s] for s in run_seeds], dtype=int)
    value = pd.to_numeric(runs["test_acc"], errors="coerce").to_numpy(dtype=float)
    ok = (runs["status"].to_numpy() == "completed") & np.isfinite(value)
    ran = np.zeros((len(configs), len(seeds)), dtype=bool)
    ran[rows, cols] = True
    acc = np.full(ran.shape, np.nan)
    # a seed run twice by one configuration keeps a completed value (the last in the table)
    acc[rows[ok], cols[ok]] = value[ok]
    gaps = ~ran
    prefix = np.where(gaps.any(axis=1), gaps.argmax(axis=1), ran.shape[1])
    return _Table(configs, seeds, acc, np.minimum(prefix, design.max_seeds))


def _next_seed_values(seeds: list, count: int) -> list:
    """The seed sequence extended to ``count`` positions: after the table's seeds, the next integers."""
    out = list(seeds[:count])
    last = max((s for s in seeds if _is_int(s)), default=-1)
    while len(out) < count:
        last += 1
        if last not in seeds:
            out.append(int(last))
    return out


# ----------------------------------------------------------------------------------------
# The decision


def _rate_order(runs: pd.DataFrame, configs: list[str]) -> dict[str, float] | None:
    """Total dropout rate of each configuration (the numeric ``dropout.*`` columns, absent
    slots as 0), or None when the configurations are not ordered by a rate."""
    columns = [
        c for c in runs.columns if str(c).startswith("dropout.") and pd.api.types.is_numeric_dtype(runs[c])
    ]
    if not columns:
        return None
    total = runs[columns].fillna(0.0).sum(axis=1).groupby(runs["config"].astype(str)).first()
    if total.reindex(configs).isna().any() or total.reindex(configs).nunique() < 2:
        return None
    return {c: float(total[c]) for c in configs}


def _pair_stats(acc: np.ndarray, prefix: np.ndarray, grid: list[int]):
    """Per grid point ``g`` and ordered pair ``(i, j)``: mean, standard error and count of the
    paired differences ``i - j`` over the first ``g`` seeds both completed, whether the pair is
    observed at ``g`` (both ran the first ``g`` seeds) and whether it gives an interval
    (observed, two pairs or more, some spread). Arrays of shape ``(len(grid), k, k)``."""
    k = acc.shape[0]
    shape = (len(grid), k, k)
    mean, se, n = np.zeros(shape), np.zeros(shape), np.zeros(shape, dtype=int)
    for a, g in enumerate(grid):
        d = acc[:, None, :g] - acc[None, :, :g]
        valid = np.isfinite(d)
        n[a] = valid.sum(axis=2)
        mean[a] = np.where(valid, d, 0.0).sum(axis=2) / np.maximum(n[a], 1)
        ss = (np.where(valid, d - mean[a][..., None], 0.0) ** 2).sum(axis=2)
        se[a] = np.sqrt(ss / np.maximum(n[a] - 1, 1) / np.maximum(n[a], 1))
    g = np.array(grid, dtype=int)[:, None, None]
    observed = (prefix[None, :, None] >= g) & (prefix[None, None, :] >= g)
    usable = observed & (n >= 2) & (se > _ZERO_SD) & ~np.eye(k, dtype=bool)
    return mean, se, n, observed, usable


def decide(runs: pd.DataFrame, design: Design) -> Decision:
    """The decision at this look from the runs table (``Store.runs()``) and the design.

    Completed runs count; failed and diverged runs are missing data. Every configuration is
    compared with ``design.baseline`` on the seeds both completed; see the module docstring
    for the method and why every claim holds with probability at least ``1 - alpha`` over all
    looks. Seeds beyond a configuration's first missing seed, or beyond ``max_seeds``, wait
    for a later look. Raises ``DropoutlabError`` (one line) for a table without the store's
    columns, a baseline that is not a configuration, or a single configuration.
    """
    table = _table(runs, design)
    configs, acc, prefix = table.configs, table.acc, table.prefix
    k, m = len(configs), len(configs) - 1
    me = design.min_effect
    levels = look_levels(design, m)
    grid = [g for g in design.grid() if g <= prefix.max()]

    # Every pair's paired differences at every grid point, then one quantile call for all.
    mean, se, n, observed, usable = _pair_stats(acc, prefix, grid)
    level = np.array([levels[g] for g in grid])
    q = stats.t.isf(level[:, None, None], np.maximum(n - 1, 1))

    low = np.full((k, k), -np.inf)
    high = np.full((k, k), np.inf)
    np.fill_diagonal(low, 0.0)
    np.fill_diagonal(high, 0.0)
    verdict = ["undecided"] * k
    decided_at: list[int | None] = [None] * k
    path: list[list[tuple[int, str]]] = [[] for _ in range(k)]
    latest = np.full(k, -1)  # index in grid of each comparison's last observed look
    for a, g in enumerate(grid):
        low = np.where(usable[a], np.maximum(low, mean[a] - q[a] * se[a]), low)
        high = np.where(usable[a], np.minimum(high, mean[a] + q[a] * se[a]), high)
        for i in np.flatnonzero(observed[a, 1:, 0]) + 1:
            latest[i] = a
            if verdict[i] == "undecided":
                if low[i, 0] > 0:
                    verdict[i] = "better"
                elif high[i, 0] < 0:
                    verdict[i] = "worse"
                elif -me < low[i, 0] and high[i, 0] < me:
                    verdict[i] = "equivalent"
                if verdict[i] != "undecided":
                    decided_at[i] = g
            path[i].append((g, verdict[i]))

    # p-values at each comparison's last look: two-sided paired t, and TOST against -+min_effect
    seen = latest[1:] >= 0
    d_last, n_last, se_last = np.full(k - 1, np.nan), np.zeros(k - 1, dtype=int), np.full(k - 1, np.nan)
    if grid:
        at, rows = np.maximum(latest[1:], 0), np.arange(1, k)
        d_last = np.where(seen, mean[at, rows, 0], np.nan)
        n_last = np.where(seen, n[at, rows, 0], 0)
        se_last = np.where(seen & usable[at, rows, 0], se[at, rows, 0], np.nan)
    z = np.stack([np.abs(d_last) / se_last, (d_last + me) / se_last, (me - d_last) / se_last])
    sf = stats.t.sf(z, np.maximum(n_last - 1, 1))
    p_value, p_tost = 2 * sf[0], np.maximum(sf[1], sf[2])

    # The best: Hsu's constrained MCB on the running pairwise intervals, plus the amounts
    # bounded through the baseline intervals (both hold on the event C of the docstring).
    base_low = low[:, 0].copy()  # config - baseline
    base_high = high[:, 0].copy()
    worse_by = base_low.max() - base_high  # >= max_j low(j - 0) - high(i - 0); 0 - 0 = 0 included
    off = ~np.eye(k, dtype=bool)
    eliminated = ((high < 0) & off).any(axis=1) | (worse_by > 0)
    hsu_low = np.minimum(0.0, np.where(off, low, np.inf).min(axis=1))
    within = hsu_low > -me
    could = ~eliminated
    settled = bool(could.sum() == 1 or within[could].all())

    means = {c: float(np.nanmean(acc[i, : prefix[i]])) if np.isfinite(acc[i, : prefix[i]]).any() else math.nan
             for i, c in enumerate(configs)}  # fmt: skip
    choice, rule = _choose(runs, configs, could, within, means)

    # Which configurations need seeds, and how many.
    undecided = [i for i in range(1, k) if verdict[i] == "undecided"]
    need = set(undecided)
    if undecided:
        need.add(0)
    if not settled:
        need.update(int(i) for i in np.flatnonzero(could))
    look = max(grid, default=0)
    later = [g for g in design.grid() if g > look]
    target = later[0] if later else design.max_seeds
    sequence = _next_seed_values(table.seeds, target)
    next_seeds = {
        configs[i]: tuple(sequence[int(prefix[i]) : target]) for i in sorted(need) if prefix[i] < target
    }
    done = not next_seeds
    if not need:
        reason = "decided"
    elif done:
        reason = "max_seeds reached"
    else:
        parts = []
        if undecided:
            parts.append(f"{len(undecided)} of {m} comparison(s) undecided")
        if not settled:
            parts.append("the best set is not settled")
        reason = "; ".join(parts)

    comparisons = []
    for i in range(1, k):
        if verdict[i] != "undecided":
            to_decide = ""
        elif configs[i] in next_seeds:
            to_decide = (
                f"add {len(next_seeds[configs[i]])} seed(s) to it and to the baseline "
                f"(next look at {target} of at most {design.max_seeds} seeds)"
            )
        else:
            to_decide = (
                f"undecided at the design's most seeds ({design.max_seeds}); deciding it needs a new study "
                "planned with more seeds (recommend_max_seeds) or a larger min_effect"
            )
        j = i - 1
        comparisons.append(
            Comparison(
                config=configs[i], baseline=configs[0], n=int(n_last[j]),
                look=int(grid[latest[i]]) if latest[i] >= 0 else 0, diff=float(d_last[j]),
                low=float(low[i, 0]), high=float(high[i, 0]), p_value=float(p_value[j]), p_tost=float(p_tost[j]),
                level=float(level[latest[i]]) if latest[i] >= 0 else math.nan,
                verdict=verdict[i], decided_at=decided_at[i], path=tuple(path[i]), to_decide=to_decide,
            )
        )  # fmt: skip

    alpha_look = levels.get(look, 0.0) * tails(m)
    return Decision(
        design=design,
        comparisons=tuple(comparisons),
        could_be_best=tuple(c for c, keep in zip(configs, could, strict=True) if keep),
        worse_than_best={
            c: float(max(w, 0.0)) for c, w, gone in zip(configs, worse_by, eliminated, strict=True) if gone
        },
        within_min_effect=tuple(c for c, w in zip(configs, within, strict=True) if w),
        means=means,
        choice=choice,
        rule=rule,
        settled=settled,
        next_seeds=next_seeds,
        look=int(look),
        alpha_look=float(alpha_look),
        boundary=float(levels.get(look, 0.0)),
        done=done,
        reason=reason,
    )


def _choose(
    runs: pd.DataFrame, configs: list[str], could: np.ndarray, within: np.ndarray, means: dict[str, float]
) -> tuple[str | None, str]:
    """The choice and its rule in words (see ``docs/decisions.md``)."""
    rates = _rate_order(runs, configs)
    pool = [c for c, a, b in zip(configs, could, within, strict=True) if a and b]
    provisional = ""
    if not pool:
        pool = [c for c, a in zip(configs, could, strict=True) if a]
        provisional = " (provisional: none is yet shown within min_effect of the best)"
    if not pool:
        return None, "no configuration could be best"

    def by_mean(c: str) -> float:
        return means[c] if math.isfinite(means[c]) else -math.inf

    if rates is not None and not provisional:
        choice = min(pool, key=lambda c: (rates[c], -by_mean(c)))
        return choice, (
            "the smallest total dropout rate among the configurations that could be best and are "
            "within min_effect of the best (ties: the highest mean test accuracy)"
        )
    choice = max(pool, key=by_mean)
    return choice, "the highest mean test accuracy among the configurations that could be best" + provisional


# ----------------------------------------------------------------------------------------
# Planning


def equivalence_power(n: int, sd: float, min_effect: float, level: float, diff: float = 0.0) -> float:
    """Probability that the TOST interval of ``n`` paired seeds (each tail at ``level``) lies
    inside (-min_effect, +min_effect) when the true mean difference is ``diff`` and the paired
    differences have standard deviation ``sd`` (normal).

    Exact up to quadrature by one-dimensional integration over the sample SD: ``S = s / sd``
    follows a chi distribution with ``n - 1`` degrees of freedom scaled by ``1 / sqrt(n - 1)``,
    and given ``S`` the interval ``mean +- q s / sqrt(n)`` (``q = t_{n-1}(1 - level)``) lies
    inside when ``mean`` is within ``min_effect - q s / sqrt(n)`` of 0, a normal probability.
    The integrand vanishes past ``S = min_effect sqrt(n) / (q sd)``; Gauss-Legendre with 96
    nodes up to there (``tests/test_decide.py`` checks it against a simulation).
    """
    if n < 2 or not (sd > 0 and min_effect > 0):
        return 0.0
    df = n - 1
    q = stats.t.isf(level, df)
    scale = sd / math.sqrt(n)
    s_max = min_effect / (q * scale)
    nodes, weights = special.roots_legendre(96)
    s = (nodes + 1) * s_max / 2
    half = min_effect - q * scale * s
    inside = stats.norm.cdf((half - diff) / scale) - stats.norm.cdf((-half - diff) / scale)
    density = stats.chi.pdf(s, df, scale=1 / math.sqrt(df))
    value = float(np.sum(weights * inside * density) * s_max / 2)
    return min(max(value, 0.0), 1.0)


def final_level(max_seeds: int, alpha: float, comparisons: int, start: int, step: int) -> float:
    """The one-sided level of the last look of a design (its spending increment over the tails)."""
    design = Design("baseline", 0.01, alpha, min(start, max_seeds), step, max_seeds)
    return look_levels(design, comparisons)[max_seeds]


def recommend_max_seeds(
    sd: float,
    min_effect: float,
    alpha: float = 0.05,
    comparisons: int = 1,
    start: int = 3,
    step: int = DEFAULT_STEP,
    power: float = 0.8,
    sequential: bool = True,
) -> float:
    """The smallest ``max_seeds`` at which a true difference of 0 is called equivalent with
    probability at least ``power``, for paired differences of standard deviation ``sd``
    (a fraction, e.g. the SD of test-accuracy differences between two configurations run
    with the same seeds), ``min_effect``, ``alpha`` and ``comparisons`` with the baseline.

    With ``sequential`` the design is ``Design(start=start, step=step, max_seeds=N)`` and the
    power is that of the last look alone, at its own level (``final_level``), required to
    reach ``power + 2 alpha / tails(comparisons)``: a comparison whose last interval lies
    inside +-min_effect is called equivalent unless an interval excluded 0 (at a true
    difference of 0, probability at most its two tails summed over all looks,
    ``2 alpha / tails``), and earlier looks only add equivalences. Without ``sequential`` it
    is a fixed design with a single look at ``N`` seeds holding all of ``alpha``, required to
    reach the same. Returns ``inf`` past 2,000 seeds.
    ``sd`` is taken as known: plan with an upper confidence bound of a pilot's spread, not
    its estimate.
    """
    if not (sd > 0 and min_effect > 0):
        raise DropoutlabError(f"recommend_max_seeds: sd {sd!r} and min_effect {min_effect!r} must be > 0")
    margin = 2 * alpha / tails(comparisons)
    if power + margin >= 1:
        return math.inf
    low_n = 2 if not sequential else start
    for n in range(low_n, _SEARCH_LIMIT + 1):
        level = final_level(n, alpha, comparisons, start, step) if sequential else alpha / tails(comparisons)
        if equivalence_power(n, sd, min_effect, level) >= power + margin:
            return n
    return math.inf
