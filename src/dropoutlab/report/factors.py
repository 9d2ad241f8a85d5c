"""The effect of each grid parameter averaged over the others, and the two-way interactions.

For a grid that crosses three or more parameters, the report asks of each parameter what
changing it does to test accuracy, averaged over the others, and of each pair whether the
effect of one depends on the other ("does dropout help a ResNet as much as an MLP?").
Seeds are the unit (every seed runs every configuration): each number is first computed
within a seed, then summarized over seeds:

- the mean at a value (a *marginal mean*): per seed, the mean test accuracy over the
  configurations with that value, each combination of the others weighted equally; over
  seeds, the mean and a t interval on the logit scale (``stats.accuracy_interval``);
- the effect of a value: per seed, its marginal mean minus the one at the reference value;
  over seeds, a paired t (``stats.paired_t``);
- the interaction of A and B: per seed, the effect of a value of A at a value of B minus
  the same effect at B's reference value (a difference of differences); over seeds, as above.

Why this repeated-measures analysis, and what it assumes: ``docs/report.md``, "Grids of
three or more parameters". A seed that did not complete every configuration a number
averages over is left out of that number (``seeds_left_out``). ``factor_contrasts`` gives
the unadjusted tests the analysis adds to its one Holm family; ``factor_results`` makes
``Factors`` of the adjusted rows. Accuracies and differences are fractions.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dropoutlab.report.model import FactorBest, FactorEffect, FactorInteraction, Factors, LevelMean, plain
from dropoutlab.report.stats import NotComputable, accuracy_interval, paired_t, run_metrics, sorted_levels

#: The fewest varied parameters for which the report shows effects averaged over the others.
#: With two, the grid section shows every cell and its interaction F-test.
MIN_FACTORS = 3


# ----------------------------------------------------------------------------------------
# The design: seeds x configurations


@dataclass(frozen=True)
class FactorDesign:
    """A crossed grid as arrays: ``values[s, c]`` is seed ``seeds[s]``'s completed test
    accuracy in cell ``c`` (NaN: no completed run), ``ran[s, c]`` whether that seed has any
    run there, ``codes[f][c]`` the index of cell ``c``'s value in ``levels[f]``."""

    factors: tuple[str, ...]
    levels: dict[str, list]
    reference: dict[str, Any]
    codes: dict[str, np.ndarray]
    seeds: tuple
    values: np.ndarray
    ran: np.ndarray

    @property
    def cells(self) -> int:
        return self.values.shape[1]

    def ref_index(self, factor: str) -> int:
        return self.levels[factor].index(self.reference[factor])

    def empty_cells(self) -> list[dict]:
        """The cells (as ``{factor: value}``) with no completed run of any seed."""
        empty = np.flatnonzero(np.isnan(self.values).all(axis=0)) if self.values.size else []
        return [{f: self.levels[f][self.codes[f][c]] for f in self.factors} for c in empty]


def _key(value) -> str:
    return str(value)


def factor_design(
    runs: pd.DataFrame,
    factors: Sequence[str],
    reference: Mapping[str, Any] | None = None,
    metric: str = "test_acc",
) -> FactorDesign:
    """The seeds x configurations table of a grid that crosses ``factors``.

    ``runs`` is ``Store.runs()`` (one row per run: the parameter columns, ``config``,
    ``seed``, ``status``, ``test_acc``); only completed runs give values. ``reference``
    maps a factor to the value effects are measured against (default: its first value,
    sorted). Raises ``NotComputable`` when a factor takes a single value, or when some
    combination of the factors' values was never run (the grid is not crossed, or not
    finished): effects averaged over the others need every combination.
    """
    factors = tuple(factors)
    if len(factors) < 2:
        raise NotComputable("fewer than two parameters vary")
    levels = {f: sorted_levels(plain(v) for v in runs[f]) for f in factors}
    single = [f for f in factors if len(levels[f]) < 2]
    if single:
        raise NotComputable(f"{', '.join(single)} takes a single value")
    ref = {}
    for f in factors:
        wanted = (reference or {}).get(f, levels[f][0])
        match = [v for v in levels[f] if _key(v) == _key(plain(wanted))]
        ref[f] = match[0] if match else levels[f][0]
    keys = {f: [_key(v) for v in levels[f]] for f in factors}
    combos = list(itertools.product(*(range(len(levels[f])) for f in factors)))
    index = {
        tuple(keys[f][i] for f, i in zip(factors, combo, strict=True)): c for c, combo in enumerate(combos)
    }
    cell_of_run = [
        index.get(tuple(_key(plain(v)) for v in row)) for row in runs[list(factors)].itertuples(index=False)
    ]
    present = {c for c in cell_of_run if c is not None}
    if len(present) < len(combos):
        names = ", ".join(factors[:-1]) + f" and {factors[-1]}"
        raise NotComputable(
            f"the configurations do not cross every value of {names}: {len(present)} of "
            f"{len(combos)} combinations were run, and an effect averaged over the other parameters "
            "needs every combination"
        )
    metrics = run_metrics(runs)
    seeds_all = sorted_levels(s for s in metrics["seed"].tolist() if plain(s) is not None)
    row_of = {s: k for k, s in enumerate(seeds_all)}
    values = np.full((len(seeds_all), len(combos)), math.nan)
    ran = np.zeros(values.shape, dtype=bool)
    sums = np.zeros(values.shape)
    counts = np.zeros(values.shape)
    for cell, seed, status, value in zip(cell_of_run, metrics["seed"], metrics["status"], metrics[metric],
                                         strict=True):  # fmt: skip
        if plain(seed) is None:
            continue
        s = row_of[seed]
        ran[s, cell] = True
        if status == "completed" and np.isfinite(value):
            # A seed twice in one configuration (it should not happen) counts as its mean.
            sums[s, cell] += value
            counts[s, cell] += 1
    done = counts > 0
    values[done] = sums[done] / counts[done]
    codes = {f: np.array([combo[k] for combo in combos]) for k, f in enumerate(factors)}
    return FactorDesign(factors, levels, ref, codes, tuple(plain(s) for s in seeds_all), values, ran)


# ----------------------------------------------------------------------------------------
# Weights over cells and per-seed values


def _weights(design: FactorDesign, selection: Mapping[str, int]) -> np.ndarray:
    """Equal weights over the cells matching ``selection`` (factor -> level index), summing to 1."""
    mask = np.ones(design.cells, dtype=bool)
    for f, i in selection.items():
        mask &= design.codes[f] == i
    return mask / mask.sum()


def _per_seed(design: FactorDesign, weights: np.ndarray, *more: np.ndarray):
    """The per-seed values ``values @ weights`` on the seeds that completed every cell the
    weights touch, the extra weightings on the same seeds, the seeds used and those left out."""
    touched = weights != 0
    block = design.values[:, touched]
    complete = ~np.isnan(block).any(axis=1)
    left = design.ran[:, touched].any(axis=1) & ~complete
    used = tuple(s for s, ok in zip(design.seeds, complete, strict=True) if ok)
    left_out = tuple(s for s, out in zip(design.seeds, left, strict=True) if out)
    filled = np.nan_to_num(design.values[complete])
    return filled @ weights, [filled @ w for w in more], used, left_out


# ----------------------------------------------------------------------------------------
# The numbers


def level_means(design: FactorDesign, confidence: float) -> list[LevelMean]:
    """The mean test accuracy at each value of each factor, averaged over the other factors."""
    out = []
    for f in design.factors:
        for i, level in enumerate(design.levels[f]):
            values, _, used, left_out = _per_seed(design, _weights(design, {f: i}))
            out.append(LevelMean(f, level, accuracy_interval(values, confidence), used, left_out))
    return out


def _pair_order(factors: Sequence[str]) -> list[tuple[str, str]]:
    """Each pair once as ``(factor, by)``: the effect of a dropout parameter is described
    across the other one; otherwise the first in the study's order across the second."""
    pairs = []
    for a, b in itertools.combinations(factors, 2):
        if "dropout" in b and "dropout" not in a:
            a, b = b, a
        pairs.append((a, b))
    return pairs


def factor_contrasts(design: FactorDesign, confidence: float) -> list[dict]:
    """The unadjusted tests: each value of each factor against its reference (``kind ==
    "main"``), and each two-way interaction contrast (``kind == "interaction"``).

    One row per test with ``kind, factor, level, reference, by, by_level, by_reference,
    effect_at_reference, effect_at_level, seeds_left_out`` and the fields of ``stats.paired_t``
    (``n_baseline`` repeats ``n``), ready for ``stats.adjust_family``. Interaction rows exist
    for every value of ``factor`` and of ``by`` other than their references:
    (values of factor - 1) x (values of by - 1) per pair.
    """
    rows = []
    for f in design.factors:
        r = design.ref_index(f)
        for i, level in enumerate(design.levels[f]):
            if i == r:
                continue
            w = _weights(design, {f: i}) - _weights(design, {f: r})
            values, _, _, left_out = _per_seed(design, w)
            rows.append({"kind": "main", "factor": f, "level": level, "reference": design.reference[f],
                         "by": None, "by_level": None, "by_reference": None,
                         "effect_at_reference": math.nan, "effect_at_level": math.nan,
                         **paired_t(values, confidence), "seeds_left_out": left_out})  # fmt: skip
    for f, by in _pair_order(design.factors):
        rf, rb = design.ref_index(f), design.ref_index(by)
        for j, by_level in enumerate(design.levels[by]):
            if j == rb:
                continue
            for i, level in enumerate(design.levels[f]):
                if i == rf:
                    continue
                at_level = _weights(design, {f: i, by: j}) - _weights(design, {f: rf, by: j})
                at_ref = _weights(design, {f: i, by: rb}) - _weights(design, {f: rf, by: rb})
                values, (x_level, x_ref), _, left_out = _per_seed(design, at_level - at_ref, at_level, at_ref)
                rows.append({"kind": "interaction", "factor": f, "level": level, "reference": design.reference[f],
                             "by": by, "by_level": by_level, "by_reference": design.reference[by],
                             "effect_at_reference": float(x_ref.mean()) if x_ref.size else math.nan,
                             "effect_at_level": float(x_level.mean()) if x_level.size else math.nan,
                             **paired_t(values, confidence), "seeds_left_out": left_out})  # fmt: skip
    for row in rows:
        row["n_baseline"] = row["n"]
    return rows


def factor_results(design: FactorDesign, means: Sequence[LevelMean], adjusted: Sequence[Mapping]) -> Factors:
    """``Factors`` from the design, its marginal means and the rows of ``factor_contrasts``
    once adjusted in the report's family (with ``ci_low_unadjusted``, ``p_adjusted``,
    ``significant`` and ``seeds_needed``)."""
    effects = [FactorEffect.from_row(row) for row in adjusted if row["kind"] == "main"]
    interactions = [FactorInteraction.from_row(row) for row in adjusted if row["kind"] == "interaction"]
    return Factors(
        factors=design.factors,
        levels={f: list(v) for f, v in design.levels.items()},
        reference=dict(design.reference),
        cells=design.cells,
        seeds=design.seeds,
        empty_cells=tuple(design.empty_cells()),
        means=tuple(means),
        effects=tuple(effects),
        interactions=tuple(interactions),
    )


# ----------------------------------------------------------------------------------------
# The best value of a multi-level factor (dropout kind, model family)

#: The fewest values a categorical parameter needs for its own could-be-best set: with two,
#: the comparison of the two says it all.
MIN_BEST_LEVELS = 3


def best_factors(runs: pd.DataFrame, varied: Sequence[str]) -> list[str]:
    """The varied parameters that get their own could-be-best set: categorical (not numbers:
    a kind, a model family, an optimizer) with at least ``MIN_BEST_LEVELS`` values."""
    out = []
    for f in varied:
        values = [plain(v) for v in runs[f].dropna().unique()]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if not numeric and len(values) >= MIN_BEST_LEVELS:
            out.append(f)
    return out


def factor_best(
    runs: pd.DataFrame,
    factor: str,
    others: Sequence[str],
    reference: Any,
    min_effect: float,
    alpha: float,
) -> FactorBest:
    """The values of ``factor`` that could be the best on test accuracy, compared with each
    other, averaged over ``others`` (the other varied parameters).

    ``runs``: the runs of the sub-grids that vary ``factor`` (``analysis.crossing_runs``).
    Only the combinations of ``others`` run with every value of ``factor`` count, so each
    value is averaged over the same cells (the baseline beside a kind x rate grid, say, has
    one kind only and stays out). Per seed, a value's test accuracy is the mean over those
    cells; a seed that did not complete them all is missing data for that value. Then
    ``decide`` (one look at these seeds, ``alpha``, ``min_effect``) compares the values paired
    by seed, with the value ``reference`` as its baseline: its Hsu MCB gives the could-be-best
    set, which holds the true best with probability at least ``1 - alpha``. Raises
    ``NotComputable`` when no combination of ``others`` ran with every value, or fewer than
    two seeds did.
    """
    from dropoutlab.report.decide import Design, decide

    levels = sorted_levels(plain(v) for v in runs[factor].dropna())
    others = [o for o in others if o in runs.columns]
    key = runs[others].astype(str).agg("\x1f".join, axis=1) if others else pd.Series("", index=runs.index)
    value = runs[factor].map(lambda v: _key(plain(v)))
    with_all = value.groupby(key).agg(lambda v: set(v)) if len(runs) else pd.Series(dtype=object)
    complete = {k for k, seen in with_all.items() if seen >= {_key(x) for x in levels}}
    if not complete:
        raise NotComputable(
            f"no setting of {', '.join(others)} ran with every value of {factor}, so the values cannot be "
            "compared on the same cells"
        )
    used = runs[key.isin(complete)]
    cells = len(complete)
    metrics = run_metrics(used)
    good = metrics[metrics["status"].eq("completed") & np.isfinite(metrics["test_acc"])]
    seeds = sorted_levels(plain(s) for s in metrics["seed"])
    rows = []
    for level in levels:
        for seed in seeds:
            here = good[(value[good.index] == _key(level)).to_numpy() & (good["seed"] == seed).to_numpy()]
            # the seed completed every cell this value averages over, else it is missing data
            full = key[here.index].nunique() == cells
            rows.append({"config": _level_label(factor, level), "seed": seed,
                         "status": "completed" if full else "failed",
                         "test_acc": float(here.groupby(key[here.index])["test_acc"].mean().mean())
                         if full else math.nan})  # fmt: skip
    table = pd.DataFrame(rows)
    if len(seeds) < 2:
        raise NotComputable(f"{len(seeds)} seed(s); comparing the values of {factor} needs two or more")
    ref = next((v for v in levels if _key(v) == _key(plain(reference))), levels[0])
    design = Design(
        _level_label(factor, ref), min_effect, alpha, start=len(seeds), step=1, max_seeds=len(seeds)
    )
    over = {o: sorted_levels(plain(v) for v in used[o].dropna()) for o in others}
    configs = tuple(dict.fromkeys(used["config"].astype(str)))
    return FactorBest(factor=factor, levels=tuple(levels), reference=ref, over=over, configs=configs,
                      seeds=tuple(seeds), decision=decide(table, design))  # fmt: skip


def _level_label(factor: str, level) -> str:
    """How a value of a factor is named in the decision's table: ``model=cnn``."""
    return f"{factor}={_key(level)}"
