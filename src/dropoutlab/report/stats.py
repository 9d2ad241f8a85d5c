"""Statistics over seeds: pure functions on the store's DataFrames.

Everything here reads the runs DataFrame of ``Store.runs()`` (one row per run, accuracies as
fractions in [0, 1]) and returns plain numbers or DataFrames; nothing writes or prints. Only
runs with ``status == "completed"`` enter the statistics; the others are counted.

Seeds are the unit of replication: two configurations run with the same seed share their
initialisation and data order, so when two configurations have the same seed set they are
compared pairwise by seed (paired t); otherwise with Welch's t. Distributions and tests come
from SciPy.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from dropoutlab.errors import DropoutlabError

log = logging.getLogger(__name__)

#: Per-run metric names (as used by ``summarize`` and ``compare``) and the runs column each
#: one reads. ``gap_acc`` and ``gap_loss`` are derived, see ``run_metrics``.
RUN_COLUMNS: dict[str, str] = {
    "test_acc": "test_acc",
    "test_loss": "test_loss",
    "val_acc": "final_val_acc",
    "val_loss": "final_val_loss",
    "train_acc": "final_train_acc",
    "train_loss": "final_train_loss",
    "train_eval_acc": "final_train_eval_acc",
    "train_eval_loss": "final_train_eval_loss",
    "best_epoch": "best_epoch",
}

#: Metrics that ``summarize`` gives mean, std and CI for.
SUMMARY_METRICS: tuple[str, ...] = (
    "test_acc",
    "val_acc",
    "train_acc",
    "train_eval_acc",
    "gap_acc",
    "gap_loss",
    "best_epoch",
    "test_loss",
)

#: Largest number of seeds per configuration ``seeds_for_power`` searches; beyond it the
#: answer is ``inf`` ("more than this many").
SEEDS_NEEDED_CAP = 1000

COMPARE_COLUMNS: tuple[str, ...] = (
    "config",
    "baseline",
    "metric",
    "diff",
    "ci_low",
    "ci_high",
    "test",
    "p_value",
    "p_adjusted",
    "significant",
    "effect_size",
    "effect_size_kind",
    "n",
    "n_baseline",
    "seeds_needed",
)

# Below this standard deviation (accuracy fractions, losses) values count as identical:
# float subtraction of equal accuracies leaves ~1e-17 of noise, which SciPy would turn into
# an infinite t statistic.
_ZERO_SD = 1e-12


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``values`` and its Student-t confidence interval ``(mean, low, high)``.

    NaNs are dropped. With one value the interval is ``(value, nan, nan)``; with none,
    all three are NaN.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size == 1:
        return mean, math.nan, math.nan
    sem = stats.sem(x)
    if sem == 0:
        return mean, mean, mean
    low, high = stats.t.interval(confidence, df=x.size - 1, loc=mean, scale=sem)
    return mean, float(low), float(high)


# ----------------------------------------------------------------------------------------
# Parameters and per-run metrics


def param_columns(runs: pd.DataFrame, params: Sequence[str] | None = None) -> list[str]:
    """The grid parameter columns: ``params`` if given, else ``runs.attrs["params"]``.

    When neither is available (attrs are lost by some pandas operations) every dotted
    column (``dropout.conv``, ``optimizer.lr``) is taken. Raises ``DropoutlabError`` when a
    named parameter is not a column of ``runs``.
    """
    if params is None:
        params = runs.attrs.get("params")
    if params is None:
        params = [c for c in runs.columns if "." in str(c)]
    params = list(params)
    missing = [p for p in params if p not in runs.columns]
    if missing:
        raise DropoutlabError(
            f"parameter column(s) {', '.join(missing)} not in the runs table "
            f"(columns: {', '.join(map(str, runs.columns))})"
        )
    return params


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
    runs: pd.DataFrame, params: Sequence[str] | None = None, confidence: float = 0.95
) -> pd.DataFrame:
    """One row per configuration with seed-level means, standard deviations and CIs.

    Columns: the parameter columns, ``config``, ``n`` (completed runs), ``n_diverged``,
    ``n_failed``, and for each metric of ``SUMMARY_METRICS`` (``test_acc, val_acc,
    train_acc, train_eval_acc, gap_acc, gap_loss, best_epoch, test_loss``):
    ``<m>_mean, <m>_std, <m>_ci_low, <m>_ci_high`` (Student-t interval at ``confidence``,
    NaN with fewer than two values). Accuracies and gaps are fractions, as in the store.
    ``train_acc`` is the running accuracy with dropout on, ``train_eval_acc`` the eval-mode
    one; see ``run_metrics`` for the gaps. Only completed runs enter the statistics;
    configurations with none still get a row (``n == 0``, NaN statistics).
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
        for m in SUMMARY_METRICS:
            values = done[m].to_numpy(dtype=float)
            mean, low, high = mean_ci(values, confidence)
            finite = values[~np.isnan(values)]
            row[f"{m}_mean"] = mean
            row[f"{m}_std"] = float(np.std(finite, ddof=1)) if finite.size > 1 else math.nan
            row[f"{m}_ci_low"] = low
            row[f"{m}_ci_high"] = high
        rows.append(row)
    columns = [*params, "config", "n", "n_diverged", "n_failed"] + [
        f"{m}_{s}" for m in SUMMARY_METRICS for s in ("mean", "std", "ci_low", "ci_high")
    ]
    return pd.DataFrame(rows, columns=columns)


# ----------------------------------------------------------------------------------------
# Baseline


def no_dropout_configs(runs: pd.DataFrame) -> list[str]:
    """The ``config`` labels whose runs have every numeric ``dropout.*`` column at 0."""
    columns = dropout_columns(runs)
    if not columns or runs.empty:
        return []
    zero = (runs[columns].fillna(-1.0) == 0).all(axis=1)
    all_zero = zero.groupby(runs["config"], sort=False).all()
    return [str(c) for c in all_zero[all_zero].index]


def default_baseline(runs: pd.DataFrame, params: Sequence[str] | None = None) -> str | None:
    """The ``config`` label of the configuration with every dropout rate at 0.

    Looks at all numeric ``dropout.*`` columns (grid parameters and slots alike). When
    several configurations have no dropout (a dropout x weight-decay grid), the one whose
    other varied numeric parameters are all 0 too is taken (no regularization at all) if
    there is exactly one. Returns None when no configuration qualifies, or when several do
    and none stands out (e.g. a learning-rate sweep without dropout): then name one with
    ``parse_baseline``.
    """
    params = param_columns(runs, params)
    labels = no_dropout_configs(runs)
    if len(labels) <= 1:
        return labels[0] if labels else None
    others = [p for p in varied_params(runs, params) if not p.startswith("dropout.")]
    numeric = [p for p in others if pd.api.types.is_numeric_dtype(runs[p])]
    if numeric and len(numeric) == len(others):
        candidates = runs[runs["config"].isin(labels)]
        at_zero = (candidates[numeric] == 0).all(axis=1).groupby(candidates["config"]).all()
        zero_labels = [str(c) for c in at_zero[at_zero].index]
        if len(zero_labels) == 1:
            return zero_labels[0]
    log.info(
        "several configurations have no dropout (%s); name the baseline explicitly",
        ", ".join(labels),
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


def _matches(column: pd.Series, value) -> pd.Series:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return column.astype(str).str.lower() == str(value).lower()
    numeric = pd.to_numeric(column, errors="coerce").astype(float)
    return pd.Series(np.isclose(numeric, float(value), rtol=1e-9, atol=1e-12), index=column.index)


def match_baseline(runs: pd.DataFrame, selection: Mapping, params: Sequence[str] | None = None):
    """The one ``config`` label whose parameters match ``selection`` (from ``parse_baseline``).

    Raises ``DropoutlabError`` when a key is not a column, or when the selection matches no
    configuration or several, listing the available configurations.
    """
    param_columns(runs, params)
    configs = runs.drop_duplicates("config")
    available = ", ".join(map(str, configs["config"]))
    keep = pd.Series(True, index=configs.index)
    for key, value in selection.items():
        if key not in configs.columns:
            raise DropoutlabError(
                f"baseline: {key!r} is not a parameter of this study; available configurations: {available}"
            )
        keep &= _matches(configs[key], value)
    chosen = list(configs.loc[keep, "config"])
    wanted = ",".join(f"{k}={v}" for k, v in selection.items())
    if not chosen:
        raise DropoutlabError(
            f"baseline {wanted} matches no configuration; available configurations: {available}"
        )
    if len(chosen) > 1:
        raise DropoutlabError(
            f"baseline {wanted} matches several configurations ({', '.join(map(str, chosen))}); "
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
# Tests


def holm(p_values) -> np.ndarray:
    """Holm step-down adjusted p-values, in the input order (NaNs stay NaN, not counted).

    Controls the family-wise error rate: reject where the adjusted p is below alpha.
    (SciPy has Benjamini-Hochberg, ``false_discovery_control``, but not Holm.)
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


def _power(n: np.ndarray, effect_size: float, alpha: float, paired: bool) -> np.ndarray:
    """Two-sided t-test power at ``n`` seeds per configuration (noncentral t)."""
    if paired:
        df = n - 1
        noncentrality = effect_size * np.sqrt(n)
    else:
        df = 2 * n - 2
        noncentrality = effect_size * np.sqrt(n / 2)
    critical = stats.t.ppf(1 - alpha / 2, df)
    upper = stats.nct.sf(critical, df, noncentrality)
    # P(T < -c | nc) = P(T > c | -nc); SciPy's nct.cdf returns NaN far in the tail, where
    # this lower-tail term is negligible anyway.
    lower = np.nan_to_num(stats.nct.sf(critical, df, -noncentrality), nan=0.0)
    return upper + lower


def seeds_for_power(
    effect_size: float,
    alpha: float = 0.05,
    power: float = 0.8,
    paired: bool = True,
    cap: int = SEEDS_NEEDED_CAP,
) -> float:
    """Seeds per configuration needed to detect a standardized effect with a two-sided t-test.

    ``effect_size`` is Cohen's d_z (mean paired difference over its SD) when ``paired``,
    else Cohen's d / Hedges' g between two independent groups. Power comes from the
    noncentral t distribution (``scipy.stats.nct``). Returns the smallest n >= 2 reaching
    ``power``, ``inf`` when more than ``cap`` would be needed, NaN when the effect is 0 or
    undefined.
    """
    if effect_size is None or not np.isfinite(effect_size) or effect_size == 0:
        return math.nan
    size = abs(float(effect_size))
    # Power grows with n: bracket the answer on a geometric grid, then scan the bracket.
    coarse = np.unique(np.round(2 * 1.25 ** np.arange(64)).clip(2, cap))
    reached = np.flatnonzero(_power(coarse, size, alpha, paired) >= power)
    if not reached.size:
        return math.inf
    first = int(reached[0])
    if first == 0:
        return float(coarse[0])
    fine = np.arange(coarse[first - 1] + 1, coarse[first] + 1)
    return float(fine[np.flatnonzero(_power(fine, size, alpha, paired) >= power)[0]])


def _by_seed(values: pd.DataFrame, metric: str) -> pd.Series:
    x = values[["seed", metric]].dropna(subset=[metric])
    return pd.Series(x[metric].to_numpy(dtype=float), index=x["seed"].to_numpy())


def _is_paired(a: pd.Series, b: pd.Series) -> bool:
    return (
        a.index.is_unique
        and b.index.is_unique
        and len(a) > 0
        and set(a.index.tolist()) == set(b.index.tolist())
    )


def compare_values(a: pd.Series, b: pd.Series, confidence: float = 0.95) -> dict:
    """Compare two sets of per-seed values (Series indexed by seed): ``a`` minus ``b``.

    Paired t when both have the same seeds (each seed once), Welch's t otherwise. Returns a
    dict with ``diff, ci_low, ci_high, test, p_value, effect_size, effect_size_kind, n,
    n_baseline`` (``n`` and ``n_baseline`` count values of ``a`` and ``b``). ``p_value`` is
    NaN, and the interval too, when either side has a single value or when there is no
    spread at all between seeds (nothing to test against).
    """
    a = a.dropna()
    b = b.dropna()
    out = {
        "diff": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "test": "paired t" if _is_paired(a, b) else "Welch t",
        "p_value": math.nan,
        "effect_size": math.nan,
        "effect_size_kind": "d_z" if _is_paired(a, b) else "Hedges g",
        "n": int(len(a)),
        "n_baseline": int(len(b)),
    }
    if len(a) == 0 or len(b) == 0:
        return out
    if out["test"] == "paired t":
        d = a.to_numpy() - b.reindex(a.index).to_numpy()
        out["diff"] = float(d.mean())
        if d.size < 2:
            return out
        sd = float(np.std(d, ddof=1))
        if sd <= _ZERO_SD:
            return out
        _, out["ci_low"], out["ci_high"] = mean_ci(d, confidence)
        out["p_value"] = float(stats.ttest_1samp(d, 0.0).pvalue)
        out["effect_size"] = out["diff"] / sd
        return out
    xa, xb = a.to_numpy(), b.to_numpy()
    out["diff"] = float(xa.mean() - xb.mean())
    if xa.size < 2 or xb.size < 2:
        return out
    va, vb = float(np.var(xa, ddof=1)), float(np.var(xb, ddof=1))
    if max(va, vb) <= _ZERO_SD**2:
        return out
    se2a, se2b = va / xa.size, vb / xb.size
    se = math.sqrt(se2a + se2b)
    df = (se2a + se2b) ** 2 / (se2a**2 / (xa.size - 1) + se2b**2 / (xb.size - 1))
    half = float(stats.t.ppf((1 + confidence) / 2, df)) * se
    out["ci_low"], out["ci_high"] = out["diff"] - half, out["diff"] + half
    out["p_value"] = float(stats.ttest_ind(xa, xb, equal_var=False).pvalue)
    pooled = math.sqrt(((xa.size - 1) * va + (xb.size - 1) * vb) / (xa.size + xb.size - 2))
    correction = 1 - 3 / (4 * (xa.size + xb.size) - 9)
    out["effect_size"] = out["diff"] / pooled * correction
    return out


def compare_configs(
    runs: pd.DataFrame, config: str, other: str, metric: str = "test_acc", confidence: float = 0.95
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


def compare(
    runs: pd.DataFrame,
    params: Sequence[str] | None = None,
    baseline=None,
    metric: str = "test_acc",
    alpha: float = 0.05,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Each configuration against the baseline on ``metric``: one row per comparison.

    ``baseline`` is resolved by ``resolve_baseline`` (None: the configuration without
    dropout). Columns (``COMPARE_COLUMNS``): ``config, baseline, metric``; ``diff`` the mean
    difference config minus baseline in the metric's units (fractions for accuracies);
    ``ci_low, ci_high`` its ``confidence`` interval (paired-t interval of the per-seed
    differences when both have the same seeds, Welch interval otherwise); ``test``
    (``"paired t"`` or ``"Welch t"``); ``p_value``; ``p_adjusted`` (Holm over all rows);
    ``significant`` (``p_adjusted < alpha``); ``effect_size`` with ``effect_size_kind``
    (Cohen's ``d_z`` when paired, ``Hedges g`` otherwise); ``n, n_baseline`` (values used);
    ``seeds_needed``: for rows that are not significant, the seeds per configuration that a
    difference of the observed standardized size would need for 80% power at ``alpha``
    (``seeds_for_power``: NaN if the difference is 0 or undefined, inf beyond
    ``SEEDS_NEEDED_CAP``).

    With no baseline the frame is empty (same columns). With one seed, or no spread between
    seeds, the p-value is NaN and the row is never significant.
    """
    _check_metric(metric)
    params = param_columns(runs, params)
    base = resolve_baseline(runs, baseline, params)
    if base is None:
        return pd.DataFrame(columns=list(COMPARE_COLUMNS))
    completed = _completed(run_metrics(runs))
    b = _by_seed(completed[completed["config"] == base], metric)
    rows = []
    for label in _config_table(runs, params)["config"]:
        if label == base:
            continue
        a = _by_seed(completed[completed["config"] == label], metric)
        rows.append(
            {
                "config": label,
                "baseline": base,
                "metric": metric,
                **compare_values(a, b, confidence),
            }
        )
    table = pd.DataFrame(
        rows,
        columns=[c for c in COMPARE_COLUMNS if c not in ("p_adjusted", "significant", "seeds_needed")],
    )
    table["p_adjusted"] = holm(table["p_value"].to_numpy(dtype=float))
    table["significant"] = (table["p_adjusted"] < alpha).fillna(False).astype(bool)
    table["seeds_needed"] = [
        math.nan
        if row.significant
        else seeds_for_power(row.effect_size, alpha=alpha, paired=row.test == "paired t")
        for row in table.itertuples()
    ]
    return table[list(COMPARE_COLUMNS)]


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


def _levels(column: pd.Series) -> list:
    values = list(column.drop_duplicates())
    try:
        return sorted(values)
    except TypeError:
        return values


def _rss_rank(x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    residual = y - x @ coef
    return float(residual @ residual), int(np.linalg.matrix_rank(x))


def interaction_test(
    runs: pd.DataFrame,
    params: Sequence[str] | None = None,
    factors: tuple[str, str] | None = None,
    metric: str = "test_acc",
) -> dict | None:
    """Two-way ANOVA F-test of the interaction between two grid parameters on ``metric``.

    ``factors`` defaults to the two varied parameters when exactly two vary. Fits the
    additive model (a + b) and the full model (a + b + a:b) by least squares on completed
    runs and compares them with an F-test (``scipy.stats.f``); for the highest-order term
    this is the same test whatever the sum-of-squares type. When every cell has the same
    set of two or more seeds, seed enters both models as a block (same seed = same
    initialisation and data order), as the paired tests do.

    Returns None when the grid is not a full cross product of at least 2 x 2 cells or there
    are no residual degrees of freedom; else a dict with ``factors, levels, F, df_num,
    df_den, p_value, partial_eta_sq, blocked_by_seed, n``.
    """
    _check_metric(metric)
    params = param_columns(runs, params)
    if factors is None:
        varied = varied_params(runs, params)
        if len(varied) != 2:
            return None
        factors = (varied[0], varied[1])
    fa, fb = factors
    data = run_metrics(runs)
    data[fa], data[fb] = runs[fa].astype(str), runs[fb].astype(str)
    data = _completed(data).dropna(subset=[metric])
    used = runs.loc[data.index]
    levels_a, levels_b = _levels(used[fa]), _levels(used[fb])
    if len(levels_a) < 2 or len(levels_b) < 2:
        return None
    cells = data.groupby([fa, fb])
    if cells.ngroups != len(levels_a) * len(levels_b):
        return None
    seed_sets = [frozenset(group["seed"]) for _, group in cells]
    blocked = bool(
        len(set(seed_sets)) == 1
        and len(seed_sets[0]) >= 2
        and all(len(group) == len(group["seed"].unique()) for _, group in cells)
    )
    y = data[metric].to_numpy(dtype=float)
    factors_add = [data[fa], data[fb]] + ([data["seed"]] if blocked else [])
    cell = data[fa] + "\x00" + data[fb]
    factors_full = [cell] + ([data["seed"]] if blocked else [])
    rss_add, rank_add = _rss_rank(_design(factors_add), y)
    rss_full, rank_full = _rss_rank(_design(factors_full), y)
    df_num = rank_full - rank_add
    df_den = len(y) - rank_full
    if df_num <= 0 or df_den <= 0:
        return None
    result = {
        "factors": (fa, fb),
        "levels": (levels_a, levels_b),
        "F": math.nan,
        "df_num": int(df_num),
        "df_den": int(df_den),
        "p_value": math.nan,
        "partial_eta_sq": math.nan,
        "blocked_by_seed": blocked,
        "n": len(y),
    }
    if rss_full <= _ZERO_SD:
        return result
    f_value = ((rss_add - rss_full) / df_num) / (rss_full / df_den)
    result["F"] = float(f_value)
    result["p_value"] = float(stats.f.sf(f_value, df_num, df_den))
    result["partial_eta_sq"] = float((rss_add - rss_full) / rss_add) if rss_add > 0 else math.nan
    return result
