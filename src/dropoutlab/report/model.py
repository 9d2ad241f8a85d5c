"""The report's data model: every record the analysis computes and the renderers read.

``analysis.analyze`` fills an ``Analysis``; ``findings``, ``sections``, ``plots`` and
``numbers`` (JSON) only read it. Nothing here computes a statistic: these are frozen
records, the levels the statistics run at (``Levels``), and the lookups a renderer needs
(``Analysis.label``, ``Analysis.comparison``...). Accuracies and differences are fractions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import pandas as pd

from dropoutlab.errors import DropoutlabError
from dropoutlab.report.text import setting

if TYPE_CHECKING:  # decide imports scipy.stats, which the table after a run must not load
    from dropoutlab.report.decide import Decision

#: Defaults, stated in the report and in ``docs/report.md``: the family-wise error rate of the
#: tests, the coverage of the intervals, the smallest difference in test accuracy worth
#: detecting (a fraction: one point) and the power "seeds needed" aims at.
ALPHA = 0.05
CONFIDENCE = 0.95
MIN_EFFECT = 0.01
POWER = 0.8


def plain(value):
    """A table cell as a plain Python value for a record: numpy scalars unwrapped, NaN as None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _fraction(name: str, value) -> None:
    if not (isinstance(value, int | float) and 0 < value < 1):
        raise DropoutlabError(f"{name} must be between 0 and 1 (exclusive), got {value!r}")


@dataclass(frozen=True)
class Levels:
    """The levels every test and interval of one report runs at (checked once, here).

    ``alpha``: family-wise error rate of the tests; ``confidence``: coverage of every interval
    (simultaneous over the family); ``min_effect``: smallest difference in test accuracy worth
    detecting, a fraction (0.01 = one percentage point); ``power``: what "seeds needed" aims at.
    Raises ``DropoutlabError`` for a value outside (0, 1).
    """

    alpha: float = ALPHA
    confidence: float = CONFIDENCE
    min_effect: float = MIN_EFFECT
    power: float = POWER

    def __post_init__(self) -> None:
        _fraction("alpha", self.alpha)
        _fraction("confidence", self.confidence)
        _fraction("power", self.power)
        if not (isinstance(self.min_effect, int | float) and 0 < self.min_effect < 1):
            raise DropoutlabError(
                f"min_effect is a difference in accuracy as a fraction, between 0 and 1 (0.01 = one "
                f"percentage point), got {self.min_effect!r}"
            )


@dataclass(frozen=True)
class Interval:
    """A mean over seeds and how far it can be trusted.

    ``method`` says what ``low`` and ``high`` are: ``"logit t"`` (Student t interval on the
    logit scale, mapped back: it stays inside (0, 1)), ``"t"`` (Student t), or, with
    ``low``/``high`` NaN, why there is no interval: ``"none"`` (no value), ``"range"`` (fewer
    than ``stats.MIN_SEEDS_FOR_INTERVAL`` seeds: see ``min``/``max``), ``"same"`` (every seed
    gave the same value: check the seeding), ``"boundary"`` (a seed scored exactly 0 or 1,
    where the logit is infinite: see ``min``/``max``).
    """

    mean: float
    low: float
    high: float
    n: int
    std: float
    min: float
    max: float
    method: str


# ----------------------------------------------------------------------------------------
# Tests: one record for every member of the report's one Holm family


@dataclass(frozen=True)
class TestResult:
    """One test of the report's family (a paired or Welch t), adjusted with the others.

    ``diff``: the estimate (a fraction for accuracies, nats for an NLL); ``ci_low, ci_high``:
    its simultaneous interval over the family (Bonferroni at the analysis' confidence);
    ``ci_low_unadjusted, ci_high_unadjusted``: this test alone. ``p_adjusted``: Holm over the
    family; ``significant``: ``p_adjusted < alpha``. ``effect_size`` of ``effect_size_kind``
    (Cohen's ``d_z`` when paired, ``Hedges g`` for Welch), ``sd`` the seed-to-seed SD it
    divides by, ``n`` the seeds used, ``seeds_left_out`` seeds that could not be paired or
    averaged. ``seeds_needed``: seeds per configuration for the analysis' power to detect
    ``min_effect`` at ``alpha / family_size`` (inf: more than ``stats.SEEDS_SEARCH_LIMIT``;
    NaN for a loss, which ``min_effect`` does not measure), planned with ``sd_bound``, the
    ``stats.PLANNING_CONFIDENCE`` (80%) upper confidence bound of ``sd``, not ``sd`` itself.
    ``holm_step``: the number of tests still in play at this test's Holm step (``m`` for the
    smallest p-value); ``ci_low_step, ci_high_step``: the interval at that step's level,
    ``1 - (1 - confidence) / holm_step``, the one a claim is printed with (it excludes 0
    whenever ``significant``, at ``confidence = 1 - alpha``; the simultaneous one need not).
    """

    __test__ = False  # not a pytest test class

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
    seeds_left_out: tuple
    seeds_needed: float
    sd_bound: float
    holm_step: float
    ci_low_step: float
    ci_high_step: float

    @classmethod
    def from_row(cls, row):
        """The record from a row of the adjusted family (``stats.adjust_family``), a mapping
        with one entry per field; numpy scalars become plain values."""
        return cls(**{f.name: _CONVERT.get(f.name, float)(row[f.name]) for f in fields(cls)})


@dataclass(frozen=True, kw_only=True)
class Comparison(TestResult):
    """``config`` minus ``baseline`` on ``metric`` (``test_acc``; ``gap_acc`` for the gap
    trend; ``mc_acc``, ``mc_nll`` for Monte Carlo dropout against the deterministic pass);
    ``n_baseline``: the baseline's values used (equal to ``n`` when paired)."""

    config: str
    baseline: str
    metric: str
    n_baseline: int


@dataclass(frozen=True, kw_only=True)
class FactorEffect(TestResult):
    """Test accuracy at ``factor == level`` minus at ``factor == reference``, averaged over the
    other parameters, per seed, tested over seeds (a paired t)."""

    factor: str
    level: Any
    reference: Any


@dataclass(frozen=True, kw_only=True)
class FactorInteraction(TestResult):
    """Does the effect of ``factor`` depend on ``by``? A difference of differences.

    ``effect_at_reference``: the effect of ``factor == level`` (minus ``reference``) where
    ``by == by_reference``; ``effect_at_level``: the same where ``by == by_level``; both
    averaged over the remaining parameters, on the same seeds. ``diff`` is the second minus
    the first.
    """

    factor: str
    level: Any
    reference: Any
    by: str
    by_level: Any
    by_reference: Any
    effect_at_reference: float
    effect_at_level: float


_CONVERT = {"test": str, "effect_size_kind": str, "significant": bool, "n": int, "n_baseline": int,
            "seeds_left_out": tuple, "config": str, "baseline": str, "metric": str, "factor": str, "by": str,
            "level": plain, "reference": plain, "by_level": plain, "by_reference": plain}  # fmt: skip


@dataclass(frozen=True)
class Interaction:
    """The two-way ANOVA interaction F-test of a two-parameter grid (a family member).

    ``left_out``: configurations outside the study file's sub-grids that cross both
    parameters (the baseline beside a kind x rate grid, say), which the test does not use."""

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
    left_out: tuple[str, ...] = ()


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
class RatePeak:
    """Exploratory: where a curve fitted to mean test accuracy against the swept rate peaks.

    ``key``: the swept rate (``Analysis.rate_key``), along the configurations on its line
    (``configs``, one per rate); ``scale``: ``"rate"`` or ``"sqrt(rate)"``, the scale the
    quadratic was fitted on; ``peak``: the rate where the fitted curve is highest within the
    rates tried, and ``fitted`` its fitted test accuracy; ``ci_low, ci_high``: the percentile
    bootstrap interval of the peak at ``confidence``, seeds resampled within each rate
    (``resamples`` of them, generator seeded by ``seed``); ``edge``: ``"high"`` when the peak is
    at or beyond the largest rate tried, ``"low"`` at or below the smallest, else None;
    ``rates, means, n``: the rates, their mean test accuracies and completed seeds;
    ``coefficients``: ``c0, c1, c2`` of ``c0 + c1 x + c2 x^2`` on that scale. Nothing is
    tested, so it makes no claim (``exploratory`` is always True).
    """

    key: str
    configs: tuple[str, ...]
    scale: str
    peak: float
    fitted: float
    ci_low: float
    ci_high: float
    edge: str | None
    rates: tuple[float, ...]
    means: tuple[float, ...]
    n: tuple[int, ...]
    coefficients: tuple[float, ...]
    confidence: float
    resamples: int
    seed: int
    exploratory: bool = True


# ----------------------------------------------------------------------------------------
# Sections


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
class LevelMean:
    """Mean test accuracy at ``factor == level``, averaged over the other parameters.

    ``test_acc``: over the seeds of ``seeds``, each seed's mean over the configurations
    with this value (fractions; the interval as ``stats.accuracy_interval``).
    ``seeds_left_out``: seeds that ran some of these configurations but did not complete all.
    """

    factor: str
    level: Any
    test_acc: Interval
    seeds: tuple
    seeds_left_out: tuple


@dataclass(frozen=True)
class Factors:
    """The effects of each varied parameter averaged over the others, and their interactions.

    ``factors``: the parameters, in the study's order; ``levels``: their values, sorted;
    ``reference``: the value each effect is measured against (the baseline's, else the
    first); ``cells``: configurations in the grid; ``seeds``: every seed that ran;
    ``empty_cells``: configurations without a completed run (their numbers are missing).
    """

    factors: tuple[str, ...]
    levels: dict[str, list]
    reference: dict[str, Any]
    cells: int
    seeds: tuple
    empty_cells: tuple[dict, ...]
    means: tuple[LevelMean, ...]
    effects: tuple[FactorEffect, ...]
    interactions: tuple[FactorInteraction, ...]

    def others(self, *factors: str) -> list[str]:
        """The parameters other than ``factors``: what a number is averaged over."""
        return [f for f in self.factors if f not in factors]

    def effects_of(self, factor: str) -> list[FactorEffect]:
        """The effects of each value of ``factor`` against its reference."""
        return [e for e in self.effects if e.factor == factor]

    def means_of(self, factor: str) -> list[LevelMean]:
        """The marginal means of ``factor``, one per value."""
        return [m for m in self.means if m.factor == factor]

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """``(factor, by)`` of each pair of parameters, in the order their interactions are listed."""
        return list(dict.fromkeys((i.factor, i.by) for i in self.interactions))

    def interactions_of(self, factor: str, by: str) -> list[FactorInteraction]:
        """The interaction contrasts of one pair."""
        return [i for i in self.interactions if (i.factor, i.by) == (factor, by)]


@dataclass(frozen=True)
class FactorBest:
    """The values of a multi-level categorical parameter (a dropout kind, a model family)
    that could be the best on test accuracy, compared with each other (``factors.factor_best``).

    ``levels``: the values compared; ``reference``: the one ``decision`` compares the others
    with; ``over``: the other parameters' values each value is averaged over, per seed (the
    same cells for every value); ``configs``: the configurations those cells are; ``seeds``:
    the seeds; ``decision``: ``decide`` on the table of per-seed averages, one configuration
    per value named ``factor=value``: its ``could_be_best`` (Hsu's MCB), ``within_min_effect``,
    ``worse_than_best`` and ``means`` answer "which kind?", at ``decision.design.alpha``.
    """

    factor: str
    levels: tuple
    reference: Any
    over: dict[str, list]
    configs: tuple[str, ...]
    seeds: tuple
    decision: Decision

    def value(self, label: str):
        """The value of the factor a decision label (``model=cnn``) names."""
        return next(v for v in self.levels if f"{self.factor}={v}" == label)


@dataclass(frozen=True)
class McDropout:
    """The Monte Carlo dropout results of a study (``Analysis.mc``).

    ``samples``: the numbers of passes measured, ``0`` (deterministic) first; ``levels``: one
    row per configuration and ``T`` with ``n`` and, per metric of ``runs.MC_METRICS``,
    ``{metric}`` (an ``Interval`` over seeds); ``contrasts``: the family's tests
    (``Comparison`` with ``metric`` ``"mc_acc"`` or ``"mc_nll"``, ``config`` the
    configuration, ``baseline`` the same configuration's deterministic pass);
    ``reliability``: per configuration and ``T`` (0 and the largest), the pooled bins
    ``(count, mean confidence, accuracy)``; ``no_dropout``: the configurations without
    dropout, where every pass is the deterministic one and nothing is tested.
    """

    samples: tuple[int, ...]
    levels: pd.DataFrame
    contrasts: tuple[Comparison, ...]
    reliability: dict[tuple[str, int], list[tuple[int, float, float]]]
    no_dropout: tuple[str, ...]

    @property
    def largest(self) -> int:
        """The largest number of passes measured."""
        return max(self.samples)

    def level(self, config: str, samples: int, metric: str) -> Interval | None:
        """The interval of ``metric`` for ``config`` at ``samples`` passes, if measured."""
        rows = self.levels[(self.levels["config"] == config) & (self.levels["samples"] == samples)]
        return rows.iloc[0][metric] if len(rows) else None


#: What the methods section says of a value an older store did not record.
NOT_RECORDED = "not recorded"


@dataclass(frozen=True)
class Methods:
    """How the runs were trained, read from each run's stored ``env`` and ``spec``.

    Each ``dict`` counts runs per value (``{"stacked": 21}``); a missing key in an older
    store counts under ``NOT_RECORDED``. ``training`` holds the settings every run
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
    """A figure for the renderers to draw: ``name`` is its file stem (``curves-hidden1-0.5``);
    ``configs`` the configurations a figure of several draws (empty: every one)."""

    name: str
    kind: str  # "rate_accuracy", "rate_gap", "heatmap", "factor_means", "comparison", "curves", "mc_<metric>", ...
    title: str
    alt: str
    config: str | None = None
    configs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    """One sentence of the report and the data behind it.

    ``kind`` names what it says (``"choice"``, ``"better"``, ``"worse"``, ``"equivalent"``,
    ``"undecided"``, ``"best"``, ``"interaction"``..., see ``docs/report.md``); ``configs`` the
    configurations it speaks of; ``numbers`` every number the sentence quotes (accuracies and
    differences as fractions, p-values, counts); ``claim``: it says that two things differ, or
    are equivalent (backed by the decision against the baseline, else by the Holm family);
    ``exploratory``: a pair picked by looking at the data, unadjusted, kept out of the headline.
    """

    kind: str
    text: str
    configs: tuple[str, ...] = ()
    numbers: dict[str, Any] = field(default_factory=dict)
    claim: bool = False
    exploratory: bool = False


# ----------------------------------------------------------------------------------------
# The analysis


@dataclass(frozen=True)
class Analysis:
    """Everything the report says about one study, computed once by ``analysis.analyze``.

    ``alpha`` is the family-wise error rate of the tests, ``confidence`` the coverage of
    every interval (simultaneous for the family), ``min_effect`` the smallest difference in
    test accuracy worth detecting (a fraction), ``power`` the power "seeds needed" aims at.
    ``summary``: one row per configuration (``stats.summarize``), ``configs`` the same as
    records. ``unavailable`` maps a section (``"comparisons"``, ``"interaction"``,
    ``"factors"``, ``"gap_trend"``, ``"curves"``) that applies to this study but could not be
    computed to the reason, in words. ``rate_key`` and ``rate_on_line``: the swept dropout
    rate and the runs on its line (``stats.rate_axis``); ``grid``: the two varied parameters
    of a two-parameter grid. ``factors``: the effect of each varied parameter averaged over
    the others and their two-way interactions, when at least ``factors.MIN_FACTORS`` (3)
    parameters vary. ``mc``: Monte Carlo dropout per number of passes, when the study asked
    for ``mc_samples``. ``learned_rates``: one row per completed run, epoch and slot of
    ``concrete`` dropout (``config, seed, epoch, slot, rate``), empty without. ``strata``:
    with no single baseline, each configuration with dropout mapped to the one with the same
    other settings and no dropout. ``decision``: which configuration to choose and how sure
    that is (``report/decide.py``: the four verdicts against the baseline, the configurations
    that could be best, the choice and its rule), None without a single baseline or two
    seeds; ``looks``: the looks a study run with ``--until-decided`` recorded, in order.
    ``rate_peak``: exploratory, the rate at which a curve fitted to test accuracy along the
    swept rate peaks (three or more rates), with its bootstrap interval over seeds.
    ``factor_best``: per categorical parameter with three or more values (kind, model), the
    values that could be best, compared with each other; together at ``alpha``.
    ``strata_decisions``: with :attr:`strata` (no single baseline), one ``Decision`` per
    stratum, keyed by its configuration without dropout: each stratum's configurations against
    it, at ``alpha / S`` for ``S`` strata, so all hold together at ``alpha``.
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
    methods: Methods
    findings: tuple[Finding, ...] = ()
    figures: tuple[FigurePlan, ...] = ()
    unavailable: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    runs: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    history: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    rate_on_line: pd.Series = field(default_factory=lambda: pd.Series(dtype=bool), repr=False)
    factors: Factors | None = None
    mc: McDropout | None = None
    learned_rates: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    strata: dict[str, str] = field(default_factory=dict)
    decision: Decision | None = None
    looks: tuple[dict, ...] = ()
    rate_peak: RatePeak | None = None
    factor_best: tuple[FactorBest, ...] = ()
    strata_decisions: dict[str, Decision] = field(default_factory=dict)

    def decisions(self) -> list[Decision]:
        """Every decision against a baseline: the study's, or one per stratum (in that order)."""
        return [self.decision] if self.decision is not None else list(self.strata_decisions.values())

    def verdicts(self) -> dict[str, str]:
        """Configuration -> its verdict against its baseline (the decision's or its stratum's)."""
        return {config: v for d in self.decisions() for config, v in d.verdicts().items()}

    @property
    def headline(self) -> list[Finding]:
        """The findings that are not exploratory, in order."""
        return [f for f in self.findings if not f.exploratory]

    @property
    def exploratory(self) -> list[Finding]:
        """Findings on pairs picked by looking at the data: not corrected, no claims."""
        return [f for f in self.findings if f.exploratory]

    @property
    def completed(self) -> bool:
        """Whether any run of the study completed (else there is nothing to compare or draw)."""
        return any(c.n > 0 for c in self.configs)

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
        same = [setting(p, params.get(p)) for p in self.varied if not p.startswith("dropout.")]
        return f"{', '.join(same)} without dropout" if same else self.label(comparison.baseline)

    def comparison(self, config: str) -> Comparison | None:
        """The comparison of ``config`` with the baseline, if there is one."""
        return next((c for c in self.comparisons if c.config == config), None)

    def config(self, label: str) -> ConfigSummary:
        """The summary of configuration ``label``."""
        return next(c for c in self.configs if c.config == label)
