"""Statistics over seeds: pure functions on the store's DataFrames.

Everything here reads the runs DataFrame of ``Store.runs()`` (one row per run, accuracies as
fractions in [0, 1]) and returns plain numbers or DataFrames; nothing writes or prints. Only
runs with ``status == "completed"`` enter the statistics; the others are counted.

Seeds are the unit of replication: two configurations run with the same seed share their
initialisation and data order, so two configurations are compared pairwise on the seeds
both ran (paired t), and with Welch's t only when they share fewer than two seeds.
Distributions and tests come from SciPy. The t and F quantiles are ``scipy.special``'s,
which ``scipy.stats`` calls, so the table printed after ``dropoutlab run`` does not import
``scipy.stats`` (half a second); the t-tests and the power calculation import it where they
run. ``tests/test_stats.py`` checks them against statsmodels (``multipletests``,
``TTestPower``, ``TTestIndPower``, ``anova_lm``). Which method gives which number is listed
in ``docs/report.md``.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import special

from dropoutlab.errors import DropoutlabError
from dropoutlab.report.model import ALPHA, CONFIDENCE, MIN_EFFECT, POWER, Interval, Levels

log = logging.getLogger(__name__)


class NotComputable(DropoutlabError):
    """A statistic that the data cannot give (too few seeds, an incomplete grid...).

    The message is the reason, in words a user reads; the report prints it in one line
    where the statistic would have been. Bugs raise other exceptions and keep their traceback.
    """


#: Per-run metric names (as used by ``summarize`` and ``compare``) and the runs column each
#: one reads. ``gap_acc`` and ``gap_loss`` are derived, see ``run_metrics``.
RUN_COLUMNS: dict[str, str] = {
    "test_acc": "test_acc", "test_loss": "test_loss", "val_acc": "final_val_acc", "val_loss": "final_val_loss",
    "train_acc": "final_train_acc", "train_loss": "final_train_loss", "train_eval_acc": "final_train_eval_acc",
    "train_eval_loss": "final_train_eval_loss", "best_epoch": "best_epoch",
}  # fmt: skip

#: Metrics that ``summarize`` gives mean, std and CI for.
SUMMARY_METRICS = ("test_acc", "val_acc", "train_acc", "train_eval_acc", "gap_acc", "gap_loss", "best_epoch",
                   "test_loss")  # fmt: skip

#: Accuracies: fractions in [0, 1], whose intervals are taken on the logit scale.
ACCURACY_METRICS: tuple[str, ...] = ("test_acc", "val_acc", "train_acc", "train_eval_acc")

#: Fewest seeds for an interval of a mean accuracy; below it the report shows the range.
MIN_SEEDS_FOR_INTERVAL = 3

#: The largest number of seeds per configuration ``seeds_for_power`` looks at; past it the
#: answer is ``inf``, which the report words as "more than SEEDS_SEARCH_LIMIT".
SEEDS_SEARCH_LIMIT = 100_000

#: The columns of ``compare``: the fields of ``model.Comparison``, in reading order.
COMPARE_COLUMNS = ("config", "baseline", "metric", "diff", "ci_low", "ci_high", "ci_low_unadjusted",
                   "ci_high_unadjusted", "test", "p_value", "p_adjusted", "significant", "effect_size",
                   "effect_size_kind", "sd", "n", "n_baseline", "seeds_left_out", "seeds_needed", "sd_bound",
                   "holm_step", "ci_low_step", "ci_high_step")  # fmt: skip

#: The one-sided confidence of the upper bound on the seed-to-seed spread that "seeds needed"
#: plans with (Browne 1995; Kieser and Wassmer 1996): planning with the spread a pilot happened
#: to show gives far less than the promised power (about 65% instead of 80% after 3 seeds).
PLANNING_CONFIDENCE = 0.8

# Below this standard deviation (accuracy fractions, losses) values count as identical:
# float subtraction of equal accuracies leaves ~1e-17 of noise, which SciPy would turn into
# an infinite t statistic.
_ZERO_SD = 1e-12


def mean_ci(values, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """``(mean, low, high)`` of ``t_interval``."""
    interval = t_interval(values, confidence)
    return interval.mean, interval.low, interval.high


def student_t_interval(x: np.ndarray, confidence: float) -> tuple[float, float]:
    """The Student t interval of the mean of ``x`` (two values or more), exactly as
    ``scipy.stats.t.interval(confidence, x.size - 1, x.mean(), scipy.stats.sem(x))``."""
    quantiles = special.stdtrit(x.size - 1, np.array([(1 - confidence) / 2, (1 + confidence) / 2]))
    low, high = float(x.mean()) + np.std(x, ddof=1) / np.sqrt(x.size) * quantiles
    return float(low), float(high)


def _interval(values, confidence: float, logit: bool) -> Interval:
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return Interval(math.nan, math.nan, math.nan, 0, math.nan, math.nan, math.nan, "none")
    n, mean, lo, hi = int(x.size), float(x.mean()), float(x.min()), float(x.max())
    std = float(np.std(x, ddof=1)) if n > 1 else math.nan
    why = ("same" if n > 1 and std <= _ZERO_SD else "range" if n < (MIN_SEEDS_FOR_INTERVAL if logit else 2)
           else "boundary" if logit and (lo <= 0.0 or hi >= 1.0) else None)  # fmt: skip
    if why is not None:
        return Interval(mean, math.nan, math.nan, n, std, lo, hi, why)
    if not logit:
        return Interval(mean, *student_t_interval(x, confidence), n, std, lo, hi, "t")
    low, high = student_t_interval(special.logit(x), confidence)
    return Interval(mean, float(special.expit(low)), float(special.expit(high)), n, std, lo, hi, "logit t")


def accuracy_interval(values, confidence: float = CONFIDENCE) -> Interval:
    """Mean accuracy over seeds with an interval that stays in [0, 1] (see ``Interval``).

    From ``MIN_SEEDS_FOR_INTERVAL`` seeds on: a Student t interval of the mean logit,
    mapped back with the logistic function (an interval for the typical accuracy; never
    clipped). ``mean`` is the plain mean of the accuracies. NaNs are dropped.
    """
    return _interval(values, confidence, logit=True)


def t_interval(values, confidence: float = CONFIDENCE) -> Interval:
    """Mean over seeds with its Student t interval (method ``"t"``), for quantities without
    bounds (differences, losses, gaps, epochs). NaNs are dropped; with one value (``"range"``)
    or no spread at all (``"same"``) ``low`` and ``high`` are NaN."""
    return _interval(values, confidence, logit=False)


def metric_interval(metric: str, values, confidence: float = CONFIDENCE) -> Interval:
    """``accuracy_interval`` for accuracies (``ACCURACY_METRICS``), ``t_interval`` otherwise."""
    if metric in ACCURACY_METRICS:
        return accuracy_interval(values, confidence)
    return t_interval(values, confidence)


# ----------------------------------------------------------------------------------------
# Parameters and per-run metrics


def param_columns(runs: pd.DataFrame, params: Sequence[str] | None = None) -> list[str]:
    """The grid parameter columns: ``params`` if given, else ``runs.attrs["params"]`` (set by
    ``Store.runs()``; the analysis passes them explicitly, see ``analysis.StudyData``).

    Raises ``DropoutlabError`` when neither names them (pandas drops ``attrs`` in many
    operations: pass ``params``), or when a named parameter is not a column of ``runs``.
    """
    if params is None:
        params = runs.attrs.get("params")
    if params is None:
        raise DropoutlabError(
            "the runs table does not say which columns are grid parameters (pandas dropped its "
            "attrs): pass params, e.g. params=['dropout.conv']"
        )
    params = list(params)
    missing = [p for p in params if p not in runs.columns]
    if missing:
        raise DropoutlabError(
            f"parameter column(s) {', '.join(missing)} not in the runs table "
            f"(columns: {', '.join(map(str, runs.columns))})"
        )
    return params


def sorted_levels(values) -> list:
    """The distinct values of ``values`` in order (first appearance when they cannot be sorted)."""
    unique = list(dict.fromkeys(values))
    with contextlib.suppress(TypeError):
        unique = sorted(unique)
    return unique


def dropout_columns(runs: pd.DataFrame) -> list[str]:
    """The numeric ``dropout.*`` columns of ``runs`` (dropout rates, fractions in [0, 1])."""
    return [
        c for c in runs.columns if str(c).startswith("dropout.") and pd.api.types.is_numeric_dtype(runs[c])
    ]


def varied_params(runs: pd.DataFrame, params: Sequence[str] | None = None) -> list[str]:
    """The parameter columns that take more than one value across configurations."""
    params = param_columns(runs, params)
    configs = _config_table(runs, params)
    return [p for p in params if configs[p].nunique(dropna=False) > 1]


def run_metrics(runs: pd.DataFrame) -> pd.DataFrame:
    """Per-run metrics under short names, one row per run (same index as ``runs``).

    Columns: ``config, seed, status`` and every name of ``RUN_COLUMNS`` (NaN when the runs
    table lacks the column), plus two derived ones, in accuracy fractions and loss units:

    - ``gap_acc``: train minus test accuracy, with the eval-mode train accuracy where it was
      measured and the running (dropout on) one otherwise;
    - ``gap_loss``: test minus train loss, with the same choice.
    """
    out = pd.DataFrame(index=runs.index)
    out["config"] = runs["config"]
    out["seed"] = runs.get("seed", np.nan)
    out["status"] = runs.get("status", "completed")
    for name, column in RUN_COLUMNS.items():
        if column in runs:
            out[name] = pd.to_numeric(runs[column], errors="coerce").astype(float)
        else:
            out[name] = np.nan
    train_acc = out["train_eval_acc"].where(out["train_eval_acc"].notna(), out["train_acc"])
    train_loss = out["train_eval_loss"].where(out["train_eval_loss"].notna(), out["train_loss"])
    out["gap_acc"] = train_acc - out["test_acc"]
    out["gap_loss"] = out["test_loss"] - train_loss
    return out


def _config_table(runs: pd.DataFrame, params: list[str]) -> pd.DataFrame:
    """One row per configuration: ``params + [config]``, sorted by parameter values."""
    table = runs.drop_duplicates("config")[[*params, "config"]].reset_index(drop=True)
    if params:
        # Mixed types in a column cannot be sorted: keep the order of first appearance.
        with contextlib.suppress(TypeError):
            table = table.sort_values(params, kind="stable", na_position="last")
    return table.reset_index(drop=True)


def _completed(metrics: pd.DataFrame) -> pd.DataFrame:
    return metrics[metrics["status"] == "completed"]


# ----------------------------------------------------------------------------------------
# Summary


def summarize(
    runs: pd.DataFrame, params: Sequence[str] | None = None, confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """One row per configuration with seed-level means, standard deviations and intervals.

    Columns: the parameter columns, ``config``, ``n`` (completed runs), ``n_diverged``,
    ``n_failed``, ``seeds`` (the completed seeds, a tuple), and for each metric of
    ``SUMMARY_METRICS`` (``test_acc, val_acc, train_acc, train_eval_acc, gap_acc, gap_loss,
    best_epoch, test_loss``): ``<m>_mean, <m>_std, <m>_ci_low, <m>_ci_high`` and
    ``<m>_interval`` (the ``Interval.method``: how the interval was made, or why it is NaN).
    Accuracies (``ACCURACY_METRICS``) also get ``<m>_min, <m>_max`` and their interval is a
    t interval on the logit scale from 3 seeds on (``accuracy_interval``); the others a
    Student t interval. Accuracies and gaps are fractions, as in the store. ``train_acc`` is
    the running accuracy with dropout on, ``train_eval_acc`` the eval-mode one; see
    ``run_metrics`` for the gaps. Only completed runs enter the statistics; configurations
    with none still get a row (``n == 0``, NaN statistics).
    """
    params = param_columns(runs, params)
    metrics = run_metrics(runs)
    completed = _completed(metrics)
    rows = []
    for _, config_row in _config_table(runs, params).iterrows():
        label = config_row["config"]
        mine = metrics[metrics["config"] == label]
        done = completed[completed["config"] == label]
        row = {p: config_row[p] for p in params}
        row["config"] = label
        row["n"] = len(done)
        row["n_diverged"] = int((mine["status"] == "diverged").sum())
        row["n_failed"] = int((mine["status"] == "failed").sum())
        row["seeds"] = tuple(sorted(done["seed"].dropna().tolist()))
        for m in SUMMARY_METRICS:
            interval = metric_interval(m, done[m].to_numpy(dtype=float), confidence)
            row[f"{m}_mean"] = interval.mean
            row[f"{m}_std"] = interval.std
            row[f"{m}_ci_low"] = interval.low
            row[f"{m}_ci_high"] = interval.high
            row[f"{m}_interval"] = interval.method
            if m in ACCURACY_METRICS:
                row[f"{m}_min"] = interval.min
                row[f"{m}_max"] = interval.max
        rows.append(row)
    columns = [*params, "config", "n", "n_diverged", "n_failed", "seeds"]
    for m in SUMMARY_METRICS:
        columns += [f"{m}_{s}" for s in ("mean", "std", "ci_low", "ci_high", "interval")]
        if m in ACCURACY_METRICS:
            columns += [f"{m}_min", f"{m}_max"]
    return pd.DataFrame(rows, columns=columns)


# ----------------------------------------------------------------------------------------
# Baseline


def no_dropout_configs(runs: pd.DataFrame) -> list[str]:
    """The ``config`` labels whose runs have every numeric ``dropout.*`` column at 0."""
    columns = dropout_columns(runs)
    if not columns or runs.empty:
        return []
    zero = (runs[columns].fillna(0.0) == 0).all(axis=1)  # NaN: a slot this model does not have
    all_zero = zero.groupby(runs["config"], sort=False).all()
    return [str(c) for c in all_zero[all_zero].index]


def is_off(value) -> bool:
    """Whether a parameter value means "this regularizer is off": 0, false or ``none`` (NumPy
    scalars, as pandas gives them, included)."""
    if isinstance(value, np.generic):
        value = value.item()
    return value is False or value == "none" or (isinstance(value, int | float) and not isinstance(value, bool)
                                                 and value == 0)  # fmt: skip


def dropout_strata(runs: pd.DataFrame, params: Sequence[str] | None = None) -> dict[str, str]:
    """Each configuration with dropout mapped to the configuration without dropout that
    shares all its other varied parameters (a grid over models x dropout: each model's
    dropout against the same model without it). Empty unless every group of configurations
    sharing those other parameters holds exactly one without dropout, and there are several
    such groups (with one, :func:`default_baseline` finds it)."""
    params = param_columns(runs, params)
    others = [p for p in varied_params(runs, params) if not p.startswith("dropout.")]
    zero = set(no_dropout_configs(runs))
    if not others or len(zero) < 2:
        return {}
    configs = _config_table(runs, params)
    key = configs[others].astype(str).agg("\x1f".join, axis=1)
    groups: dict[str, list[str]] = {}
    for label, k in zip(configs["config"].astype(str), key, strict=True):
        groups.setdefault(k, []).append(label)
    strata = {}
    for labels in groups.values():
        bases = [label for label in labels if label in zero]
        if len(bases) != 1:
            return {}
        strata.update({label: bases[0] for label in labels if label != bases[0]})
    return strata


def default_baseline(runs: pd.DataFrame, params: Sequence[str] | None = None) -> str | None:
    """The ``config`` label of the configuration with every dropout rate at 0.

    Looks at all numeric ``dropout.*`` columns (grid parameters and slots alike). When
    several configurations have no dropout (a dropout x weight-decay grid), the one whose
    other varied parameters are all off too (0, false or ``none``: no regularization at all)
    is taken if there is exactly one. Returns None when no configuration qualifies, or when
    several do and none stands out (e.g. a learning-rate sweep without dropout, or a grid
    over models: see :func:`dropout_strata`): then name one with ``parse_baseline``.
    """
    params = param_columns(runs, params)
    labels = no_dropout_configs(runs)
    if len(labels) <= 1:
        return labels[0] if labels else None
    others = [p for p in varied_params(runs, params) if not p.startswith("dropout.")]
    if others:
        candidates = runs[runs["config"].isin(labels)]
        off = candidates[others].apply(lambda column: column.map(is_off)).all(axis=1)
        at_zero = off.groupby(candidates["config"]).all()
        zero_labels = [str(c) for c in at_zero[at_zero].index]
        if len(zero_labels) == 1:
            return zero_labels[0]
    log.info(
        "several configurations have no dropout (%s); name the baseline explicitly",
        config_list(labels),
    )
    return None


def _parse_value(text: str):
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_baseline(text: str) -> dict:
    """Parse ``"dropout.conv=0,optimizer.lr=0.01"`` into ``{"dropout.conv": 0, ...}``.

    Values become int, float or bool when they read as one, else stay strings. Raises
    ``DropoutlabError`` naming the part that is not ``key=value`` or a repeated key.
    """
    selection: dict = {}
    if not text or not text.strip():
        raise DropoutlabError("baseline: empty; expected key=value[,key=value...]")
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise DropoutlabError(
                f"baseline: {part.strip()!r} is not key=value "
                f"(expected e.g. 'dropout.conv=0,optimizer.lr=0.01')"
            )
        if key in selection:
            raise DropoutlabError(f"baseline: {key!r} given twice")
        selection[key] = _parse_value(value)
    return selection


def value_matches(column: pd.Series, value) -> pd.Series:
    """Which cells of ``column`` hold ``value``: numbers to 1e-9 (a rate read back from JSON or
    SQL), anything else as text, ignoring case (``True`` matches ``"true"``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return column.astype(str).str.lower() == str(value).lower()
    numeric = pd.to_numeric(column, errors="coerce").astype(float)
    return pd.Series(np.isclose(numeric, float(value), rtol=1e-9, atol=1e-12), index=column.index)


def config_list(labels, most: int = 30) -> str:
    """Configuration labels for a one-line message: separated by " | " (a label holds ", "
    itself), the first ``most`` of them and how many more."""
    labels = [str(label) for label in labels]
    shown = " | ".join(labels[:most])
    return shown + (f" | ... and {len(labels) - most} more" if len(labels) > most else "")


def match_baseline(runs: pd.DataFrame, selection: Mapping, params: Sequence[str] | None = None):
    """The one ``config`` label whose parameters match ``selection`` (from ``parse_baseline``).

    Raises ``DropoutlabError`` when a key is not a column, or when the selection matches no
    configuration or several, listing the available configurations.
    """
    param_columns(runs, params)
    configs = runs.drop_duplicates("config")
    available = config_list(configs["config"])
    keep = pd.Series(True, index=configs.index)
    for key, value in selection.items():
        if key not in configs.columns:
            raise DropoutlabError(
                f"baseline: {key!r} is not a parameter of this study; available configurations: {available}"
            )
        keep &= value_matches(configs[key], value)
    chosen = list(configs.loc[keep, "config"])
    wanted = ",".join(f"{k}={v}" for k, v in selection.items())
    if not chosen:
        raise DropoutlabError(
            f"baseline {wanted} matches no configuration; available configurations: {available}"
        )
    if len(chosen) > 1:
        raise DropoutlabError(
            f"baseline {wanted} matches several configurations ({config_list(chosen)}); "
            f"add parameters to pick one. Available configurations: {available}"
        )
    return chosen[0]


def resolve_baseline(runs: pd.DataFrame, baseline=None, params: Sequence[str] | None = None) -> str | None:
    """The baseline ``config`` label from what a user gave.

    ``baseline`` may be None (``default_baseline``), a ``config`` label, a ``key=value,...``
    string (``parse_baseline``) or a dict of parameter values (``match_baseline``).
    """
    if baseline is None:
        return default_baseline(runs, params)
    if isinstance(baseline, Mapping):
        return match_baseline(runs, baseline, params)
    text = str(baseline)
    if text in set(runs["config"].astype(str)):
        return text
    return match_baseline(runs, parse_baseline(text), params)


# ----------------------------------------------------------------------------------------
# The rate axis (shared by the analysis and the plots)


def _mode(column: pd.Series):
    counts = column.value_counts(dropna=False)
    tied = list(counts[counts == counts.max()].index)
    try:
        return sorted(tied)[0]
    except TypeError:
        return tied[0]


def _equals(column: pd.Series, value) -> pd.Series:
    if isinstance(value, float) and math.isnan(value):
        return column.isna()
    return column == value


def rate_axis(runs: pd.DataFrame, params: Sequence[str] | None = None) -> tuple[str | None, pd.Series]:
    """The x axis and the line for an "accuracy vs dropout rate" plot.

    The key is the varied ``dropout.*`` parameter with the most distinct values (first in
    ``params`` order on ties). The line holds the runs whose other varied parameters sit at
    their most common value across configurations (the smallest on ties), so that each
    rate appears once; the other configurations are meant to be shown as separate labelled
    points. Returns ``(key, mask)`` with ``mask`` a boolean Series on ``runs.index``;
    ``(None, all False)`` when no dropout parameter varies.
    """
    params = param_columns(runs, params)
    mask = pd.Series(False, index=runs.index)
    if runs.empty:
        return None, mask
    configs = runs.drop_duplicates("config")
    varied = varied_params(runs, params)
    rates = [p for p in varied if p.startswith("dropout.") and pd.api.types.is_numeric_dtype(configs[p])]
    if not rates:  # a grid over kinds alone (dropout.conv.kind) has no rate axis
        return None, mask
    key = max(rates, key=lambda p: configs[p].nunique(dropna=False))
    on_line = pd.Series(True, index=runs.index)
    for other in varied:
        if other != key:
            on_line &= _equals(runs[other], _mode(configs[other]))
    return key, on_line.astype(bool)


# ----------------------------------------------------------------------------------------
# Tests


def holm(p_values) -> np.ndarray:
    """Holm step-down adjusted p-values, in the input order (NaNs stay NaN, not counted).

    Controls the family-wise error rate: reject where the adjusted p is below alpha. The
    same numbers as statsmodels' ``multipletests(p, method="holm")``.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, math.nan)
    finite = np.flatnonzero(~np.isnan(p))
    m = finite.size
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out


def simultaneous_interval(
    diff: float, se: float, df: float, confidence: float = CONFIDENCE, m: int = 1
) -> tuple[float, float]:
    """Bonferroni simultaneous t interval: each of ``m`` intervals at ``1 - (1 - confidence) / m``.

    All ``m`` intervals together cover their true differences with probability at least
    ``confidence``. With ``confidence = 1 - alpha`` an interval that excludes 0 belongs to
    a difference that Holm's method at ``alpha`` also rejects (Holm rejects at least what
    Bonferroni does). NaN when ``se`` or ``df`` is not finite.
    """
    if not (np.isfinite(se) and np.isfinite(df) and se > 0 and df > 0):
        return math.nan, math.nan
    half = float(special.stdtrit(df, 1 - (1 - confidence) / (2 * max(m, 1)))) * se  # t.ppf
    return diff - half, diff + half


def power(n, effect_size: float, alpha: float = ALPHA, paired: bool = True):
    """Power of a two-sided t-test at ``n`` seeds per configuration (noncentral t).

    ``effect_size`` is Cohen's d_z (mean paired difference over its SD) when ``paired``
    (statsmodels' ``TTestPower``), else Cohen's d between two independent groups of ``n``
    each (``TTestIndPower``).
    """
    from scipy import stats

    n = np.asarray(n, dtype=float)
    size = abs(float(effect_size))
    if paired:
        df = n - 1
        noncentrality = size * np.sqrt(n)
    else:
        df = 2 * n - 2
        noncentrality = size * np.sqrt(n / 2)
    critical = stats.t.isf(alpha / 2, df)
    upper = stats.nct.sf(critical, df, noncentrality)
    # P(T < -c | nc) = P(T > c | -nc); SciPy's nct.cdf returns NaN far in the tail, where
    # this lower-tail term is negligible anyway.
    lower = np.nan_to_num(stats.nct.sf(critical, df, -noncentrality), nan=0.0)
    return upper + lower


def seeds_for_power(
    effect_size: float,
    alpha: float = ALPHA,
    power_wanted: float = POWER,
    paired: bool = True,
    limit: int = SEEDS_SEARCH_LIMIT,
) -> float:
    """Seeds per configuration a two-sided t-test at level ``alpha`` needs to reach ``power_wanted``.

    ``effect_size`` as in ``power``. Returns the smallest n >= 2 reaching the power, ``inf``
    when more than ``limit`` would be needed (say "more than ``limit``"), NaN when the effect
    is 0 or undefined.
    """
    if effect_size is None or not np.isfinite(effect_size) or effect_size == 0:
        return math.nan
    # Power grows with n: bracket the answer on a geometric grid, then scan the bracket;
    # two vectorized calls instead of a loop of scalar ones.
    coarse = np.unique(np.round(2 * 1.25 ** np.arange(80)).clip(2, limit))
    reached = np.flatnonzero(power(coarse, effect_size, alpha, paired) >= power_wanted)
    if not reached.size:
        return math.inf
    first = int(reached[0])
    if first == 0:
        return float(coarse[0])
    fine = np.arange(coarse[first - 1] + 1, coarse[first] + 1)
    return float(fine[np.flatnonzero(power(fine, effect_size, alpha, paired) >= power_wanted)[0]])


def seeds_needed(
    min_effect: float,
    sd: float,
    alpha: float = ALPHA,
    m: int = 1,
    paired: bool = True,
    power_wanted: float = POWER,
    limit: int = SEEDS_SEARCH_LIMIT,
) -> float:
    """Seeds per configuration that detect a difference of ``min_effect`` with ``power_wanted``.

    ``min_effect`` is the smallest difference worth detecting, in the metric's units
    (accuracy fractions: 0.01 is one percentage point), chosen before looking at the data;
    ``sd`` the seed-to-seed standard deviation of the paired differences (``paired``) or of
    single runs (two groups). The test is at ``alpha / m``, the level Holm's method needs at
    its strictest step for a family of ``m`` tests, so the promise holds whatever the other
    comparisons show. Returns NaN when ``sd`` is not a positive number, ``inf`` past ``limit``.
    """
    if not (np.isfinite(sd) and sd > _ZERO_SD and np.isfinite(min_effect) and min_effect > 0):
        return math.nan
    return seeds_for_power(min_effect / sd, alpha / max(m, 1), power_wanted, paired, limit)


def sd_upper_bound(sd: float, df: float, confidence: float = PLANNING_CONFIDENCE) -> float:
    """The one-sided upper ``confidence`` bound of a standard deviation ``sd`` measured with
    ``df`` degrees of freedom (normal data): ``sd * sqrt(df / chi2_{1 - confidence}(df))``, the
    spread "seeds needed" plans with. NaN when ``sd`` or ``df`` is not a positive number."""
    if not (np.isfinite(sd) and sd > 0 and np.isfinite(df) and df > 0):
        return math.nan
    return float(sd * math.sqrt(df / special.chdtri(df, confidence)))  # chdtri: the upper quantile


def _by_seed(values: pd.DataFrame, metric: str) -> pd.Series:
    x = values[["seed", metric]].dropna(subset=[metric])
    return pd.Series(x[metric].to_numpy(dtype=float), index=x["seed"].to_numpy())


def _shared_seeds(a: pd.Series, b: pd.Series) -> list | None:
    """The seeds both ran, sorted, or None when a seed repeats within one side."""
    if not (a.index.is_unique and b.index.is_unique):
        return None
    shared = set(a.index.tolist()) & set(b.index.tolist())
    try:
        return sorted(shared)
    except TypeError:
        return list(shared)


def paired_t(differences, confidence: float = CONFIDENCE) -> dict:
    """A paired t-test of mean zero over per-seed differences, with its t interval.

    Returns ``diff, se, df, ci_low, ci_high, test ("paired t"), p_value, effect_size,
    effect_size_kind ("d_z"), sd, n``: NaN p-value and interval with fewer than two
    differences or no spread between them.
    """
    from scipy import stats

    d = np.asarray(differences, dtype=float)
    out = {"diff": math.nan, "se": math.nan, "df": math.nan, "ci_low": math.nan, "ci_high": math.nan,
           "test": "paired t", "p_value": math.nan, "effect_size": math.nan, "effect_size_kind": "d_z",
           "sd": math.nan, "n": int(d.size)}  # fmt: skip
    if d.size == 0:
        return out
    out["diff"] = float(d.mean())
    sd = float(np.std(d, ddof=1)) if d.size > 1 else math.nan
    if not sd > _ZERO_SD:
        return out
    se = sd / math.sqrt(d.size)
    low, high = simultaneous_interval(out["diff"], se, float(d.size - 1), confidence)
    p_value = float(stats.ttest_1samp(d, 0.0).pvalue)
    return {**out, "sd": sd, "se": se, "df": float(d.size - 1), "ci_low": low, "ci_high": high,
            "p_value": p_value, "effect_size": out["diff"] / sd}  # fmt: skip


def compare_values(a: pd.Series, b: pd.Series, confidence: float = CONFIDENCE) -> dict:
    """Compare two sets of per-seed values (Series indexed by seed): ``a`` minus ``b``.

    Paired t on the seeds both ran when they share at least two (each seed once per side);
    the seeds only one side ran are left out and listed in ``seeds_left_out``. Welch's t on
    every value otherwise. Returns ``diff, se, df, ci_low, ci_high`` (unadjusted interval at
    ``confidence``), ``test`` (``"paired t"`` or ``"Welch t"``), ``p_value``, ``effect_size``
    with ``effect_size_kind`` (Cohen's ``d_z`` when paired, ``Hedges g`` otherwise), ``sd``
    (of the paired differences, or the pooled SD of single runs), ``n``, ``n_baseline``
    (values of ``a`` and ``b`` used) and ``seeds_left_out``. ``p_value`` and the interval are
    NaN when either side has a single value or there is no spread between seeds.
    """
    from scipy import stats

    a, b = a.dropna(), b.dropna()
    shared = _shared_seeds(a, b)
    if shared is not None and len(shared) >= 2:
        left_out = tuple(dict.fromkeys(s for s in [*a.index, *b.index] if s not in set(shared)))
        d = a.reindex(shared).to_numpy() - b.reindex(shared).to_numpy()
        return {**paired_t(d, confidence), "n_baseline": len(shared), "seeds_left_out": left_out}
    xa, xb = a.to_numpy(), b.to_numpy()
    out = {**dict.fromkeys(("diff", "se", "df", "ci_low", "ci_high", "p_value", "effect_size", "sd"), math.nan),
           "test": "Welch t", "effect_size_kind": "Hedges g", "n": int(xa.size), "n_baseline": int(xb.size),
           "seeds_left_out": ()}  # fmt: skip
    if xa.size == 0 or xb.size == 0:
        return out
    out["diff"] = float(xa.mean() - xb.mean())
    if xa.size < 2 or xb.size < 2:
        return out
    va, vb = float(np.var(xa, ddof=1)), float(np.var(xb, ddof=1))
    if max(va, vb) <= _ZERO_SD**2:
        return out
    se2a, se2b = va / xa.size, vb / xb.size
    out["se"] = math.sqrt(se2a + se2b)
    out["df"] = (se2a + se2b) ** 2 / (se2a**2 / (xa.size - 1) + se2b**2 / (xb.size - 1))
    out["ci_low"], out["ci_high"] = simultaneous_interval(out["diff"], out["se"], out["df"], confidence)
    out["p_value"] = float(stats.ttest_ind(xa, xb, equal_var=False).pvalue)
    pooled = math.sqrt(((xa.size - 1) * va + (xb.size - 1) * vb) / (xa.size + xb.size - 2))
    out["sd"] = pooled
    correction = 1 - 3 / (4 * (xa.size + xb.size) - 9)
    out["effect_size"] = out["diff"] / pooled * correction
    return out


def compare_configs(
    runs: pd.DataFrame, config: str, other: str, metric: str = "test_acc", confidence: float = CONFIDENCE
) -> dict:
    """``compare_values`` of configuration ``config`` minus configuration ``other`` on ``metric``.

    ``metric`` is a name of ``run_metrics`` (``test_acc``, ``val_acc``, ``gap_acc``, ...).
    Only completed runs are used. No multiple-comparison adjustment.
    """
    completed = _completed(run_metrics(runs))
    _check_metric(metric)
    a = _by_seed(completed[completed["config"] == config], metric)
    b = _by_seed(completed[completed["config"] == other], metric)
    return {
        "config": config,
        "baseline": other,
        "metric": metric,
        **compare_values(a, b, confidence),
    }


def _check_metric(metric: str) -> None:
    known = [*RUN_COLUMNS, "gap_acc", "gap_loss"]
    if metric not in known:
        raise DropoutlabError(f"unknown metric {metric!r}; choose from {', '.join(known)}")


def adjust_family(rows: pd.DataFrame, levels: Levels, family_size: int | None = None) -> pd.DataFrame:
    """Holm p-values, verdicts, simultaneous intervals and seeds needed over one family.

    ``rows`` has ``diff, se, df, p_value, sd, test, n`` per test (``compare_values`` output; a
    row without ``se`` gets no interval). Adds ``ci_low_unadjusted, ci_high_unadjusted``
    (the rows' own intervals), ``ci_low, ci_high`` (Bonferroni simultaneous at
    ``confidence`` over the ``m`` testable rows), ``p_adjusted`` (Holm over the same ``m``),
    ``significant`` (``p_adjusted < alpha``), ``holm_step`` (the tests still in play at the
    row's Holm step: ``m`` for the smallest p-value, then ``m - 1``...) with ``ci_low_step,
    ci_high_step`` (the interval at ``1 - (1 - confidence) / holm_step``, the level its step
    tests at: with ``confidence = 1 - alpha`` it excludes 0 whenever ``significant``, which
    the simultaneous interval need not), ``sd_bound`` (the ``PLANNING_CONFIDENCE`` upper bound
    of ``sd``, ``sd_upper_bound``) and ``seeds_needed`` (``seeds_needed`` for ``min_effect``
    at ``alpha / family_size`` with the spread at ``sd_bound``, NaN for a loss (a metric ending
    in ``nll``), which ``min_effect`` does not measure; ``family_size`` defaults to the number
    of rows, since more seeds make every row testable). ``levels``: alpha, confidence,
    min_effect, power.
    """
    alpha, confidence = levels.alpha, levels.confidence
    out = rows.copy()
    p = out["p_value"].to_numpy(dtype=float)
    m = int(np.isfinite(p).sum())
    out["ci_low_unadjusted"] = out["ci_low"]
    out["ci_high_unadjusted"] = out["ci_high"]
    intervals = [
        simultaneous_interval(r.diff, r.se, r.df, confidence, m)
        if np.isfinite(r.p_value)
        else (math.nan, math.nan)
        for r in out.itertuples()
    ]
    out["ci_low"] = [low for low, _ in intervals]
    out["ci_high"] = [high for _, high in intervals]
    out["p_adjusted"] = holm(p)
    out["significant"] = (out["p_adjusted"] < alpha).fillna(False).astype(bool)
    finite = np.flatnonzero(np.isfinite(p))
    step = np.full(len(out), math.nan)
    step[finite[np.argsort(p[finite], kind="stable")]] = m - np.arange(m)  # holm's order
    out["holm_step"] = step
    at_step = [
        simultaneous_interval(r.diff, r.se, r.df, confidence, int(k))
        if np.isfinite(k)
        else (math.nan, math.nan)
        for r, k in zip(out.itertuples(), step, strict=True)
    ]
    out["ci_low_step"] = [low for low, _ in at_step]
    out["ci_high_step"] = [high for _, high in at_step]
    n = out["n"].to_numpy(dtype=float) if "n" in out else np.full(len(out), math.nan)
    n_base = out["n_baseline"].to_numpy(dtype=float) if "n_baseline" in out else n
    spread_df = np.where(out["test"].astype(str) == "paired t", n - 1, n + n_base - 2)
    out["sd_bound"] = [
        sd_upper_bound(sd, d) for sd, d in zip(out["sd"].to_numpy(dtype=float), spread_df, strict=True)
    ]
    size = len(out) if family_size is None else family_size
    out["seeds_needed"] = [
        seeds_needed(levels.min_effect, r.sd_bound, alpha, size, r.test == "paired t", levels.power)
        for r in out.itertuples()
    ]
    if "metric" in out:
        out.loc[out["metric"].astype(str).str.endswith("nll"), "seeds_needed"] = math.nan
    return out


def compare(
    runs: pd.DataFrame,
    params: Sequence[str] | None = None,
    baseline=None,
    metric: str = "test_acc",
    alpha: float = ALPHA,
    confidence: float = CONFIDENCE,
    min_effect: float = MIN_EFFECT,
    power_wanted: float = POWER,
) -> pd.DataFrame:
    """Each configuration against the baseline on ``metric``: one row per comparison, one family
    of its own (the report's family also holds its other tests, see ``analysis.py``).

    ``baseline`` is resolved by ``resolve_baseline`` (None: the configuration without
    dropout). The columns (``COMPARE_COLUMNS``) are the fields of ``model.Comparison``, in
    the metric's units (fractions for accuracies); ``seeds_needed`` is for a difference of
    ``min_effect`` with ``power_wanted``. With no baseline the frame is empty (same columns).
    """
    _check_metric(metric)
    levels = Levels(alpha, confidence, min_effect, power_wanted)
    params = param_columns(runs, params)
    base = resolve_baseline(runs, baseline, params)
    if base is None:
        return pd.DataFrame(columns=list(COMPARE_COLUMNS))
    rows = baseline_comparisons(runs, base, params, metric, confidence)
    return adjust_family(rows, levels)[list(COMPARE_COLUMNS)]


def baseline_comparisons(
    runs: pd.DataFrame,
    base: str | Mapping[str, str],
    params: Sequence[str],
    metric: str = "test_acc",
    confidence: float = CONFIDENCE,
) -> pd.DataFrame:
    """Unadjusted ``compare_values`` of every configuration minus ``base``, in parameter order;
    ``base`` a mapping (:func:`dropout_strata`) gives each configuration its own baseline."""
    completed = _completed(run_metrics(runs))
    bases = base if isinstance(base, Mapping) else None
    rows = []
    for label in _config_table(runs, list(params))["config"]:
        own = bases.get(label) if bases is not None else base
        if own is None or label == own:
            continue
        a = _by_seed(completed[completed["config"] == label], metric)
        b = _by_seed(completed[completed["config"] == own], metric)
        rows.append({"config": label, "baseline": own, "metric": metric, **compare_values(a, b, confidence)})
    columns = [
        "config",
        "baseline",
        "metric",
        *compare_values(pd.Series(dtype=float), pd.Series(dtype=float)),
    ]
    return pd.DataFrame(rows, columns=columns)


# ----------------------------------------------------------------------------------------
# Two-factor grids


def _design(levels: list[pd.Series]) -> np.ndarray:
    """Intercept plus treatment-coded dummies for each factor in ``levels``."""
    columns = [np.ones(len(levels[0]))]
    for factor in levels:
        codes = pd.Categorical(factor.astype(str))
        for category in codes.categories[1:]:
            columns.append((codes == category).astype(float))
    return np.column_stack(columns)


def _rss_rank(x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    residual = y - x @ coef
    return float(residual @ residual), int(np.linalg.matrix_rank(x))


def interaction_test(
    runs: pd.DataFrame,
    params: Sequence[str] | None = None,
    factors: tuple[str, str] | None = None,
    metric: str = "test_acc",
) -> dict:
    """Two-way ANOVA F-test of the interaction between two grid parameters on ``metric``.

    ``factors`` defaults to the two varied parameters. Fits the additive model (a + b) and
    the full model (a + b + a:b) by least squares on completed runs and compares them with
    an F-test (``scipy.stats.f``); this is the type II test of the a:b term, as statsmodels'
    ``anova_lm`` gives it. When a seed was run in more than one cell, seed enters both
    models as a block (same seed = same initialisation and data order), also when cells
    have different seed sets because a run failed.

    Returns a dict with ``factors, levels, F, df_num, df_den, p_value, partial_eta_sq,
    blocked_by_seed, n``. Raises ``NotComputable`` with the reason when the study does not
    vary exactly two parameters, a cell of the cross product has no completed run, no
    residual degrees of freedom are left, or there is no spread between seeds.
    """
    _check_metric(metric)
    params = param_columns(runs, params)
    if factors is None:
        varied = varied_params(runs, params)
        if len(varied) != 2:
            raise NotComputable(f"the study varies {len(varied)} parameters, not two")
        factors = (varied[0], varied[1])
    fa, fb = factors
    data = run_metrics(runs)
    data[fa], data[fb] = runs[fa].astype(str), runs[fb].astype(str)
    levels_a, levels_b = sorted_levels(runs[fa]), sorted_levels(runs[fb])
    if len(levels_a) < 2 or len(levels_b) < 2:
        raise NotComputable(f"{fa} or {fb} takes a single value")
    data = _completed(data).dropna(subset=[metric])
    present = set(zip(data[fa], data[fb], strict=True))
    missing = [(x, y) for x in levels_a for y in levels_b if (str(x), str(y)) not in present]
    if missing:
        x, y = missing[0]
        raise NotComputable(
            f"the grid of {fa} x {fb} is not complete: no completed run for {fa}={x}, {fb}={y}"
            + (f" and {len(missing) - 1} more cell(s)" if len(missing) > 1 else "")
        )
    blocked = bool(data["seed"].duplicated().any() and not data.duplicated([fa, fb, "seed"]).any())
    y = data[metric].to_numpy(dtype=float)
    seed = [data["seed"].astype(str)] if blocked else []
    cell = data[fa] + "\x00" + data[fb]
    rss_add, rank_add = _rss_rank(_design([data[fa], data[fb], *seed]), y)
    rss_full, rank_full = _rss_rank(_design([cell, *seed]), y)
    df_num = rank_full - rank_add
    df_den = len(y) - rank_full
    if df_den <= 0:
        raise NotComputable(
            f"no residual degrees of freedom ({len(y)} runs for {rank_full} model terms): run more seeds"
        )
    if rss_full <= _ZERO_SD:
        raise NotComputable("no spread between seeds within the cells")
    f_value = ((rss_add - rss_full) / df_num) / (rss_full / df_den)
    return {
        "factors": (fa, fb),
        "levels": (levels_a, levels_b),
        "F": float(f_value),
        "df_num": int(df_num),
        "df_den": int(df_den),
        "p_value": float(special.fdtrc(df_num, df_den, f_value)),  # f.sf
        "partial_eta_sq": float((rss_add - rss_full) / rss_add) if rss_add > 0 else math.nan,
        "blocked_by_seed": blocked,
        "n": len(y),
    }


# ----------------------------------------------------------------------------------------
# The rate at which test accuracy peaks (exploratory)

#: The scales on which test accuracy is fitted as a quadratic of the rate; ``rate_peak`` takes
#: the one that fits the means better (``docs/report.md``, "Where the curve peaks").
PEAK_SCALES = ("rate", "sqrt(rate)")

#: Bootstrap resamples for the interval of the peak, and the seed of their generator: fixed,
#: so the same runs always give the same interval.
PEAK_RESAMPLES = 2000
PEAK_SEED = 20251207

#: A peak within this share of the step from an end of the sweep to the next rate counts as
#: at that end (``rate_peak``'s ``edge``).
EDGE_SHARE = 0.1


def _peak_of_means(x: np.ndarray, means: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row of ``means`` (``(..., k)``, one mean per rate), on each scale of ``PEAK_SCALES``:
    the least-squares quadratic, the better scale (the smaller residual sum of squares; the
    plain rate on a tie, as with three rates, where both pass through every mean), the rate
    where the fitted curve is highest within the rates tried, and the fitted accuracy there.
    Returns ``(scale index, peak rate, fitted accuracy, coefficients)``, vectorized over rows."""
    best_rss = best_peak = best_value = best_coef = best_scale = None
    for index, xs in enumerate((x, np.sqrt(x))):
        design = np.column_stack([np.ones_like(xs), xs, xs**2])
        coef = means @ np.linalg.pinv(design).T  # (..., 3): c0 + c1 x + c2 x^2
        rss = ((means - coef @ design.T) ** 2).sum(axis=-1)
        c1, c2 = coef[..., 1], coef[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            vertex = np.where(c2 < 0, -c1 / (2 * c2), xs[0])
        vertex = np.clip(vertex, xs[0], xs[-1])  # a peak beyond the range: the highest end
        candidates = np.stack([np.broadcast_to(xs[0], vertex.shape), np.broadcast_to(xs[-1], vertex.shape),
                               vertex], axis=-1)  # fmt: skip
        fitted = coef[..., :1] + coef[..., 1:2] * candidates + coef[..., 2:3] * candidates**2
        top = np.take_along_axis(candidates, fitted.argmax(axis=-1)[..., None], axis=-1)[..., 0]
        value = fitted.max(axis=-1)
        peak = top if index == 0 else top**2
        if best_rss is None:
            best_rss, best_peak, best_value, best_coef = rss, peak, value, coef
            best_scale = np.zeros(rss.shape, dtype=int)
            continue
        better = rss < best_rss - 1e-12  # accuracy fractions squared: a tie is a tie
        best_scale = np.where(better, index, best_scale)
        best_peak, best_value = np.where(better, peak, best_peak), np.where(better, value, best_value)
        best_coef = np.where(better[..., None], coef, best_coef)
        best_rss = np.where(better, rss, best_rss)
    return best_scale, best_peak, best_value, best_coef


def rate_peak(
    rates: Sequence[float],
    samples: Sequence[Sequence[float]],
    confidence: float = CONFIDENCE,
    resamples: int = PEAK_RESAMPLES,
    seed: int = PEAK_SEED,
) -> dict:
    """Where a curve fitted to mean test accuracy against a swept dropout rate peaks, with a
    bootstrap interval over seeds. Exploratory: the curve's shape is assumed, and nothing is
    tested.

    ``rates``: three or more distinct rates, ascending; ``samples[i]``: the completed seeds'
    test accuracies (fractions) at ``rates[i]``, two or more each. A quadratic is fitted by
    least squares to the means, in the rate or in its square root, whichever leaves the
    smaller residual sum of squares (``PEAK_SCALES``); the peak is the rate where the fitted
    curve is highest within ``[rates[0], rates[-1]]``, so a curve still rising at the largest
    rate peaks there (``edge == "high"``: at or beyond the largest rate tried; ``"low"``: at
    or below the smallest; also within ``EDGE_SHARE`` of the step to the next rate) and is
    never extrapolated. The interval is the percentile
    bootstrap (``scipy.stats.bootstrap``) over ``resamples`` resamples of the seeds within each
    rate, the scale chosen again in every resample, with a generator seeded by ``seed``.

    Returns ``scale, peak, fitted, ci_low, ci_high, edge, rates, means, n, coefficients,
    confidence, resamples, seed``. Raises ``NotComputable`` with fewer than three rates or
    a rate with fewer than two seeds.
    """
    from scipy import stats as scipy_stats

    x = np.asarray(rates, dtype=float)
    data = tuple(np.asarray(s, dtype=float) for s in samples)
    if x.size < 3 or len(data) != x.size:
        raise NotComputable(f"{x.size} rate(s) with completed runs; a curve with a peak needs three or more")
    if np.any(np.diff(x) <= 0) or x[0] < 0:
        raise NotComputable("the rates are not distinct non-negative values in ascending order")
    few = [f"{r:g}" for r, s in zip(x, data, strict=True) if s.size < 2]
    if few:
        raise NotComputable(f"rate(s) {', '.join(few)} have fewer than two completed seeds to resample")
    means = np.array([s.mean() for s in data])
    scale, peak, fitted, coef = _peak_of_means(x, means)

    def statistic(*resampled, axis=-1):
        return _peak_of_means(x, np.stack([r.mean(axis=axis) for r in resampled], axis=-1))[1]

    result = scipy_stats.bootstrap(
        data, statistic, n_resamples=resamples, vectorized=True, paired=False, confidence_level=confidence,
        method="percentile", random_state=np.random.default_rng(seed),
    )  # fmt: skip
    low, high = (float(v) for v in result.confidence_interval)
    # Within a tenth of the step to the neighbouring rate, the data cannot tell a peak from
    # the end itself (a square-root curve can put its vertex at 0.0001 of a 0, 0.1, ... sweep).
    edge = (
        "high" if peak >= x[-1] - EDGE_SHARE * (x[-1] - x[-2])
        else "low" if peak <= x[0] + EDGE_SHARE * (x[1] - x[0]) else None
    )  # fmt: skip
    return {
        "scale": PEAK_SCALES[int(scale)], "peak": float(peak), "fitted": float(fitted),
        "ci_low": low, "ci_high": high, "edge": edge, "rates": tuple(float(r) for r in x),
        "means": tuple(float(m) for m in means), "n": tuple(int(s.size) for s in data),
        "coefficients": tuple(float(c) for c in coef), "confidence": float(confidence),
        "resamples": int(resamples), "seed": int(seed),
    }  # fmt: skip
