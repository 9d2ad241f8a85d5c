"""One analysis of a study, computed once; every report (HTML, Markdown, JSON, notebook) renders it.

``analyze(store, study)`` reads the study's runs from the store and returns an ``Analysis``:
per-configuration summaries, the comparisons with the baseline, the interaction test of a
two-parameter grid, the effect of each parameter averaged over the others and their two-way
interactions in a grid of three or more (``factors.py``), Monte Carlo dropout against the
deterministic pass (``mc_dropout.py``), the trend of the train-test gap
along a swept rate, the findings as data (``Finding``: kind, configurations, numbers,
sentence), how the runs were trained (``Methods``, from each run's stored ``env`` and
``spec``) and the figures to draw (``FigurePlan``). Nothing here draws, formats a table or
writes a file.

All claims of a difference the report makes come from one family of tests, adjusted
together with Holm's method at ``alpha``: each configuration against the baseline, the
interaction test, the effects and interactions of the parameters, Monte Carlo dropout's
largest number of passes against the deterministic pass, and the gap trend. Their
intervals are simultaneous over that family (Bonferroni), so an interval that excludes 0 never sits beside "not distinguishable" when
``confidence == 1 - alpha``. Anything else that compares configurations (the runner-up, the
two best placements) was picked by looking at the data: those findings are marked
``exploratory`` and kept out of the headline.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dropoutlab.errors import DropoutlabError
from dropoutlab.report.factors import (
    MIN_FACTORS,
    Factors,
    factor_contrasts,
    factor_design,
    factor_results,
    level_means,
)
from dropoutlab.report.findings import Finding, build_findings
from dropoutlab.report.mc_dropout import McDropout, contrast_rows, mc_dropout, mc_frame
from dropoutlab.report.stats import (
    ACCURACY_METRICS,
    ALPHA,
    CONFIDENCE,
    Interval,
    NotComputable,
    adjust_family,
    baseline_comparisons,
    compare_configs,
    dropout_strata,
    interaction_test,
    is_off,
    no_dropout_configs,
    param_columns,
    rate_axis,
    resolve_baseline,
    summarize,
    varied_params,
)
from dropoutlab.store import history_frame, runs_frame

#: The smallest difference in test accuracy worth detecting (a fraction: one point).
MIN_EFFECT = 0.01
#: The power ``seeds_needed`` aims at.
POWER = 0.8


@dataclass(frozen=True)
class ConfigSummary:
    """One configuration over its completed seeds. Accuracies are fractions."""

    config: str
    params: dict[str, Any]
    seeds: tuple
    n: int
    n_diverged: int
    n_failed: int
    test_acc: Interval
    val_acc: Interval
    train_acc: Interval
    train_eval_acc: Interval
    gap_acc: Interval
    best_epoch: Interval


@dataclass(frozen=True)
class Comparison:
    """``config`` minus ``baseline`` on ``metric``, one member of the report's family of tests.

    ``ci_low, ci_high``: simultaneous interval over the family (Bonferroni at
    ``confidence``); ``ci_low_unadjusted, ci_high_unadjusted``: this comparison alone.
    ``p_adjusted``: Holm over the family; ``significant``: ``p_adjusted < alpha``.
    ``seeds_needed``: seeds per configuration for the analysis' ``power`` to detect
    ``min_effect`` at ``alpha / family_size`` (inf: more than ``SEEDS_SEARCH_LIMIT``).
    ``seeds_left_out``: seeds only one of the two completed, left out of the pairing.
    """

    config: str
    baseline: str
    metric: str
    diff: float
    ci_low: float
    ci_high: float
    ci_low_unadjusted: float
    ci_high_unadjusted: float
    test: str
    p_value: float
    p_adjusted: float
    significant: bool
    effect_size: float
    effect_size_kind: str
    sd: float
    n: int
    n_baseline: int
    seeds_left_out: tuple
    seeds_needed: float


@dataclass(frozen=True)
class Interaction:
    """The two-way ANOVA interaction F-test of a two-parameter grid (a family member)."""

    factors: tuple[str, str]
    levels: tuple[list, list]
    F: float
    df_num: int
    df_den: int
    p_value: float
    p_adjusted: float
    significant: bool
    partial_eta_sq: float
    blocked_by_seed: bool
    n: int


@dataclass(frozen=True)
class GapTrend:
    """The train-test accuracy gap at the two ends of the swept rate (a family member).

    ``change`` compares the gap at ``high_value`` minus the gap at ``low_value``.
    """

    key: str
    low_value: Any
    high_value: Any
    low_config: str
    high_config: str
    low_test_acc: float
    high_test_acc: float
    low_gap: float
    high_gap: float
    change: Comparison


@dataclass(frozen=True)
class Methods:
    """How the runs were trained, read from each run's stored ``env`` and ``spec``.

    Each ``dict`` counts runs per value (``{"stacked": 21}``); a missing key in an older
    store counts under ``"not recorded"``. ``training`` holds the settings every run
    shares (dataset, model, epochs, batch size, optimizer...).
    """

    runs: int
    statuses: dict[str, int]
    engines: dict[str, int]
    stack_sizes: dict[int, int]
    devices: dict[str, int]
    dtypes: dict[str, int]
    threads: dict[str, int]
    versions: dict[str, dict[str, int]]
    training: dict[str, Any]


@dataclass(frozen=True)
class FigurePlan:
    """A figure for the renderers to draw: ``name`` is its file stem (``curves-hidden1-0.5``)."""

    name: str
    kind: str  # "rate_accuracy", "rate_gap", "heatmap", "comparison", "curves", "mc_<metric>", "reliability"
    title: str
    alt: str
    config: str | None = None


@dataclass(frozen=True)
class Analysis:
    """Everything the report says about one study, computed once (see the module docstring).

    ``alpha`` is the family-wise error rate of the tests, ``confidence`` the coverage of
    every interval (simultaneous for the family), ``min_effect`` the smallest difference in
    test accuracy worth detecting (a fraction), ``power`` the power "seeds needed" aims at.
    ``unavailable`` maps a section (``"comparisons"``, ``"interaction"``, ``"factors"``,
    ``"gap_trend"``, ``"rate"``, ``"grid"``, ``"curves"``) that applies to this study but
    could not be computed to the reason, in words. ``factors``: the effect of each varied
    parameter averaged over the others and their two-way interactions, when at least
    ``factors.MIN_FACTORS`` (3) parameters vary and their values are crossed. ``mc``: the test
    metrics of Monte Carlo dropout per number of passes (``mc_dropout.McDropout``), when the
    study asked for ``mc_samples``. ``learned_rates``: one row per completed run, epoch and slot
    of ``concrete`` dropout (``config, seed, epoch, slot, rate``), empty without.
    """

    study: str
    alpha: float
    confidence: float
    min_effect: float
    power: float
    params: list[str]
    varied: list[str]
    baseline: str | None
    baseline_name: str | None
    configs: tuple[ConfigSummary, ...]
    summary: pd.DataFrame
    comparisons: tuple[Comparison, ...]
    family_size: int
    interaction: Interaction | None
    gap_trend: GapTrend | None
    rate_key: str | None
    grid: tuple[str, str] | None
    findings: tuple[Finding, ...]
    methods: Methods
    figures: tuple[FigurePlan, ...]
    unavailable: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    runs: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    history: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    factors: Factors | None = None
    mc: McDropout | None = None
    learned_rates: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    strata: dict[str, str] = field(default_factory=dict)

    @property
    def headline(self) -> list[Finding]:
        """The findings that are not exploratory, in order."""
        return [f for f in self.findings if not f.exploratory]

    @property
    def exploratory(self) -> list[Finding]:
        """Findings on pairs picked by looking at the data: not corrected, no claims."""
        return [f for f in self.findings if f.exploratory]

    def label(self, config: str) -> str:
        """How the report names ``config``: the parameters where it differs from the baseline
        (``"dropout.hidden1=0.5"``), ``"no dropout"`` for a baseline without dropout; every
        varied parameter when there is no baseline. Falls back to the full label."""
        return self.labels.get(config, config)

    def baseline_of(self, comparison: Comparison) -> str:
        """How the report names what ``comparison`` is measured against: the baseline, or with
        :attr:`strata` the same settings without dropout (``"model=mlp without dropout"``)."""
        if self.baseline_name is not None:
            return self.baseline_name
        params = self.config(comparison.baseline).params
        same = [f"{p}={_value_text(params.get(p))}" for p in self.varied if not p.startswith("dropout.")]
        return f"{', '.join(same)} without dropout" if same else self.label(comparison.baseline)

    def comparison(self, config: str) -> Comparison | None:
        """The comparison of ``config`` with the baseline, if there is one."""
        return next((c for c in self.comparisons if c.config == config), None)

    def config(self, label: str) -> ConfigSummary:
        """The summary of configuration ``label``."""
        return next(c for c in self.configs if c.config == label)

    @property
    def rate_on_line(self) -> pd.Series:
        """Runs on the rate-sweep line (see ``stats.rate_axis``)."""
        return rate_axis(self.runs, self.params)[1]


def analyze(
    store,
    study: str,
    baseline=None,
    alpha: float = ALPHA,
    confidence: float = CONFIDENCE,
    min_effect: float | None = None,
    power: float = POWER,
) -> Analysis:
    """The analysis of ``study`` in ``store`` (a ``dropoutlab.store.Store``).

    ``baseline``: None (the configuration without dropout), a ``config`` label, a
    ``"key=value,..."`` string or a dict. ``alpha``: family-wise error rate of the tests;
    ``confidence``: coverage of the intervals; ``min_effect``: smallest difference in test
    accuracy worth detecting, a fraction (0.01 = one percentage point; None: the study
    file's, see :func:`study_min_effect`); ``power``: the power "seeds needed" aims at.
    Raises ``DropoutlabError`` for a bad baseline or level.
    """
    min_effect = study_min_effect(store, study) if min_effect is None else min_effect
    return analyze_records(store.records(study), study, baseline, alpha, confidence, min_effect, power)


def study_min_effect(store, study: str) -> float:
    """The smallest effect worth detecting for ``study``: its study file's ``min_effect``
    (kept in the store), else ``MIN_EFFECT`` (0.01, one percentage point)."""
    definition = store.study_definition(study) or {}
    return definition.get("min_effect") or MIN_EFFECT


def analyze_records(
    records: list[dict],
    study: str,
    baseline=None,
    alpha: float = ALPHA,
    confidence: float = CONFIDENCE,
    min_effect: float = MIN_EFFECT,
    power: float = POWER,
) -> Analysis:
    """``analyze`` on store records (``Store.records(study)``, the export layout)."""
    runs, history = runs_frame(records), history_frame(records)
    return analyze_frames(runs, history, records, study, baseline, alpha, confidence, min_effect, power)


def analyze_frames(
    runs: pd.DataFrame,
    history: pd.DataFrame | None = None,
    records: Sequence[dict] = (),
    study: str = "",
    baseline=None,
    alpha: float = ALPHA,
    confidence: float = CONFIDENCE,
    min_effect: float = MIN_EFFECT,
    power: float = POWER,
    params: Sequence[str] | None = None,
) -> Analysis:
    """``analyze`` on the store's DataFrames (``Store.runs()``, ``Store.history()``).

    ``records`` (the export layout) give the methods section; without them it says
    "not recorded". ``params`` defaults to ``runs.attrs["params"]``.
    """
    _check_settings(alpha, confidence, min_effect, power)
    params = param_columns(runs, params)
    runs = runs.copy()
    runs.attrs["params"] = params
    history = pd.DataFrame() if history is None else history
    unavailable: dict[str, str] = {}
    summary = summarize(runs, params, confidence) if not runs.empty else pd.DataFrame()
    configs = tuple(_config_summaries(summary, params)) if not runs.empty else ()
    varied = varied_params(runs, params) if not runs.empty else []
    base = resolve_baseline(runs, baseline, params) if not runs.empty else None
    strata = dropout_strata(runs, params) if base is None and baseline is None and not runs.empty else {}
    base_name = base
    if base is not None and base in no_dropout_configs(runs):
        base_name = _no_dropout_name(runs, base, varied)
    any_completed = bool((runs.get("status", pd.Series(dtype=str)) == "completed").any())

    # The family: baseline comparisons, the interaction test, the factor effects and
    # interactions, then the gap trend.
    family: list[pd.DataFrame] = []
    if base is not None and any_completed:
        rows = baseline_comparisons(runs, base, params, "test_acc", confidence)
        rows["member"] = "baseline"
        family.append(rows)
    elif strata and any_completed:  # each configuration against the same settings without dropout
        rows = baseline_comparisons(runs, strata, params, "test_acc", confidence)
        rows["member"] = "baseline"
        family.append(rows)
    elif any_completed:
        one = len(configs) == 1
        unavailable["comparisons"] = (
            "the study has one configuration" if one else "no baseline to compare with"
        )
    interaction_raw = None
    grid = (varied[0], varied[1]) if len(varied) == 2 else None
    if grid is not None and any_completed:
        try:
            interaction_raw = interaction_test(runs, params, grid)
        except NotComputable as error:
            unavailable["interaction"] = str(error)
        else:
            family.append(_family_row("interaction", interaction_raw["p_value"]))
    design = factor_means = None
    if len(varied) >= MIN_FACTORS and any_completed:
        reference = _reference_levels(runs, base, varied)
        try:
            design = factor_design(runs, varied, reference, params)
        except NotComputable as error:
            unavailable["factors"] = str(error)
        else:
            factor_means = level_means(design, confidence)
            rows = factor_contrasts(design, confidence)
            rows["member"] = "factor"
            family.append(rows)
    rate_key, on_line = rate_axis(runs, params) if not runs.empty else (None, None)
    gap_raw = None
    if rate_key is not None and any_completed:
        try:
            gap_raw = _gap_ends(runs, summary, rate_key, on_line, confidence)
        except NotComputable as error:
            unavailable["gap_trend"] = str(error)
        else:
            row = pd.DataFrame([gap_raw["change"]])
            row["member"] = "gap_trend"
            family.append(row)
    mc_runs = mc_frame(list(records), runs) if any_completed else pd.DataFrame()
    if not mc_runs.empty:
        rows = contrast_rows(mc_runs, confidence)
        if not rows.empty:
            rows["member"] = "mc"
            family.append(rows)
    table = pd.concat(family, ignore_index=True) if family else pd.DataFrame()
    if not table.empty:
        table = adjust_family(table, alpha, confidence, min_effect, power, family_size=len(table))
        # min_effect is a difference in accuracy: seeds needed for it mean nothing for a loss
        if "metric" in table:
            table.loc[table["metric"].astype(str).str.endswith("nll"), "seeds_needed"] = math.nan
    comparisons = tuple(_comparison(r) for _, r in table.iterrows() if r["member"] == "baseline")
    interaction = None
    if interaction_raw is not None:
        row = table[table["member"] == "interaction"].iloc[0]
        interaction = Interaction(
            **{k: interaction_raw[k] for k in ("factors", "levels", "F", "df_num", "df_den", "p_value")},
            p_adjusted=float(row["p_adjusted"]),
            significant=bool(row["significant"]),
            partial_eta_sq=interaction_raw["partial_eta_sq"],
            blocked_by_seed=interaction_raw["blocked_by_seed"],
            n=interaction_raw["n"],
        )
    gap_trend = None
    if gap_raw is not None:
        change = _comparison(table[table["member"] == "gap_trend"].iloc[0])
        gap_trend = GapTrend(**{k: v for k, v in gap_raw.items() if k != "change"}, change=change)
    factors = None
    if design is not None:
        factors = factor_results(design, factor_means, table[table["member"] == "factor"])
    mc = None
    if not mc_runs.empty:
        mc_table = table[table["member"] == "mc"] if not table.empty else table
        mc = mc_dropout(mc_runs, tuple(_comparison(r) for _, r in mc_table.iterrows()), confidence)
    methods = _methods(runs, records)
    analysis = Analysis(
        study=study,
        alpha=alpha,
        confidence=confidence,
        min_effect=min_effect,
        power=power,
        params=params,
        varied=varied,
        baseline=base,
        baseline_name=base_name,
        configs=configs,
        summary=summary,
        comparisons=comparisons,
        family_size=len(table),
        interaction=interaction,
        gap_trend=gap_trend,
        rate_key=rate_key,
        grid=grid,
        findings=(),
        methods=methods,
        figures=(),
        unavailable=unavailable,
        runs=runs,
        history=history,
        factors=factors,
        mc=mc,
        learned_rates=learned_rate_frame(list(records), runs),
        strata=strata,
    )
    analysis = _replace(analysis, labels=_labels(analysis))
    if any_completed and (history.empty or "epoch" not in history):
        analysis.unavailable["curves"] = "no per-epoch history was stored for these runs"
    findings = tuple(build_findings(analysis))
    figures = tuple(_figure_plans(analysis)) if any_completed else ()
    return _replace(analysis, findings=findings, figures=figures)


def _no_dropout_name(runs: pd.DataFrame, base: str, varied: list[str]) -> str:
    """How the report names a baseline without dropout: ``"no dropout"``; ``"no regularization"``
    when the other varied parameters are off there too (no weight decay, no batch norm); else
    ``"no dropout (optimizer.lr=0.01)"``."""
    row = runs[runs["config"] == base].iloc[0]
    others = {p: row[p] for p in varied if not p.startswith("dropout.")}
    if not others:
        return "no dropout"
    if all(is_off(v) for v in others.values()):
        return "no regularization"
    return f"no dropout ({', '.join(f'{p}={_value_text(v)}' for p, v in others.items())})"


def learned_rate_frame(records: list[dict], runs: pd.DataFrame) -> pd.DataFrame:
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


def _replace(analysis: Analysis, **changes) -> Analysis:
    from dataclasses import replace

    return replace(analysis, **changes)


def _labels(a: Analysis) -> dict[str, str]:
    """Short, unique names for the configurations (see ``Analysis.label``)."""
    out: dict[str, str] = {}
    ref = a.config(a.baseline).params if a.baseline is not None else None
    for c in a.configs:
        if c.config == a.baseline:
            out[c.config] = a.baseline_name or c.config
            continue
        keys = [p for p in a.varied if ref is None or c.params.get(p) != ref.get(p)]
        out[c.config] = ", ".join(f"{p}={_value_text(c.params.get(p))}" for p in keys) or c.config
    if len(set(out.values())) < len(out):
        return {c.config: c.config for c in a.configs}  # ambiguous: keep the full labels
    return out


def _check_settings(alpha: float, confidence: float, min_effect: float, power: float) -> None:
    for name, value in (("alpha", alpha), ("confidence", confidence), ("power", power)):
        if not (isinstance(value, int | float) and 0 < value < 1):
            raise DropoutlabError(f"{name} must be between 0 and 1 (exclusive), got {value!r}")
    if not (isinstance(min_effect, int | float) and 0 < min_effect < 1):
        raise DropoutlabError(
            f"min_effect is a difference in accuracy as a fraction, between 0 and 1 (0.01 = one "
            f"percentage point), got {min_effect!r}"
        )


def _reference_levels(runs: pd.DataFrame, base: str | None, varied: list[str]) -> dict | None:
    """The baseline's value of each varied parameter: what factor effects are measured against."""
    if base is None:
        return None
    row = runs[runs["config"] == base].iloc[0]
    return {p: _plain(row[p]) for p in varied}


def _family_row(member: str, p_value: float) -> pd.DataFrame:
    nan = math.nan
    return pd.DataFrame(
        [
            {
                "member": member,
                "diff": nan,
                "se": nan,
                "df": nan,
                "ci_low": nan,
                "ci_high": nan,
                "p_value": p_value,
                "sd": nan,
                "test": "F",
            }
        ]  # fmt: skip
    )


def _comparison(row: pd.Series) -> Comparison:
    return Comparison(
        config=str(row["config"]),
        baseline=str(row["baseline"]),
        metric=str(row["metric"]),
        **{
            k: float(row[k]) for k in ("diff", "ci_low", "ci_high", "ci_low_unadjusted", "ci_high_unadjusted")
        },
        test=str(row["test"]),
        p_value=float(row["p_value"]),
        p_adjusted=float(row["p_adjusted"]),
        significant=bool(row["significant"]),
        effect_size=float(row["effect_size"]),
        effect_size_kind=str(row["effect_size_kind"]),
        sd=float(row["sd"]),
        n=int(row["n"]),
        n_baseline=int(row["n_baseline"]),
        seeds_left_out=tuple(row["seeds_left_out"]),
        seeds_needed=float(row["seeds_needed"]),
    )


def _config_summaries(summary: pd.DataFrame, params: list[str]):
    for _, row in summary.iterrows():

        def interval(m: str, row=row) -> Interval:
            extra = (row[f"{m}_min"], row[f"{m}_max"]) if m in ACCURACY_METRICS else (math.nan, math.nan)
            return Interval(
                float(row[f"{m}_mean"]),
                float(row[f"{m}_ci_low"]),
                float(row[f"{m}_ci_high"]),
                int(row["n"]),
                float(row[f"{m}_std"]),
                float(extra[0]),
                float(extra[1]),
                str(row[f"{m}_interval"]),
            )

        yield ConfigSummary(
            config=str(row["config"]),
            params={p: _plain(row[p]) for p in params},
            seeds=tuple(row["seeds"]),
            n=int(row["n"]),
            n_diverged=int(row["n_diverged"]),
            n_failed=int(row["n_failed"]),
            test_acc=interval("test_acc"),
            val_acc=interval("val_acc"),
            train_acc=interval("train_acc"),
            train_eval_acc=interval("train_eval_acc"),
            gap_acc=interval("gap_acc"),
            best_epoch=interval("best_epoch"),
        )


def _plain(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _gap_ends(runs, summary, key, on_line, confidence) -> dict:
    configs = set(runs.loc[on_line, "config"])
    line = summary[summary["config"].isin(configs) & (summary["n"] > 0)]
    line = line.dropna(subset=["gap_acc_mean"]).sort_values(key, kind="stable")
    if len(line) < 2:
        raise NotComputable(f"fewer than two values of {key} have completed runs with a measured gap")
    low, high = line.iloc[0], line.iloc[-1]
    change = compare_configs(runs, high["config"], low["config"], metric="gap_acc", confidence=confidence)
    return {
        "key": key,
        "low_value": _plain(low[key]),
        "high_value": _plain(high[key]),
        "low_config": str(low["config"]),
        "high_config": str(high["config"]),
        "low_test_acc": float(low["test_acc_mean"]),
        "high_test_acc": float(high["test_acc_mean"]),
        "low_gap": float(low["gap_acc_mean"]),
        "high_gap": float(high["gap_acc_mean"]),
        "change": change,
    }


# ----------------------------------------------------------------------------------------
# Methods: how the runs were trained

NOT_RECORDED = "not recorded"
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
    return Methods(
        runs=len(runs),
        statuses={str(k): int(v) for k, v in statuses.items()},
        engines=_count(_engine(e) for e in envs),
        stack_sizes={int(k): v for k, v in _count(s for s in stacks if s is not None).items()},
        devices=_count(str(e.get("device", NOT_RECORDED)) for e in envs),
        dtypes=_count(str(e.get("dtype", NOT_RECORDED)) for e in envs),
        threads=_count(str(e.get("threads", NOT_RECORDED)) for e in envs),
        versions={
            k: _count(str(e.get(k, NOT_RECORDED)) for e in envs) for k in ("dropoutlab", "torch", "python")
        },
        training=training,
    )


# ----------------------------------------------------------------------------------------
# Figures and their file names


def _short(param: str) -> str:
    return param.rsplit(".", 1)[-1]


def _value_text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def file_stem(text: str) -> str:
    """Lowercase letters, digits, dots and hyphens: ``"hidden1=0.5"`` -> ``"hidden1-0.5"``."""
    import re

    return re.sub(r"[^a-z0-9.]+", "-", str(text).lower()).strip("-.") or "figure"


def config_short_name(analysis: Analysis, config: str) -> str:
    """The parameters where ``config`` differs from the baseline: ``"hidden1-0.5"``.

    ``"no-dropout"`` (or ``"baseline"``) for the baseline itself; every varied parameter
    when there is no baseline.
    """
    row = analysis.config(config).params
    if analysis.baseline is not None:
        if config == analysis.baseline:
            name = analysis.baseline_name or ""
            return (
                "no-dropout"
                if name == "no dropout"
                else "no-regularization"
                if name == "no regularization"
                else "baseline"
            )
        ref = analysis.config(analysis.baseline).params
        keys = [p for p in analysis.varied if row.get(p) != ref.get(p)]
    else:
        keys = list(analysis.varied)
    return file_stem("-".join(f"{_short(p)}-{_value_text(row.get(p))}" for p in keys)) if keys else "all"


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
            yield FigurePlan("reliability-" + config_short_name(analysis, config), "reliability",
                             f"Reliability: {label}",
                             f"Reliability diagram of {label}: accuracy against confidence per bin, "
                             "deterministic pass and Monte Carlo dropout", config=config)  # fmt: skip
    if "curves" in analysis.unavailable:
        return
    yield FigurePlan("curves-all", "comparison", "All configurations",
                     "Loss and accuracy per epoch of every configuration")  # fmt: skip
    seen: set[str] = set()
    for summary in analysis.configs:
        if summary.n == 0:
            continue
        stem = "curves-" + config_short_name(analysis, summary.config)
        name, k = stem, 2
        while name in seen:
            name, k = f"{stem}-{k}", k + 1
        seen.add(name)
        label = analysis.label(summary.config)
        yield FigurePlan(name, "curves", f"Learning curves: {label}",
                         f"Loss and accuracy per epoch for {label}, train and validation",
                         config=summary.config)  # fmt: skip


def findings(
    runs: pd.DataFrame,
    params: Sequence[str] | None = None,
    baseline=None,
    alpha: float = 0.05,
    confidence: float = 0.95,
    min_effect: float = 0.01,
) -> list[str]:
    """The headline sentences for a runs table (``Store.runs()``): ``analyze_frames`` rendered.

    Kept for notebooks and scripts; :func:`analyze` gives the findings as data.
    """
    analysis = analyze_frames(runs, baseline=baseline, alpha=alpha, confidence=confidence,
                              min_effect=min_effect, params=params)  # fmt: skip
    return [f.text for f in analysis.headline]
