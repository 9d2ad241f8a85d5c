"""Figures of a study: learning curves, all configurations, accuracy and gap vs rate, grids.

Every function reads the store's DataFrames (``Store.runs()``, ``Store.history()``, see
DEVELOPERS.md, "Store DataFrames"), keeps only runs with ``status == "completed"``, and
returns a ``matplotlib.figure.Figure`` built with the object API (no pyplot, so no global
figure registry, no GUI, nothing shown): save it with ``save_png`` or ``fig.savefig``.

Accuracies are fractions in the store and are drawn in percent; gaps in percentage points.
Bands are intervals of the mean over seeds at ``confidence`` (95% by default): for
accuracies a t interval on the logit scale from 3 seeds on, so that a band never leaves
[0, 100]% (``stats.accuracy_interval``), with fewer seeds no band; for gaps and losses a
Student t interval (``stats.mean_ci``). Each plotted
line carries a ``gid`` (``"mean:test_acc"``, ``"val:<config>"``, ``"off_line:<config>"``,
``"zero"``...) so that tests and callers can find it. The ``*_table`` functions return the
numbers behind each figure (fractions, as in the store) for the report's tables.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from cycler import cycler
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from dropoutlab.errors import DropoutlabError
from dropoutlab.report.stats import (
    CONFIDENCE,
    RUN_COLUMNS,
    accuracy_interval,
    param_columns,
    run_metrics,
    t_interval,
)

#: Okabe & Ito's colour-blind-safe palette, without its yellow (too pale on white).
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000")

#: One colour per quantity, the same in every figure.
SERIES_COLORS = {
    "train_acc": "#E69F00",
    "train_eval_acc": "#D55E00",
    "val_acc": "#0072B2",
    "test_acc": "#009E73",
    "gap_acc": "#CC79A7",
    "train_loss": "#E69F00",
    "train_eval_loss": "#D55E00",
    "val_loss": "#0072B2",
}

SERIES_LABELS = {
    "train_acc": "train (dropout on)",
    "train_eval_acc": "train (eval mode)",
    "val_acc": "validation",
    "test_acc": "test",
    "gap_acc": "train \u2212 test",
    "train_loss": "train (dropout on)",
    "train_eval_loss": "train (eval mode)",
    "val_loss": "validation",
}

#: Per-run metric name -> runs column (shared with the statistics).
RUN_METRIC_COLUMNS = RUN_COLUMNS

_OFF_LINE_MARKERS = ("D", "s", "^", "v", "P", "X", "h")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
_FONT = 12
_SMALL = 11
_STYLE = {
    "font.size": _FONT,
    "axes.titlesize": _FONT + 1,
    "axes.labelsize": _FONT,
    "xtick.labelsize": _SMALL,
    "ytick.labelsize": _SMALL,
    "legend.fontsize": _SMALL,
    "figure.titlesize": _FONT + 2,
    "axes.grid": True,
    "grid.color": "#b0b0b0",
    "grid.alpha": 0.4,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": cycler(color=list(OKABE_ITO)),
    "lines.linewidth": 2.0,
    "legend.frameon": False,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
}


@contextlib.contextmanager
def _style() -> Iterator[None]:
    """The house style: readable fonts, light grid, colour-blind-safe colours."""
    with mpl.rc_context(_STYLE):
        yield


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Figure, list]:
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    for ax in axes:
        # Tick labels are built lazily at draw time, after the rc context is gone.
        ax.tick_params(labelsize=_SMALL)
        ax.grid(True, color="#b0b0b0", alpha=0.4, linewidth=0.6)
        ax.set_axisbelow(True)
    return fig, list(axes)


def _config_colors(n: int) -> list:
    """``n`` distinguishable colours: Okabe-Ito up to 7, then a qualitative colormap."""
    if n <= len(OKABE_ITO):
        return list(OKABE_ITO[:n])
    cmap = mpl.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def save_png(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` as a PNG at ``dpi`` (parent folders created) and return the path.

    The PNG carries no software version, so the same figure gives the same bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(fig, dpi))
    return path


def png_bytes(fig: Figure, dpi: int = 120) -> bytes:
    """``fig`` encoded as PNG bytes at ``dpi`` (for inlining in HTML)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------
# Selecting runs


def _completed(frame: pd.DataFrame) -> pd.DataFrame:
    if "status" not in frame:
        return frame
    return frame[frame["status"] == "completed"]


def _params(frame: pd.DataFrame, params: Sequence[str] | None) -> list[str]:
    return param_columns(frame, params)


def _config_order(frame: pd.DataFrame, params: list[str]) -> list[str]:
    """Configuration labels sorted by parameter values (first appearance when unsortable)."""
    table = frame.drop_duplicates("config")[[*params, "config"]]
    if params:
        with contextlib.suppress(TypeError):
            table = table.sort_values(params, kind="stable", na_position="last")
    return [str(c) for c in table["config"]]


def _short_labels(frame: pd.DataFrame, params: list[str], configs: list[str]) -> dict:
    """Labels that name only the parameters that vary (the config label when none do)."""
    table = frame.drop_duplicates("config").set_index(frame.drop_duplicates("config")["config"])
    varied = [p for p in params if table[p].nunique(dropna=False) > 1]
    if not varied:
        return {c: c for c in configs}
    return {c: ", ".join(f"{p}={table.loc[c, p]}" for p in varied) for c in configs}


def _check_column(frame: pd.DataFrame, key: str, what: str) -> None:
    if key not in frame.columns:
        dotted = [str(c) for c in frame.columns if "." in str(c)]
        raise DropoutlabError(
            f"{what} {key!r} is not a column of the runs table (parameters: {', '.join(dotted)})"
        )


def run_values(runs: pd.DataFrame, metric: str) -> pd.Series:
    """Per-run values of ``metric`` as floats (same index as ``runs``).

    ``metric`` is a name of ``RUN_METRIC_COLUMNS`` (``test_acc``, ``val_acc``,
    ``train_acc``...), ``gap_acc`` (train minus test accuracy, eval-mode train accuracy
    where measured, running otherwise; a fraction) or any numeric runs column.
    """
    if metric in (*RUN_METRIC_COLUMNS, "gap_acc", "gap_loss"):
        return run_metrics(runs)[metric]
    if metric not in runs:
        raise DropoutlabError(
            f"unknown metric {metric!r}; choose from {', '.join([*RUN_METRIC_COLUMNS, 'gap_acc'])}"
        )
    return pd.to_numeric(runs[metric], errors="coerce").astype(float)


def _is_accuracy(metric: str) -> bool:
    return metric.endswith("_acc") or metric.startswith("acc")


# ----------------------------------------------------------------------------------------
# Learning curves


_CURVE_METRICS = (
    "train_loss",
    "val_loss",
    "train_eval_loss",
    "train_acc",
    "val_acc",
    "train_eval_acc",
)


def _mean_interval(metric: str, values, confidence: float) -> tuple[float, float, float]:
    """Mean and interval: logit t for accuracies (none below 3 seeds), Student t otherwise."""
    bounded = _is_accuracy(metric) and "gap" not in metric
    interval = (accuracy_interval if bounded else t_interval)(values, confidence)
    return interval.mean, interval.low, interval.high


def _epoch_stats(
    history: pd.DataFrame, metrics: Sequence[str], confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """Per epoch: ``n`` (runs) and ``<m>_mean, <m>_ci_low, <m>_ci_high`` for each metric."""
    rows = []
    for epoch, group in history.groupby("epoch", sort=True):
        row = {
            "epoch": epoch,
            "n": int(group["run_id"].nunique() if "run_id" in group else len(group)),
        }
        for m in metrics:
            values = pd.to_numeric(group[m], errors="coerce") if m in group else []
            row[f"{m}_mean"], row[f"{m}_ci_low"], row[f"{m}_ci_high"] = _mean_interval(m, values, confidence)
        rows.append(row)
    columns = ["epoch", "n"] + [f"{m}_{s}" for m in metrics for s in ("mean", "ci_low", "ci_high")]
    return pd.DataFrame(rows, columns=columns)


def _measured(table: pd.DataFrame, metric: str) -> bool:
    column = f"{metric}_mean"
    return column in table and bool(table[column].notna().any())


def curve_table(history: pd.DataFrame, config: str, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """The numbers behind ``learning_curves``: one row per epoch for one configuration.

    Columns ``epoch, n`` (completed runs that reached the epoch) and, for each of
    ``train_loss, val_loss, train_eval_loss, train_acc, val_acc, train_eval_acc`` that was
    measured, ``<m>_mean, <m>_ci_low, <m>_ci_high`` (interval over seeds at ``confidence``,
    on the logit scale for accuracies, NaN below 3 seeds; accuracies as fractions). ``train_*`` is the running value with dropout on, ``train_eval_*`` the
    eval-mode one. Raises ``DropoutlabError`` when ``config`` has no completed run.
    """
    done = _completed(history)
    mine = done[done["config"].astype(str) == str(config)]
    if mine.empty:
        available = ", ".join(_config_order(done, [])) or "none"
        raise DropoutlabError(
            f"no completed run of configuration {config!r} in the history (configurations: {available})"
        )
    table = _epoch_stats(mine, _CURVE_METRICS, confidence)
    keep = [m for m in _CURVE_METRICS if _measured(table, m)]
    return table[["epoch", "n"] + [f"{m}_{s}" for m in keep for s in ("mean", "ci_low", "ci_high")]]


def _band_line(ax, x, table: pd.DataFrame, metric: str, scale: float, **line) -> Line2D:
    mean = table[f"{metric}_mean"].to_numpy(dtype=float) * scale
    low = table[f"{metric}_ci_low"].to_numpy(dtype=float) * scale
    high = table[f"{metric}_ci_high"].to_numpy(dtype=float) * scale
    (drawn,) = ax.plot(x, mean, **line)
    ax.fill_between(x, low, high, color=drawn.get_color(), alpha=0.18, linewidth=0)
    return drawn


def learning_curves(
    history: pd.DataFrame, config: str, confidence: float = CONFIDENCE, title: str | None = None
) -> Figure:
    """Loss and accuracy per epoch for one configuration (the teaching notebook's two panels).

    Left: loss; right: accuracy in percent. Each panel shows the training value (running,
    dropout on), the validation value and, when measured, the eval-mode training value
    (dashed); lines are means over the completed seeds with a band at ``confidence``
    (``curve_table`` has the numbers). ``config`` is a ``config`` label of the history;
    ``title`` names it on the figure (default: the label).
    Epochs reached by fewer seeds (early stopping) average fewer runs.
    """
    table = curve_table(history, config, confidence)
    done = _completed(history)
    n_seeds = done.loc[done["config"].astype(str) == str(config), "seed"].nunique()
    x = table["epoch"].to_numpy()
    with _style():
        fig, (ax_loss, ax_acc) = _figure(10, 4.6, ncols=2)
        for ax, kind, scale in ((ax_loss, "loss", 1.0), (ax_acc, "acc", 100.0)):
            for metric in (f"train_{kind}", f"val_{kind}", f"train_eval_{kind}"):
                if not _measured(table, metric):
                    continue
                _band_line(
                    ax,
                    x,
                    table,
                    metric,
                    scale,
                    color=SERIES_COLORS[metric],
                    linestyle="--" if metric.startswith("train_eval") else "-",
                    label=SERIES_LABELS[metric],
                    gid=f"mean:{metric}",
                )
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_loss.set_title("Loss per epoch")
        ax_loss.set_ylabel("loss")
        ax_acc.set_title("Accuracy per epoch")
        ax_acc.set_ylabel("accuracy (%)")
        ax_acc.legend(loc="lower right")
        band = f"band: {100 * confidence:.10g}% CI" if n_seeds >= 3 else "no band below 3 seeds"
        fig.suptitle(f"{title or config}\nmean of {n_seeds} seed(s), {band}")
    return fig


# ----------------------------------------------------------------------------------------
# All configurations


def comparison_table(history: pd.DataFrame, params: Sequence[str] | None = None) -> pd.DataFrame:
    """The numbers behind ``comparison``: one row per configuration and epoch.

    Columns ``config, epoch, n`` and ``<m>_mean, <m>_ci_low, <m>_ci_high`` for
    ``train_loss, val_loss, train_acc, val_acc`` (running train values, fractions),
    configurations in parameter order, completed runs only.
    """
    done = _completed(history)
    params = _params(history, params)
    metrics = ("train_loss", "val_loss", "train_acc", "val_acc")
    parts = []
    for label in _config_order(done, params):
        table = _epoch_stats(done[done["config"].astype(str) == label], metrics)
        table.insert(0, "config", label)
        parts.append(table)
    if not parts:
        raise DropoutlabError("no completed run in the history: nothing to compare")
    return pd.concat(parts, ignore_index=True)


def comparison(history: pd.DataFrame, params: Sequence[str] | None = None) -> Figure:
    """All configurations in one figure: loss and accuracy (percent) per epoch.

    One colour per configuration (labelled by the parameters that vary), solid =
    validation, dashed = training (running, dropout on); lines are means over completed
    seeds, no bands (they would hide each other). Readable up to about 12 configurations:
    beyond 7, lines also carry markers. The legend sits below the panels.
    """
    table = comparison_table(history, params)
    params = _params(history, params)
    configs = list(dict.fromkeys(table["config"]))
    labels = _short_labels(_completed(history), params, configs)
    colors = _config_colors(len(configs))
    many = len(configs) > len(OKABE_ITO)
    rows = math.ceil(len(configs) / _legend_columns(labels.values()))
    with _style():
        fig, (ax_loss, ax_acc) = _figure(10, 4.6 + 0.3 * (rows + 1), ncols=2)
        for i, label in enumerate(configs):
            mine = table[table["config"] == label]
            x = mine["epoch"].to_numpy()
            style = {"color": colors[i]}
            if many:
                style.update(marker=_MARKERS[i % len(_MARKERS)], markevery=max(1, len(x) // 8))
            for ax, kind, scale in ((ax_loss, "loss", 1.0), (ax_acc, "acc", 100.0)):
                ax.plot(x, mine[f"val_{kind}_mean"] * scale, linestyle="-", gid=f"val:{label}", **style)
                ax.plot(
                    x,
                    mine[f"train_{kind}_mean"] * scale,
                    linestyle="--",
                    linewidth=1.4,
                    gid=f"train:{label}",
                    **style,
                )
        for ax in (ax_loss, ax_acc):
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_loss.set_title("Loss per epoch")
        ax_loss.set_ylabel("loss")
        ax_acc.set_title("Accuracy per epoch")
        ax_acc.set_ylabel("accuracy (%)")
        handles = [
            Line2D([], [], color=colors[i], marker=_MARKERS[i % len(_MARKERS)] if many else None)
            for i in range(len(configs))
        ]
        handles += [
            Line2D([], [], color="#555555", linestyle="-"),
            Line2D([], [], color="#555555", linestyle="--", linewidth=1.4),
        ]
        names = [labels[c] for c in configs] + ["validation", "train (dropout on)"]
        fig.legend(
            handles,
            names,
            loc="outside lower center",
            ncols=_legend_columns(names),
        )
        fig.suptitle("All configurations: mean over seeds (solid: validation, dashed: train)")
    return fig


def _legend_columns(names) -> int:
    longest = max((len(str(n)) for n in names), default=10)
    return int(min(4, max(1, 100 // (longest + 8))))


# ----------------------------------------------------------------------------------------
# Accuracy and gap against a rate


_RATE_METRICS = ("train_acc", "train_eval_acc", "val_acc", "test_acc", "gap_acc")


def _on_line(runs: pd.DataFrame, mask) -> pd.Series:
    """The mask as a boolean Series on ``runs.index``.

    Accepts None (every run), a boolean Series on ``runs.index`` (``findings.rate_axis``),
    a boolean sequence of ``len(runs)``, or a mapping ``config label -> bool``.
    """
    if mask is None:
        return pd.Series(True, index=runs.index)
    if isinstance(mask, pd.Series) and mask.index.equals(runs.index):
        return mask.fillna(False).astype(bool)
    if isinstance(mask, Mapping):
        return runs["config"].astype(str).map(lambda c: bool(mask.get(c, False))).astype(bool)
    values = np.asarray(mask, dtype=bool)
    if values.shape != (len(runs),):
        raise ValueError(f"on_line_mask has {values.size} values for {len(runs)} runs")
    return pd.Series(values, index=runs.index)


def rate_table(
    runs: pd.DataFrame,
    rate_key: str,
    on_line_mask=None,
    params: Sequence[str] | None = None,
    confidence: float = CONFIDENCE,
) -> pd.DataFrame:
    """The numbers behind ``accuracy_vs_rate`` and ``gap_vs_rate``: one row per configuration.

    Columns ``rate`` (the value of ``rate_key``), ``config``, ``on_line`` (False for the
    configurations drawn as separate markers), ``n`` (completed runs), and for ``train_acc``
    (running, dropout on), ``train_eval_acc``, ``val_acc``, ``test_acc`` and ``gap_acc``
    (train minus test, eval-mode train where measured) ``<m>_mean, <m>_ci_low, <m>_ci_high``
    as fractions (intervals as in ``curve_table``). Rows: the line by rate, then the others. Raises ``DropoutlabError`` when
    ``rate_key`` is not a numeric column or when two configurations on the line share a
    rate (give ``on_line_mask``, e.g. from ``findings.rate_axis``, to pick one line).
    """
    _check_column(runs, rate_key, "rate key")
    params = _params(runs, params)
    rate = pd.to_numeric(runs[rate_key], errors="coerce")
    if rate.isna().all() and runs[rate_key].notna().any():
        raise DropoutlabError(f"rate key {rate_key!r} is not numeric")
    on_line = _on_line(runs, on_line_mask)
    done = _completed(runs)
    values = {m: run_values(done, m) for m in _RATE_METRICS}
    rows = []
    for label in _config_order(runs, params):
        members = runs["config"].astype(str) == label
        mine = done.index[done["config"].astype(str) == label]
        row = {
            "rate": float(rate[members].iloc[0]),
            "config": label,
            "on_line": bool(on_line[members].any()),
            "n": len(mine),
        }
        for m in _RATE_METRICS:
            row[f"{m}_mean"], row[f"{m}_ci_low"], row[f"{m}_ci_high"] = _mean_interval(
                m, values[m].loc[mine], confidence
            )
        rows.append(row)
    columns = ["rate", "config", "on_line", "n"] + [
        f"{m}_{s}" for m in _RATE_METRICS for s in ("mean", "ci_low", "ci_high")
    ]
    table = pd.DataFrame(rows, columns=columns)
    line = table[table["on_line"]]
    shared = line[line["rate"].duplicated(keep=False)]
    if not shared.empty:
        raise DropoutlabError(
            f"configurations {', '.join(shared['config'])} share a value of {rate_key} on the "
            "line; pass on_line_mask (e.g. from findings.rate_axis) to pick one line"
        )
    table = pd.concat([line.sort_values("rate", kind="stable"), table[~table["on_line"]]], ignore_index=True)
    return table


def _rate_figure(
    runs, rate_key, on_line_mask, params, metrics, ylabel, title, confidence=CONFIDENCE
) -> Figure:
    table = rate_table(runs, rate_key, on_line_mask, params, confidence)
    params = _params(runs, params)
    done = _completed(runs)
    on_line = _on_line(runs, on_line_mask).loc[done.index]
    line = table[table["on_line"]]
    others = table[~table["on_line"]]
    drawn = [m for m in metrics if table[f"{m}_mean"].notna().any()]
    rates = line["rate"].to_numpy(dtype=float)
    span = float(np.ptp(rates)) if rates.size > 1 else 1.0
    with _style():
        fig, (ax,) = _figure(8, 5.6)
        for i, metric in enumerate(drawn):
            color = SERIES_COLORS[metric]
            if not line.empty:
                _band_line(
                    ax,
                    rates,
                    line,
                    metric,
                    100.0,
                    color=color,
                    marker="o",
                    label=SERIES_LABELS[metric],
                    gid=f"mean:{metric}",
                )
            # Single seeds as faint dots, nudged sideways per series so they do not stack.
            seeds = done[on_line]
            x = pd.to_numeric(seeds[rate_key], errors="coerce").to_numpy(dtype=float)
            dodge = (i - (len(drawn) - 1) / 2) * 0.012 * span
            ax.scatter(
                x + dodge,
                run_values(seeds, metric).to_numpy(dtype=float) * 100,
                s=16,
                color=color,
                alpha=0.35,
                linewidths=0,
                zorder=1,
                gid=f"seeds:{metric}",
            )
        shown = drawn[-1] if drawn else metrics[-1]
        # Every run, not only completed ones: a configuration whose runs all diverged is still named.
        fallback = _short_labels(runs, params, list(others["config"]))
        line_runs = runs.loc[_on_line(runs, on_line_mask)]
        groups: dict[str, str] = {}  # off-line label -> marker; one legend entry each
        for row in others.itertuples():
            text = _off_line_label(runs, params, rate_key, row.config, line_runs, fallback)
            first = text not in groups
            marker = groups.setdefault(text, _OFF_LINE_MARKERS[len(groups) % len(_OFF_LINE_MARKERS)])
            mean = getattr(row, f"{shown}_mean") * 100
            low = getattr(row, f"{shown}_ci_low") * 100
            high = getattr(row, f"{shown}_ci_high") * 100
            yerr = None if math.isnan(low) or math.isnan(high) else [[mean - low], [high - mean]]
            container = ax.errorbar(
                [row.rate],
                [mean],
                yerr=yerr,
                fmt=marker,
                markersize=8,
                color="#333333",
                markerfacecolor="white",
                capsize=4,
                label=f"{text} ({SERIES_LABELS[shown]})" if first else None,
            )
            container.lines[0].set_gid(f"off_line:{row.config}")
        if 0 < len(rates) <= 12:
            ax.set_xticks(rates, [f"{r:g}" for r in rates])
        ax.set_xlabel(f"{rate_key} (rate)" if rate_key.startswith("dropout.") else rate_key)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        handles, names = ax.get_legend_handles_labels()
        if handles:
            fig.legend(handles, names, loc="outside lower center", ncols=_legend_columns(names))
    return fig, ax


def _off_line_label(runs, params, rate_key, config, line_runs, fallback) -> str:
    """Name an off-line configuration by the parameters where it leaves the line."""
    mine = runs[runs["config"].astype(str) == config].iloc[0]
    parts = []
    for p in params:
        if p == rate_key:
            continue
        on_line = line_runs[p].drop_duplicates()
        if len(on_line) == 1 and not _same(on_line.iloc[0], mine[p]):
            parts.append(f"{p}={mine[p]}")
    return ", ".join(parts) or fallback.get(config, config)


def _same(a, b) -> bool:
    if pd.isna(a) and pd.isna(b):
        return True
    return bool(a == b)


def accuracy_vs_rate(
    runs: pd.DataFrame,
    rate_key: str,
    on_line_mask=None,
    params: Sequence[str] | None = None,
    confidence: float = CONFIDENCE,
) -> Figure:
    """Train, validation and test accuracy (percent) against the rate on ``rate_key``.

    The teaching notebook's question as one picture: as the rate grows, what happens to the
    training accuracy (running, dropout on), the eval-mode training accuracy (when
    measured), the validation and the test accuracy? Lines are means over completed seeds
    with 95% t-interval bands, faint dots the single seeds. Configurations where
    ``on_line_mask`` is False (see ``rate_table``) are drawn as white markers at their
    test-accuracy mean with its interval, one marker shape and legend entry per way of
    leaving the line (``"dropout.dense=0.5 (test)"``). ``rate_table`` has the numbers.
    """
    fig, _ = _rate_figure(
        runs,
        rate_key,
        on_line_mask,
        params,
        ("train_acc", "train_eval_acc", "val_acc", "test_acc"),
        "accuracy (%)",
        f"Accuracy vs {rate_key}: mean over seeds, {100 * confidence:.10g}% CI band",
        confidence,
    )
    return fig


def gap_vs_rate(
    runs: pd.DataFrame,
    rate_key: str,
    on_line_mask=None,
    params: Sequence[str] | None = None,
    confidence: float = CONFIDENCE,
) -> Figure:
    """Generalization gap (train minus test accuracy, percentage points) against the rate.

    The train accuracy is the eval-mode one where measured, the running one otherwise.
    Mean over completed seeds with a 95% t-interval band, single seeds as dots, a zero
    line, and configurations off the line as labelled markers (as ``accuracy_vs_rate``).
    """
    fig, ax = _rate_figure(
        runs,
        rate_key,
        on_line_mask,
        params,
        ("gap_acc",),
        "train \u2212 test accuracy (pp)",
        f"Generalization gap vs {rate_key}: mean over seeds, {100 * confidence:.10g}% CI band",
        confidence,
    )
    with _style():
        ax.axhline(0.0, color="#555555", linewidth=1.0, zorder=0.5, gid="zero")
    return fig


# ----------------------------------------------------------------------------------------
# Two-parameter grids


def heatmap_table(
    runs: pd.DataFrame, x_key: str, y_key: str, metric: str = "test_acc", confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """The numbers behind ``heatmap``: one row per cell (``y_key`` value, ``x_key`` value).

    Columns ``y_key, x_key, config, n, <metric>_mean, <metric>_ci_low, <metric>_ci_high``
    (fractions for accuracies), completed runs only. Raises ``DropoutlabError`` when a
    cell holds several configurations (another parameter varies: filter the runs first).
    """
    _check_column(runs, x_key, "x key")
    _check_column(runs, y_key, "y key")
    done = _completed(runs)
    values = run_values(done, metric)
    rows = []
    for (y, x), group in done.groupby([y_key, x_key], sort=True):
        labels = sorted(group["config"].astype(str).unique())
        if len(labels) > 1:
            raise DropoutlabError(
                f"cell {y_key}={y}, {x_key}={x} holds several configurations "
                f"({'; '.join(labels)}); select runs with one value of the other parameters"
            )
        mean, low, high = _mean_interval(metric, values.loc[group.index], confidence)
        rows.append(
            {
                y_key: y,
                x_key: x,
                "config": labels[0],
                "n": len(group),
                f"{metric}_mean": mean,
                f"{metric}_ci_low": low,
                f"{metric}_ci_high": high,
            }
        )
    columns = [
        y_key,
        x_key,
        "config",
        "n",
        f"{metric}_mean",
        f"{metric}_ci_low",
        f"{metric}_ci_high",
    ]
    return pd.DataFrame(rows, columns=columns)


def _levels(values: pd.Series) -> list:
    unique = list(values.dropna().drop_duplicates())
    try:
        return sorted(unique)
    except TypeError:
        return unique


def heatmap(
    runs: pd.DataFrame, x_key: str, y_key: str, metric: str = "test_acc", confidence: float = CONFIDENCE
) -> Figure:
    """Mean ``metric`` per cell of a two-parameter grid, each cell annotated.

    Cells read ``"97.3%"`` over ``"96.1–98.2"`` (the interval at ``confidence``, logit t
    for accuracies, in percent) or the value with three significant digits over ``"±"`` the
    t-interval half-width otherwise; ``"n=2"`` replaces the interval below 3 seeds (one for
    other metrics); cells without completed runs are grey. ``y_key`` grows upwards.
    ``heatmap_table`` has the numbers.
    """
    table = heatmap_table(runs, x_key, y_key, metric, confidence)
    done = _completed(runs)
    xs, ys = _levels(done[x_key]), _levels(done[y_key])
    scale = 100.0 if _is_accuracy(metric) else 1.0
    grid = np.full((len(ys), len(xs)), np.nan)
    low = np.full_like(grid, np.nan)
    high = np.full_like(grid, np.nan)
    count = np.zeros_like(grid, dtype=int)
    for values in table.to_dict("records"):
        i, j = ys.index(values[y_key]), xs.index(values[x_key])
        grid[i, j] = values[f"{metric}_mean"] * scale
        low[i, j] = values[f"{metric}_ci_low"] * scale
        high[i, j] = values[f"{metric}_ci_high"] * scale
        count[i, j] = values["n"]
    width = min(10.0, max(6.5, 1.3 * len(xs) + 3.0))
    height = min(9.0, max(4.5, 0.9 * len(ys) + 2.5))
    with _style():
        fig, (ax,) = _figure(width, height)
        ax.grid(False)
        cmap = mpl.colormaps["viridis"].with_extremes(bad="#dddddd")
        image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, origin="lower", aspect="auto")
        for i in range(len(ys)):
            for j in range(len(xs)):
                ax.text(
                    j,
                    i,
                    _cell_text(grid[i, j], low[i, j], high[i, j], count[i, j], scale),
                    ha="center",
                    va="center",
                    fontsize=_SMALL,
                    color=_text_color(image, grid[i, j]),
                    gid=f"cell:{i},{j}",
                )
        ax.set_xticks(range(len(xs)), [_tick(v) for v in xs])
        ax.set_yticks(range(len(ys)), [_tick(v) for v in ys])
        ax.set_xlabel(x_key)
        ax.set_ylabel(y_key)
        unit = " (%)" if scale == 100.0 else ""
        fig.colorbar(image, ax=ax, label=f"mean {metric}{unit}")
        ax.set_title(f"Mean {metric} per configuration ({100 * confidence:.10g}% CI below)")
    return fig


def _tick(value) -> str:
    return f"{value:g}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def _cell_text(mean: float, low: float, high: float, n: int, scale: float) -> str:
    if n == 0 or math.isnan(mean):
        return "no runs"
    if scale == 100.0:
        top = f"{mean:.1f}%"
        bottom = f"{low:.1f}\u2013{high:.1f}" if not math.isnan(low) else f"n={n}"
    else:
        top = f"{mean:.3g}"
        bottom = f"±{(high - low) / 2:.2g}" if not math.isnan(low) else f"n={n}"
    return f"{top}\n{bottom}"


def _text_color(image, value: float) -> str:
    if math.isnan(value):
        return "#333333"
    r, g, b, _ = image.cmap(image.norm(value))
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


# ----------------------------------------------------------------------------------------
# Learned dropout rates (concrete dropout)


def learned_rate_table(rates: pd.DataFrame, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Per configuration, slot and epoch: ``n`` (seeds) and the learned rate's mean and t interval.

    ``rates`` has one row per run, epoch and slot: ``config, seed, epoch, slot, rate``
    (``Analysis.learned_rates``). Rates are fractions in (0, 1).
    """
    rows = []
    for (config, slot, epoch), group in rates.groupby(["config", "slot", "epoch"], sort=False):
        interval = t_interval(group["rate"].to_numpy(dtype=float), confidence)
        rows.append({"config": config, "slot": slot, "epoch": int(epoch), "n": interval.n,
                     "rate_mean": interval.mean, "rate_ci_low": interval.low,
                     "rate_ci_high": interval.high})  # fmt: skip
    return pd.DataFrame(rows).sort_values(["config", "slot", "epoch"], kind="stable", ignore_index=True)


def learned_rates(
    rates: pd.DataFrame, labels: dict[str, str] | None = None, confidence: float = CONFIDENCE
) -> Figure:
    """The learned dropout rate of each slot per epoch: one line per configuration and slot.

    Lines are means over seeds with a band at ``confidence`` (Student t; none below 2
    seeds), in percent; ``labels`` names the configurations (default: their labels).
    Raises ``DropoutlabError`` when no run learned a rate.
    """
    if rates.empty:
        raise DropoutlabError("no run of this study learned a dropout rate (concrete dropout)")
    table = learned_rate_table(rates, confidence)
    pairs = list(dict.fromkeys(zip(table["config"], table["slot"], strict=True)))
    colors = _config_colors(len(pairs))
    with _style():
        fig, (ax,) = _figure(7, 4.4)
        for color, (config, slot) in zip(colors, pairs, strict=True):
            mine = table[(table["config"] == config) & (table["slot"] == slot)]
            name = f"{(labels or {}).get(config, config)}: {slot}"
            _band_line(ax, mine["epoch"].to_numpy(), mine, "rate", 100.0, color=color, marker="o",
                       markersize=3, label=name, gid=f"rate:{config}:{slot}")  # fmt: skip
        ax.set_xlabel("epoch")
        ax.set_ylabel("learned dropout rate (%)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title("Learned dropout rate per epoch (concrete dropout)")
        ax.legend(fontsize=_SMALL, loc="best")
    return fig
