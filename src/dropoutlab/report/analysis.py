"""One analysis of a study, computed once; every report (HTML, Markdown, JSON, notebook) renders it.

``analyze(store, study)`` reads the study's runs from the store and returns an ``Analysis``
(``model.py``): per-configuration summaries, the comparisons with the baseline, the
interaction test of a two-parameter grid, the effect of each parameter averaged over the
others and their two-way interactions in a grid of three or more (``factors.py``), Monte
Carlo dropout against the deterministic pass (``mc_dropout.py``), the trend of the train-test
gap along a swept rate, the findings as data (``findings.py``), how the runs were trained
(``Methods``, from each run's stored ``env`` and ``spec``) and the figures to draw
(``FigurePlan``). Nothing here draws, formats a table or writes a file.

The comparisons with the baseline are decided by ``decide`` (``_decision``): four verdicts,
each read off an interval simultaneous over the comparisons and the looks; with no single
baseline, one decision per stratum at ``alpha / S`` (``_strata_decisions``). The values of a
categorical parameter with three or more values (kind, model) get their own could-be-best
set from ``decide`` too (``_factor_best``, together at ``alpha``). Every other claim
of a difference comes from one family of tests (``_Family``), adjusted together with Holm's
method at ``alpha``: each section below adds its tests (each configuration against the
baseline, kept as members, the interaction test, the effects and interactions of the
parameters, the gap trend, Monte Carlo dropout's largest number of passes against the
deterministic pass), and reads them back once the family is adjusted. Their intervals are
simultaneous over that family (Bonferroni), so one that excludes 0 always goes with a Holm
rejection when ``confidence == 1 - alpha``; a rejection at a later Holm step is printed with
the interval at its step's level (``holm_step``), which excludes 0 as the claim does. Anything else that compares
configurations (the runner-up, the two best placements) was picked by looking at the data:
those findings are marked ``exploratory`` and kept out of the headline, as is the rate at
which a curve fitted along a swept rate peaks (``_rate_peak``, a bootstrap over seeds).

A section applies to a study or stays silent: the interaction test and the factor effects
apply to a study whose file crosses two (three) parameters in one sub-grid (or, without a
stored definition, wherever that many parameters vary), and the interaction test reads only
the runs of the sub-grids that cross its two parameters (``crossing_runs``). A section that applies but cannot
be computed says why in ``Analysis.unavailable``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from dropoutlab.report import factors as fx
from dropoutlab.report.decide import Decision, Design, decide
from dropoutlab.report.findings import build_findings
from dropoutlab.report.mc_dropout import contrast_rows, mc_dropout, mc_frame
from dropoutlab.report.model import (
    ALPHA,
    CONFIDENCE,
    MIN_EFFECT,
    NOT_RECORDED,
    POWER,
    Analysis,
    Comparison,
    ConfigSummary,
    FactorBest,
    Factors,
    FigurePlan,
    GapTrend,
    Interaction,
    Levels,
    Methods,
    RatePeak,
    plain,
)
from dropoutlab.report.stats import (
    ACCURACY_METRICS,
    Interval,
    NotComputable,
    adjust_family,
    baseline_comparisons,
    compare_configs,
    dropout_strata,
    interaction_test,
    param_columns,
    rate_axis,
    rate_peak,
    resolve_baseline,
    summarize,
    value_matches,
    varied_params,
)
from dropoutlab.report.summary import baseline_name, config_labels
from dropoutlab.report.text import slug, value_text
from dropoutlab.runs import flatten
from dropoutlab.store import history_frame, runs_frame


@dataclass(frozen=True)
class StudyData:
    """One study as the analysis reads it. The grid parameters travel here, typed, rather
    than in ``DataFrame.attrs`` (which pandas drops in many operations).

    ``runs``: ``Store.runs()`` layout, one row per run; ``params``: its grid parameter
    columns (dotted keys); ``history``: ``Store.history()`` layout; ``records``: the export
    layout (``Store.records``), for the methods, Monte Carlo dropout and learned rates;
    ``crossed``: the most parameters one sub-grid of the study file crosses (None when the
    store kept no study definition: then every section that the varied parameters allow applies);
    ``grids``: the study file's sub-grids as stored (``[[grid]]`` tables, key -> values), so a
    section that compares values of two parameters uses only the cells a sub-grid planned
    (empty without a stored definition: then every run counts).
    """

    runs: pd.DataFrame
    params: tuple[str, ...]
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    records: tuple[dict, ...] = ()
    crossed: int | None = None
    grids: tuple[dict, ...] = ()

    @classmethod
    def from_records(cls, records: Sequence[dict], definition: dict | None = None) -> StudyData:
        """From store records (``Store.records(study)``) and the study's stored definition."""
        runs = runs_frame(list(records))
        return cls(runs, tuple(runs.attrs["params"]), history_frame(list(records)), tuple(records),
                   _crossed(definition), _grids(definition))  # fmt: skip

    @classmethod
    def from_runs(cls, runs: pd.DataFrame, params: Sequence[str] | None = None, **more) -> StudyData:
        """From a runs table; ``params`` default to ``runs.attrs["params"]`` (``Store.runs()``)."""
        return cls(runs, tuple(param_columns(runs, params)), **more)


def _crossed(definition: dict | None) -> int | None:
    """The most keys with two or more values in one sub-grid (a table of rates is one key)."""
    if not definition or "grid" not in definition:
        return None
    grids = definition["grid"] if isinstance(definition["grid"], list) else [definition["grid"]]
    return max((sum(isinstance(v, list) and len(v) > 1 for v in g.values()) for g in grids), default=0)


def _grids(definition: dict | None) -> tuple[dict, ...]:
    """The sub-grids of a stored definition (one table, or a list of ``[[grid]]`` tables)."""
    if not definition or "grid" not in definition:
        return ()
    grids = definition["grid"] if isinstance(definition["grid"], list) else [definition["grid"]]
    return tuple(g for g in grids if isinstance(g, dict))


def crossing_runs(runs: pd.DataFrame, grids: Sequence[dict], keys: Sequence[str]) -> pd.Series:
    """Which runs belong to a sub-grid of the study file that crosses every one of ``keys``
    (each given two or more values there): a boolean Series on ``runs.index``. Without
    sub-grids (no stored definition), or when none crosses them all, every run counts.

    A grid ``{"dropout.conv": [0.0]}`` beside ``{"dropout.conv.kind": [...], "dropout.conv":
    [0.1, 0.3]}`` plans no cell of kind x rate 0 but the baseline's: a test over kind x rate
    must not ask for the cells that were never planned."""
    crossing = [g for g in grids if all(len(_grid_values(g, key)) > 1 for key in keys)]
    if not crossing:
        return pd.Series(True, index=runs.index)
    mask = pd.Series(False, index=runs.index)
    for grid in crossing:
        inside = pd.Series(True, index=runs.index)
        for column in _grid_columns(grid):
            if column in runs.columns:
                values = _grid_values(grid, column)
                inside &= pd.concat([value_matches(runs[column], v) for v in values], axis=1).any(axis=1)
        mask |= inside
    return mask


def _grid_columns(grid: dict) -> list[str]:
    """The dotted keys a sub-grid sets: its keys, a table of rates flattened (``dropout.conv``)."""
    columns: dict[str, None] = {}
    for key, given in grid.items():
        for value in given if isinstance(given, list) else [given]:
            columns.update(dict.fromkeys(flatten({key: value}) if isinstance(value, dict) else [key]))
    return list(columns)


def _grid_values(grid: dict, column: str) -> list:
    """The values a sub-grid gives ``column`` (a dotted key), reading tables of rates too."""
    values: list = []
    for key, given in grid.items():
        for value in given if isinstance(given, list) else [given]:
            flat = flatten({key: value}) if isinstance(value, dict) else {key: value}
            if column in flat and flat[column] not in values:
                values.append(flat[column])
    return values


def _decision(
    runs: pd.DataFrame, base: str | None, levels: Levels, sequential: dict | None
) -> Decision | None:
    """Which configuration to choose and how sure that is (``decide``): with the study's own
    sequential design when it was run ``--until-decided`` (``sequential``: the ``Design`` its
    looks recorded, kept whole, since another level or margin would void its looks), else as a
    fixed design of one look at the seeds it has, at the report's alpha and min_effect."""
    if sequential:
        return decide(runs, Design(**sequential))
    if base is None or runs.empty or runs["config"].nunique() < 2:
        return None
    seeds = int(runs.groupby("config")["seed"].nunique().max())
    if seeds < 2:
        return None
    return decide(runs, Design(base, levels.min_effect, levels.alpha, start=seeds, step=1, max_seeds=seeds))


def _strata_decisions(runs: pd.DataFrame, strata: dict[str, str], levels: Levels) -> dict[str, Decision]:
    """With no single baseline: per stratum (a configuration without dropout and those with
    dropout sharing its other settings, ``stats.dropout_strata``), the decision of one look at
    its seeds, at ``alpha / S`` for the ``S`` strata that can be decided, so that every claim
    of every stratum holds together with probability at least ``1 - alpha``."""
    groups: dict[str, list[str]] = {}
    for config, base in strata.items():
        groups.setdefault(base, [base]).append(config)
    tables = {}
    for base, configs in groups.items():
        mine = runs[runs["config"].isin(configs)]
        seeds = int(mine.groupby("config")["seed"].nunique().max()) if not mine.empty else 0
        if seeds >= 2 and mine["config"].nunique() >= 2:
            tables[base] = (mine, seeds)
    share = levels.alpha / max(len(tables), 1)
    return {base: decide(mine, Design(base, levels.min_effect, share, start=seeds, step=1, max_seeds=seeds))
            for base, (mine, seeds) in tables.items()}  # fmt: skip


def analyze(
    store,
    study: str,
    baseline=None,
    alpha: float = ALPHA,
    confidence: float = CONFIDENCE,
    min_effect: float | None = None,
    power: float = POWER,
) -> Analysis:
    """The analysis of ``study`` in ``store`` (a ``dropoutlab.Store``): everything the report says.

    ``baseline``: None (the configuration without dropout), a ``config`` label, a
    ``"key=value,..."`` string or a dict. ``alpha``: family-wise error rate of the tests;
    ``confidence``: coverage of the intervals; ``min_effect``: smallest difference in test
    accuracy worth detecting, a fraction (0.01 = one percentage point; None: the study
    file's, else 0.01); ``power``: the power "seeds needed" aims at.
    Raises ``DropoutlabError`` for a bad baseline or level.
    """
    definition = store.study_definition(study) or {}
    min_effect = (definition.get("min_effect") or MIN_EFFECT) if min_effect is None else min_effect
    levels = Levels(alpha, confidence, min_effect, power)
    data = StudyData.from_records(store.records(study), definition)
    return _analyze(data, study, baseline, levels, tuple(store.looks(study)))


class _Family:
    """The report's one family of tests. Each section ``add``s its unadjusted tests (rows of
    ``stats.compare_values`` and the like) and keeps the function it gets back; ``adjust``
    applies Holm, the simultaneous intervals and the seeds needed to all of them together;
    then each section's function gives its rows, adjusted."""

    def __init__(self, levels: Levels) -> None:
        self.levels = levels
        self._rows: list[dict] = []
        self._table = pd.DataFrame()

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, rows: Iterable[dict]) -> Callable[[], list[pd.Series]]:
        start = len(self._rows)
        self._rows.extend(rows)
        stop = len(self._rows)
        return lambda: [self._table.iloc[i] for i in range(start, stop)]

    def adjust(self) -> None:
        if self._rows:
            self._table = adjust_family(pd.DataFrame(self._rows), self.levels, len(self._rows))


def _analyze(
    data: StudyData,
    study: str = "",
    baseline=None,
    levels: Levels | None = None,
    looks: tuple[dict, ...] = (),
) -> Analysis:
    """The ``Analysis`` of ``data`` at ``levels`` (default: ``Levels()``), with the ``looks`` of a
    study run ``--until-decided``; ``analyze`` reads both from a store."""
    levels = levels or Levels()
    runs, params = data.runs, list(data.params)  # the parameters travel here, never in runs.attrs
    empty = runs.empty
    summary = pd.DataFrame() if empty else summarize(runs, params, levels.confidence)
    configs = tuple(_config_summaries(summary, params))
    varied = [] if empty else varied_params(runs, params)
    base = None if empty else resolve_baseline(runs, baseline, params)
    strata = dropout_strata(runs, params) if base is None and baseline is None and not empty else {}
    base_name = baseline_name(runs, base, varied)
    completed = any(c.n > 0 for c in configs)
    rate_key, on_line = (None, pd.Series(False, index=runs.index)) if empty else rate_axis(runs, params)
    grid = (varied[0], varied[1]) if len(varied) == 2 else None

    family, unavailable = _Family(levels), {}
    sections: dict[str, Callable[[], Any]] = {}
    if completed:
        applies = {n: data.crossed is None or data.crossed >= n for n in (2, fx.MIN_FACTORS)}
        sections["comparisons"] = _comparisons(runs, params, base or strata, len(configs), family)
        if grid is not None and applies[2]:
            sections["interaction"] = _interaction(runs, params, grid, family, data.grids)
        if len(varied) >= fx.MIN_FACTORS and applies[fx.MIN_FACTORS]:
            sections["factors"] = _factors(runs, varied, _reference_levels(runs, base, varied), family)
        if rate_key is not None:
            sections["gap_trend"] = _gap_trend(runs, summary, rate_key, on_line, family)
        sections["mc"] = _mc(runs, data.records, family)
    family.adjust()
    results = {}
    for name, finish in sections.items():
        try:
            results[name] = finish()
        except NotComputable as error:
            unavailable[name] = str(error)
    if completed and (data.history.empty or "epoch" not in data.history):
        unavailable["curves"] = "no per-epoch history was stored for these runs"
    best = _factor_best(runs, varied, base, data.grids, levels, unavailable) if completed else ()
    peak = None
    if completed and rate_key is not None:
        try:
            peak = _rate_peak(runs, rate_key, on_line, levels.confidence)
        except NotComputable as error:
            unavailable["rate_peak"] = str(error)

    analysis = Analysis(
        study=study, alpha=levels.alpha, confidence=levels.confidence, min_effect=levels.min_effect,
        power=levels.power, params=params, varied=varied, baseline=base, baseline_name=base_name,
        configs=configs, summary=summary, comparisons=results.get("comparisons", ()), family_size=len(family),
        interaction=results.get("interaction"), gap_trend=results.get("gap_trend"), rate_key=rate_key,
        grid=grid, methods=_methods(runs, data.records), unavailable=unavailable,
        labels=config_labels(runs, params, base) if not empty else {}, runs=runs, history=data.history,
        rate_on_line=on_line, factors=results.get("factors"), mc=results.get("mc"),
        learned_rates=learned_rate_frame(data.records, runs), strata=strata,
        decision=_decision(runs, base, levels, looks[-1]["design"] if looks else None) if completed else None,
        looks=looks, rate_peak=peak, factor_best=best,
        strata_decisions=_strata_decisions(runs, strata, levels) if completed else {},
    )  # fmt: skip
    figures = tuple(_figure_plans(analysis)) if completed else ()
    return replace(analysis, findings=tuple(build_findings(analysis)), figures=figures)


# ----------------------------------------------------------------------------------------
# The sections of the family: each adds its tests (or raises NotComputable, now or when it
# reads them back) and returns the function that makes its records from the adjusted rows.


def _deferred(error: NotComputable) -> Callable[[], Any]:
    def fail():
        raise error

    return fail


def _comparisons(runs, params, base, n_configs: int, family: _Family) -> Callable[[], tuple[Comparison, ...]]:
    """Each configuration against the baseline (or, with strata, the same settings without dropout)."""
    if not base:
        why = "the study has one configuration" if n_configs == 1 else "no baseline to compare with"
        return _deferred(NotComputable(why))
    rows = family.add(
        baseline_comparisons(runs, base, params, "test_acc", family.levels.confidence).to_dict("records")
    )
    return lambda: tuple(Comparison.from_row(row) for row in rows())


def _interaction(runs, params, grid, family: _Family, grids=()) -> Callable[[], Interaction]:
    """The two-way ANOVA interaction test of a two-parameter grid, over the runs of the study
    file's sub-grids that cross both parameters (``crossing_runs``): a cell no sub-grid planned
    is not missing."""
    inside = crossing_runs(runs, grids, grid)
    left_out = tuple(dict.fromkeys(runs.loc[~inside, "config"].astype(str)))
    try:
        raw = interaction_test(runs[inside], params, grid)
    except NotComputable as error:
        return _deferred(error)
    raw["left_out"] = left_out
    rows = family.add([{"p_value": raw["p_value"], "diff": math.nan, "se": math.nan, "df": math.nan,
                        "ci_low": math.nan, "ci_high": math.nan, "sd": math.nan, "test": "F"}])  # fmt: skip

    def finish() -> Interaction:
        (row,) = rows()
        return Interaction(**raw, p_adjusted=float(row["p_adjusted"]), significant=bool(row["significant"]))

    return finish


def _factors(runs, varied, reference, family: _Family) -> Callable[[], Factors]:
    """The effect of each parameter averaged over the others, and their two-way interactions."""
    try:
        design = fx.factor_design(runs, varied, reference)
    except NotComputable as error:
        return _deferred(error)
    means = fx.level_means(design, family.levels.confidence)
    rows = family.add(fx.factor_contrasts(design, family.levels.confidence))
    return lambda: fx.factor_results(design, means, rows())


def _gap_trend(runs, summary, key, on_line, family: _Family) -> Callable[[], GapTrend]:
    """The train-test gap at the two ends of the swept rate, and its change."""
    configs = set(runs.loc[on_line, "config"])
    line = summary[summary["config"].isin(configs) & (summary["n"] > 0)]
    line = line.dropna(subset=["gap_acc_mean"]).sort_values(key, kind="stable")
    if len(line) < 2:
        return _deferred(
            NotComputable(f"fewer than two values of {key} have completed runs with a measured gap")
        )
    low, high = line.iloc[0], line.iloc[-1]
    change = family.add(
        [compare_configs(runs, high["config"], low["config"], "gap_acc", family.levels.confidence)]
    )
    return lambda: GapTrend(
        key=key, low_value=plain(low[key]), high_value=plain(high[key]), low_config=str(low["config"]),
        high_config=str(high["config"]), low_test_acc=float(low["test_acc_mean"]),
        high_test_acc=float(high["test_acc_mean"]), low_gap=float(low["gap_acc_mean"]),
        high_gap=float(high["gap_acc_mean"]), change=Comparison.from_row(change()[0]),
    )  # fmt: skip


def _factor_best(runs, varied, base, grids, levels: Levels, unavailable: dict) -> tuple[FactorBest, ...]:
    """Per categorical parameter with three or more values (``factors.best_factors``): the
    values that could be best, compared with each other over the runs of the sub-grids that
    vary it. The sets share ``alpha``: with ``F`` of them each is at ``alpha / F``, so all hold
    together with probability at least ``1 - alpha``."""
    names = fx.best_factors(runs, varied)
    reference = _reference_levels(runs, base, varied) or {}
    out, why = [], []
    for factor in names:
        inside = crossing_runs(runs, grids, [factor])
        others = [p for p in varied if p != factor]
        try:
            out.append(fx.factor_best(runs[inside], factor, others, reference.get(factor), levels.min_effect,
                                      levels.alpha / len(names)))  # fmt: skip
        except NotComputable as error:
            why.append(f"{factor}: {error}")
    if why:
        unavailable["factor_best"] = "; ".join(why)
    return tuple(out)


def _rate_peak(runs: pd.DataFrame, key: str, on_line: pd.Series, confidence: float) -> RatePeak | None:
    """Exploratory: where a quadratic fitted to test accuracy along the swept rate peaks, with a
    bootstrap interval over seeds (``stats.rate_peak``); None with fewer than three rates on
    the line, where no curve with a peak can be fitted and nothing is said."""
    line = runs[on_line.to_numpy(dtype=bool)]
    rates = pd.to_numeric(line[key], errors="coerce")
    values = sorted(set(rates.dropna().tolist()))
    if len(values) < 3:
        return None
    done = line["status"].eq("completed").to_numpy() & np.isfinite(
        pd.to_numeric(line["test_acc"], errors="coerce")
    )
    samples, configs = [], []
    for value in values:
        here = np.isclose(rates.to_numpy(dtype=float), value)
        samples.append(pd.to_numeric(line.loc[here & done, "test_acc"]).to_numpy(dtype=float))
        configs.append(str(line.loc[here, "config"].iloc[0]))
    return RatePeak(key=key, configs=tuple(configs), **rate_peak(values, samples, confidence))


def _mc(runs, records, family: _Family) -> Callable[[], Any]:
    """Monte Carlo dropout: its largest number of passes against the deterministic pass."""
    frame = mc_frame(list(records), runs)
    if frame.empty:
        return lambda: None
    rows = family.add(contrast_rows(frame, family.levels.confidence))
    return lambda: mc_dropout(frame, tuple(Comparison.from_row(r) for r in rows()), family.levels.confidence)


def _reference_levels(runs: pd.DataFrame, base: str | None, varied: list[str]) -> dict | None:
    """The baseline's value of each varied parameter: what factor effects are measured against."""
    if base is None:
        return None
    row = runs[runs["config"] == base].iloc[0]
    return {p: plain(row[p]) for p in varied}


# ----------------------------------------------------------------------------------------
# Configurations and their names


def _config_summaries(summary: pd.DataFrame, params: list[str]):
    for _, row in summary.iterrows():

        def interval(m: str, row=row) -> Interval:
            extra = (row[f"{m}_min"], row[f"{m}_max"]) if m in ACCURACY_METRICS else (math.nan, math.nan)
            return Interval(float(row[f"{m}_mean"]), float(row[f"{m}_ci_low"]), float(row[f"{m}_ci_high"]),
                            int(row["n"]), float(row[f"{m}_std"]), float(extra[0]), float(extra[1]),
                            str(row[f"{m}_interval"]))  # fmt: skip

        yield ConfigSummary(
            config=str(row["config"]), params={p: plain(row[p]) for p in params}, seeds=tuple(row["seeds"]),
            n=int(row["n"]), n_diverged=int(row["n_diverged"]), n_failed=int(row["n_failed"]),
            **{m: interval(m) for m in ("test_acc", "val_acc", "train_acc", "train_eval_acc", "gap_acc", "best_epoch")},
        )  # fmt: skip


def learned_rate_frame(records: Sequence[dict], runs: pd.DataFrame) -> pd.DataFrame:
    """One row per completed run, epoch and slot of concrete dropout: ``config, seed, epoch,
    slot, rate`` (empty when no run learned a rate)."""
    if "id" not in runs:
        return pd.DataFrame()
    completed = runs[runs["status"] == "completed"]
    config = dict(zip(completed["id"], completed["config"], strict=True))
    rows = [
        {"config": config[r["id"]], "seed": r["seed"], **entry}
        for r in records
        if r["id"] in config
        for entry in r.get("learned_rates", ())
    ]
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------
# Methods: how the runs were trained

#: Training settings named in the methods section, as ``spec`` keys.
TRAINING_KEYS = ("dataset", "model", "epochs", "batch_size", "optimizer", "normalize", "validation",
                 "early_stopping", "init", "eval_train")  # fmt: skip


def _count(values) -> dict:
    return dict(Counter(values).most_common())


def _engine(env: dict) -> str:
    if env.get("engine"):
        return str(env["engine"])
    # Stores written before the engine was recorded: a stacked run recorded its stack.
    return "stacked" if env.get("stack") else f"single ({NOT_RECORDED}, no stack stored)"


def _methods(runs: pd.DataFrame, records: Sequence[dict]) -> Methods:
    envs = [r.get("env") or {} for r in records]
    specs = [r.get("spec") or {} for r in records]
    statuses = _count(runs["status"]) if "status" in runs else {}
    stacks = [e["stack"].get("size") for e in envs if isinstance(e.get("stack"), dict)]
    training: dict[str, Any] = {}
    for key in TRAINING_KEYS:
        values = {repr(s.get(key)) for s in specs if key in s}
        if specs and len(values) == 1 and all(key in s for s in specs):
            training[key] = specs[0][key]
    recorded = {k: _count(str(e.get(k, NOT_RECORDED)) for e in envs) for k in ("device", "dtype", "threads")}
    return Methods(
        runs=len(runs), statuses={str(k): int(v) for k, v in statuses.items()},
        engines=_count(_engine(e) for e in envs),
        stack_sizes={int(k): v for k, v in _count(s for s in stacks if s is not None).items()},
        devices=recorded["device"], dtypes=recorded["dtype"], threads=recorded["threads"],
        # with the data's identity (env["data"]: what the dataset's name stood for, dropoutlab.data.identity)
        versions={k: _count(str(e.get(k, NOT_RECORDED)) for e in envs) for k in ("dropoutlab", "torch", "python",
                                                                                  "data")},
        training=training,
    )  # fmt: skip


# ----------------------------------------------------------------------------------------
# Figures and their file names


def _short_name(analysis: Analysis, config: str) -> str:
    """The parameters where ``config`` differs from the baseline, for a file name: ``"hidden1-0.5"``;
    ``"no-dropout"`` (or ``"baseline"``) for the baseline itself; every varied parameter
    when there is no baseline."""
    row = analysis.config(config).params
    if config == analysis.baseline:
        name = analysis.baseline_name or ""
        return name.replace(" ", "-") if name in ("no dropout", "no regularization") else "baseline"
    if analysis.baseline is not None:
        ref = analysis.config(analysis.baseline).params
        keys = [p for p in analysis.varied if row.get(p) != ref.get(p)]
    else:
        keys = list(analysis.varied)
    return slug("-".join(f"{p.rsplit('.', 1)[-1]}-{value_text(row.get(p))}" for p in keys)) if keys else "all"


#: Up to this many configurations the learning curves show every one; beyond, only the
#: ``CURVES_BEST`` with the highest mean test accuracy and the baseline (the tables list all).
CURVES_ALL = 12
CURVES_BEST = 8


def _curve_configs(analysis: Analysis) -> tuple[str, ...]:
    """The configurations with completed runs whose learning curves are drawn: all of them up to
    ``CURVES_ALL``, else the baseline and the ``CURVES_BEST`` best by mean test accuracy, best first."""
    done = [c for c in analysis.configs if c.n > 0]
    if len(done) <= CURVES_ALL:
        return tuple(c.config for c in done)
    ranked = sorted(done, key=lambda c: -c.test_acc.mean if math.isfinite(c.test_acc.mean) else math.inf)
    best = [c.config for c in ranked if c.config != analysis.baseline][:CURVES_BEST]
    base = [c.config for c in done if c.config == analysis.baseline]
    return tuple(base + best)


def _figure_plans(analysis: Analysis):
    if analysis.rate_key is not None:
        key = analysis.rate_key
        yield FigurePlan("rate-sweep-test-acc", "rate_accuracy", f"Accuracy vs {key}",
                         f"Line chart of train, validation and test accuracy against {key}")  # fmt: skip
        yield FigurePlan("rate-sweep-gap", "rate_gap", f"Gap vs {key}",
                         f"Line chart of train minus test accuracy against {key}")  # fmt: skip
    if analysis.grid is not None:
        x_key, y_key = analysis.grid
        yield FigurePlan("grid-test-acc", "heatmap", f"Test accuracy over {y_key} x {x_key}",
                         f"Heatmap of test accuracy over {y_key} and {x_key}")  # fmt: skip
    if not analysis.learned_rates.empty:
        yield FigurePlan("learned-rates", "learned_rates", "Learned dropout rate per epoch",
                         "Line chart of each slot's learned dropout rate against the epoch, "
                         "mean over seeds with its interval")  # fmt: skip
    if analysis.mc is not None:
        for metric, name in (("acc", "test accuracy"), ("nll", "NLL"), ("ece", "ECE")):
            yield FigurePlan(f"mc-{metric}", f"mc_{metric}", f"{name[0].upper()}{name[1:]} vs MC dropout passes",
                             f"Line chart of mean {name} over seeds against the number of Monte Carlo "
                             "dropout passes, with the deterministic pass at the left")  # fmt: skip
        for config in dict.fromkeys(analysis.mc.levels["config"]):
            if config in analysis.mc.no_dropout:
                continue
            label = analysis.label(config)
            yield FigurePlan("reliability-" + _short_name(analysis, config), "reliability",
                             f"Reliability: {label}",
                             f"Reliability diagram of {label}: accuracy against confidence per bin, "
                             "deterministic pass and Monte Carlo dropout", config=config)  # fmt: skip
    if analysis.factors is not None:
        yield FigurePlan("factors-test-acc", "factor_means", "Mean test accuracy at each value of each parameter",
                         "One small panel per parameter: mean test accuracy at each of its values, averaged "
                         "over the other parameters, with its interval")  # fmt: skip
    if "curves" in analysis.unavailable:
        return
    shown = _curve_configs(analysis)
    if len(shown) == sum(c.n > 0 for c in analysis.configs):
        yield FigurePlan("curves-all", "comparison", "All configurations",
                         "Loss and accuracy per epoch of every configuration")  # fmt: skip
    else:
        yield FigurePlan("curves-best", "comparison", f"The {CURVES_BEST} best configurations by mean test accuracy",
                         f"Loss and accuracy per epoch of the {CURVES_BEST} configurations with the highest mean "
                         f"test accuracy{', and the baseline' if analysis.baseline in shown else ''}",
                         configs=shown)  # fmt: skip
    # a name given twice gets -2, -3... when written (html._figure_names)
    for summary in (analysis.config(c) for c in shown):
        label = analysis.label(summary.config)
        yield FigurePlan("curves-" + _short_name(analysis, summary.config), "curves", f"Learning curves: {label}",
                         f"Loss and accuracy per epoch for {label}, train and validation",
                         config=summary.config)  # fmt: skip
