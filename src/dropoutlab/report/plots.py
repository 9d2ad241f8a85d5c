"""Figures of a study, drawn from its ``Analysis``: learning curves, all configurations,
accuracy and gap vs rate, the two-parameter grid, learned rates, Monte Carlo dropout.

Each figure reads what the analysis computed (the per-configuration means and intervals of
``Analysis.summary``, the Monte Carlo levels, the rate line), so a figure and its table
never disagree; the per-epoch curves are summarized here from ``Analysis.history`` (the
analysis has no per-epoch numbers of its own). Only completed runs are drawn. Figures are
built with the object API (no pyplot, so no global figure registry, no GUI, nothing shown):
``png_bytes`` or ``fig.savefig`` saves one.

Accuracies are fractions in the store and are drawn in percent; gaps in percentage points.
Bands are intervals of the mean over seeds at the analysis' confidence: for accuracies a t
interval on the logit scale from 3 seeds on, so that a band never leaves [0, 100]%
(``stats.accuracy_interval``), with fewer seeds no band; for gaps and losses a Student t
interval. Each plotted line carries a ``gid`` (``"mean:test_acc"``, ``"val:<config>"``,
``"off_line:<config>"``, ``"zero"``...) so that tests and callers can find it. The
``*_table`` functions return the numbers behind each figure (fractions, as in the store)
for the report's tables.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from cycler import cycler
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from dropoutlab.errors import DropoutlabError
from dropoutlab.report.model import Analysis, FigurePlan
from dropoutlab.report.stats import metric_interval, run_metrics, sorted_levels, t_interval
from dropoutlab.report.text import MC_METRIC_NAMES, level, setting

#: Okabe & Ito's colour-blind-safe palette, without its yellow (too pale on white).
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000")

#: One colour and one name per series, for its accuracy and its loss alike, the same in every figure.
_SERIES = {"train": ("#E69F00", "train (dropout on)"), "train_eval": ("#D55E00", "train (eval mode)"),
           "val": ("#0072B2", "validation"), "test": ("#009E73", "test"), "gap": ("#CC79A7", "train \u2212 test")}  # fmt: skip
SERIES_COLORS = {f"{series}_{m}": color for series, (color, _) in _SERIES.items() for m in ("acc", "loss")}
SERIES_LABELS = {f"{series}_{m}": name for series, (_, name) in _SERIES.items() for m in ("acc", "loss")}

_OFF_LINE_MARKERS = ("D", "s", "^", "v", "P", "X", "h")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
_FONT = 12
_SMALL = 11
_STYLE = {
    "font.size": _FONT, "axes.titlesize": _FONT + 1, "axes.labelsize": _FONT, "xtick.labelsize": _SMALL,
    "ytick.labelsize": _SMALL, "legend.fontsize": _SMALL, "figure.titlesize": _FONT + 2, "axes.grid": True,
    "grid.color": "#b0b0b0", "grid.alpha": 0.4, "grid.linewidth": 0.6, "axes.spines.top": False,
    "axes.spines.right": False, "axes.prop_cycle": cycler(color=list(OKABE_ITO)), "lines.linewidth": 2.0,
    "legend.frameon": False, "figure.facecolor": "white", "savefig.facecolor": "white",
}  # fmt: skip


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


def png_bytes(fig: Figure, dpi: int = 120) -> bytes:
    """``fig`` encoded as PNG bytes at ``dpi`` (for inlining in HTML)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------
# Learning curves


_CURVE_METRICS = ("train_loss", "val_loss", "train_eval_loss", "train_acc", "val_acc", "train_eval_acc")


def _completed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] == "completed"] if "status" in frame else frame


def _epoch_stats(history: pd.DataFrame, metrics: Sequence[str], confidence: float) -> pd.DataFrame:
    """Per epoch: ``n`` (runs) and ``<m>_mean, <m>_ci_low, <m>_ci_high`` for each metric."""
    rows = []
    for epoch, group in history.groupby("epoch", sort=True):
        row = {"epoch": epoch, "n": int(group["run_id"].nunique() if "run_id" in group else len(group))}
        for m in metrics:
            interval = metric_interval(
                m, pd.to_numeric(group[m], errors="coerce") if m in group else [], confidence
            )
            row[f"{m}_mean"], row[f"{m}_ci_low"], row[f"{m}_ci_high"] = (
                interval.mean,
                interval.low,
                interval.high,
            )
        rows.append(row)
    columns = ["epoch", "n"] + [f"{m}_{s}" for m in metrics for s in ("mean", "ci_low", "ci_high")]
    return pd.DataFrame(rows, columns=columns)


def _measured(table: pd.DataFrame, metric: str) -> bool:
    column = f"{metric}_mean"
    return column in table and bool(table[column].notna().any())


def _runs_of(frame: pd.DataFrame, config: str) -> pd.DataFrame:
    done = _completed(frame)
    mine = done[done["config"].astype(str) == str(config)]
    if mine.empty:
        available = ", ".join(dict.fromkeys(done["config"].astype(str))) or "none"
        raise DropoutlabError(
            f"no completed run of configuration {config!r} in the history (configurations: {available})"
        )
    return mine


def curve_table(a: Analysis, config: str) -> pd.DataFrame:
    """The numbers behind ``learning_curves``: one row per epoch for one configuration.

    Columns ``epoch, n`` (completed runs that reached the epoch) and, for each of
    ``train_loss, val_loss, train_eval_loss, train_acc, val_acc, train_eval_acc`` that was
    measured, ``<m>_mean, <m>_ci_low, <m>_ci_high`` (interval over seeds at the analysis'
    confidence, on the logit scale for accuracies, NaN below 3 seeds; accuracies as
    fractions). ``train_*`` is the running value with dropout on, ``train_eval_*`` the
    eval-mode one. Raises ``DropoutlabError`` when ``config`` has no completed run.
    """
    table = _epoch_stats(_runs_of(a.history, config), _CURVE_METRICS, a.confidence)
    keep = [m for m in _CURVE_METRICS if _measured(table, m)]
    return table[["epoch", "n"] + [f"{m}_{s}" for m in keep for s in ("mean", "ci_low", "ci_high")]]


def _band_line(ax, x, table: pd.DataFrame, metric: str, scale: float, **line) -> Line2D:
    mean = table[f"{metric}_mean"].to_numpy(dtype=float) * scale
    low = table[f"{metric}_ci_low"].to_numpy(dtype=float) * scale
    high = table[f"{metric}_ci_high"].to_numpy(dtype=float) * scale
    (drawn,) = ax.plot(x, mean, **line)
    ax.fill_between(x, low, high, color=drawn.get_color(), alpha=0.18, linewidth=0)
    return drawn


def _epoch_axis(ax, epochs) -> None:
    """Whole epochs on the x axis; a single epoch is one tick, not a span of fractions around it."""
    ax.set_xlabel("epoch")
    if len(np.unique(epochs)) == 1:
        ax.set_xticks(np.unique(epochs))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def learning_curves(a: Analysis, config: str) -> Figure:
    """Loss and accuracy per epoch for one configuration (the teaching notebook's two panels).

    Left: loss; right: accuracy in percent. Each panel shows the training value (running,
    dropout on), the validation value and, when measured, the eval-mode training value
    (dashed); lines are means over the completed seeds with a band at the analysis'
    confidence (``curve_table`` has the numbers), titled with the report's label of
    ``config``. Epochs reached by fewer seeds (early stopping) average fewer runs.
    """
    table = curve_table(a, config)
    n_seeds = _runs_of(a.history, config)["seed"].nunique()
    x = table["epoch"].to_numpy()
    with _style():
        fig, (ax_loss, ax_acc) = _figure(10, 4.6, ncols=2)
        for ax, kind, scale in ((ax_loss, "loss", 1.0), (ax_acc, "acc", 100.0)):
            for metric in (f"train_{kind}", f"val_{kind}", f"train_eval_{kind}"):
                if _measured(table, metric):
                    _band_line(ax, x, table, metric, scale, color=SERIES_COLORS[metric],
                               linestyle="--" if metric.startswith("train_eval") else "-",
                               label=SERIES_LABELS[metric], gid=f"mean:{metric}")  # fmt: skip
            _epoch_axis(ax, x)
        ax_loss.set_title("Loss per epoch")
        ax_loss.set_ylabel("loss")
        ax_acc.set_title("Accuracy per epoch")
        ax_acc.set_ylabel("accuracy (%)")
        ax_acc.legend(loc="lower right")
        band = f"band: {level(a.confidence)} CI" if n_seeds >= 3 else "no band below 3 seeds"
        fig.suptitle(f"{a.label(config)}\nmean of {n_seeds} seed(s), {band}")
    return fig


# ----------------------------------------------------------------------------------------
# All configurations


def comparison_table(a: Analysis, configs: Sequence[str] = ()) -> pd.DataFrame:
    """The numbers behind ``comparison``: one row per configuration and epoch.

    Columns ``config, epoch, n`` and ``<m>_mean, <m>_ci_low, <m>_ci_high`` for
    ``train_loss, val_loss, train_acc, val_acc`` (running train values, fractions),
    completed runs only, for ``configs`` in their order (empty: every configuration, in the
    analysis' order).
    """
    done = _completed(a.history)
    # one pass over the history, not one per configuration
    by_config = dict(tuple(done.groupby(done["config"].astype(str), sort=False)))
    parts = []
    for config in configs or [c.config for c in a.configs]:
        mine = by_config.get(config, done.iloc[:0])
        if not mine.empty:
            table = _epoch_stats(mine, ("train_loss", "val_loss", "train_acc", "val_acc"), a.confidence)
            parts.append(table.assign(config=config)[["config", *table.columns]])
    if not parts:
        raise DropoutlabError("no completed run in the history: nothing to compare")
    return pd.concat(parts, ignore_index=True)


def comparison(a: Analysis, configs: Sequence[str] = ()) -> Figure:
    """``configs`` (empty: every configuration) in one figure: loss and accuracy (percent) per epoch.

    One colour per configuration (named by the report's labels), solid = validation,
    dashed = training (running, dropout on); lines are means over completed seeds, no bands
    (they would hide each other). Readable up to about 12 configurations: beyond 7, lines
    also carry markers; the analysis plans it with at most 12 (``FigurePlan.configs``). The
    legend sits below the panels.
    """
    table = comparison_table(a, configs)
    configs = list(dict.fromkeys(table["config"]))
    colors = _config_colors(len(configs))
    many = len(configs) > len(OKABE_ITO)
    rows = math.ceil(len(configs) / _legend_columns(map(a.label, configs)))
    with _style():
        fig, (ax_loss, ax_acc) = _figure(10, 4.6 + 0.3 * (rows + 1), ncols=2)
        for i, config in enumerate(configs):
            mine = table[table["config"] == config]
            x = mine["epoch"].to_numpy()
            style = {"color": colors[i]}
            if many:
                style.update(marker=_MARKERS[i % len(_MARKERS)], markevery=max(1, len(x) // 8))
            for ax, kind, scale in ((ax_loss, "loss", 1.0), (ax_acc, "acc", 100.0)):
                ax.plot(x, mine[f"val_{kind}_mean"] * scale, linestyle="-", gid=f"val:{config}", **style)
                ax.plot(x, mine[f"train_{kind}_mean"] * scale, linestyle="--", linewidth=1.4,
                        gid=f"train:{config}", **style)  # fmt: skip
        for ax in (ax_loss, ax_acc):
            _epoch_axis(ax, table["epoch"].to_numpy())
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
        names = [a.label(c) for c in configs] + ["validation", "train (dropout on)"]
        fig.legend(handles, names, loc="outside lower center", ncols=_legend_columns(names))
        which = "All configurations" if not configs else f"{len(configs)} of {len(a.configs)} configurations"
        fig.suptitle(f"{which}: mean over seeds (solid: validation, dashed: train)")
    return fig


def _legend_columns(names) -> int:
    longest = max((len(str(n)) for n in names), default=10)
    return int(min(4, max(1, 100 // (longest + 8))))


# ----------------------------------------------------------------------------------------
# Accuracy and gap against a rate


_RATE_METRICS = ("train_acc", "train_eval_acc", "val_acc", "test_acc", "gap_acc")


def rate_table(a: Analysis) -> pd.DataFrame:
    """The numbers behind ``accuracy_vs_rate`` and ``gap_vs_rate``: one row per configuration,
    the analysis' summary of it.

    Columns ``rate`` (the value of ``Analysis.rate_key``), ``config``, ``on_line`` (False for
    the configurations drawn as separate markers), ``n`` (completed runs), and for
    ``train_acc`` (running, dropout on), ``train_eval_acc``, ``val_acc``, ``test_acc`` and
    ``gap_acc`` (train minus test, eval-mode train where measured) ``<m>_mean, <m>_ci_low,
    <m>_ci_high`` as fractions. Rows: the line by rate, then the others. Raises
    ``DropoutlabError`` when the study has no rate axis.
    """
    if a.rate_key is None:
        raise DropoutlabError(f"study {a.study!r} varies no dropout rate, so there is no rate axis")
    table = a.summary.assign(rate=pd.to_numeric(a.summary[a.rate_key], errors="coerce").astype(float),
                             on_line=a.summary["config"].isin(set(a.runs.loc[a.rate_on_line, "config"])))  # fmt: skip
    table = table[["rate", "config", "on_line", "n"] + [f"{m}_{s}" for m in _RATE_METRICS
                                                        for s in ("mean", "ci_low", "ci_high")]]  # fmt: skip
    line = table[table["on_line"]].sort_values("rate", kind="stable")
    return pd.concat([line, table[~table["on_line"]]], ignore_index=True)


def _off_line_labels(a: Analysis, configs, line: pd.DataFrame) -> list[str]:
    """Name each off-line configuration by the parameters where it leaves the line."""
    params = {c.config: c.params for c in a.configs}
    # the parameters the line holds at one value, and that value
    held = {p: {repr(params[c].get(p)) for c in line["config"]} for p in a.params if p != a.rate_key}
    held = {p: next(iter(values)) for p, values in held.items() if len(values) == 1}
    labels = []
    for config in configs:
        mine = params[config]
        parts = [setting(p, mine.get(p)) for p in held if repr(mine.get(p)) != held[p]]
        labels.append(", ".join(parts) or a.label(config))
    return labels


def _rate_figure(a: Analysis, metrics, ylabel: str, title: str):
    table = rate_table(a)
    done = _completed(a.runs)
    on_line = a.rate_on_line.loc[done.index]
    values = run_metrics(done)
    line, others = table[table["on_line"]], table[~table["on_line"]]
    drawn = [m for m in metrics if table[f"{m}_mean"].notna().any()]
    rates = line["rate"].to_numpy(dtype=float)
    span = float(np.ptp(rates)) if rates.size > 1 else 1.0
    with _style():
        fig, (ax,) = _figure(8, 5.6)
        for i, metric in enumerate(drawn):
            color = SERIES_COLORS[metric]
            if not line.empty:
                _band_line(ax, rates, line, metric, 100.0, color=color, marker="o", label=SERIES_LABELS[metric],
                           gid=f"mean:{metric}")  # fmt: skip
            # Single seeds as faint dots, nudged sideways per series so they do not stack.
            x = pd.to_numeric(done.loc[on_line, a.rate_key], errors="coerce").to_numpy(dtype=float)
            dodge = (i - (len(drawn) - 1) / 2) * 0.012 * span
            ax.scatter(x + dodge, values.loc[on_line, metric].to_numpy(dtype=float) * 100, s=16, color=color,
                       alpha=0.35, linewidths=0, zorder=1, gid=f"seeds:{metric}")  # fmt: skip
        shown = drawn[-1] if drawn else metrics[-1]
        groups: dict[str, str] = {}  # off-line label -> marker; one legend entry each
        ways = _off_line_labels(a, others["config"], line)
        if len(set(ways)) > len(_OFF_LINE_MARKERS):
            # one marker shape and legend entry per way would be unreadable: the rest are grey dots
            ax.scatter(others["rate"], others[f"{shown}_mean"] * 100, s=22, color="#8c8c8c", alpha=0.6,
                       linewidths=0, zorder=0.8, gid="off_line",
                       label=f"{len(others)} other configurations ({SERIES_LABELS[shown]})")  # fmt: skip
        else:
            for row, way in zip(others.itertuples(), ways, strict=True):
                # a way of leaving the line taken by one configuration is named as the report names it
                text = a.label(row.config) if ways.count(way) == 1 else way
                first = text not in groups
                marker = groups.setdefault(text, _OFF_LINE_MARKERS[len(groups) % len(_OFF_LINE_MARKERS)])
                mean, low, high = (getattr(row, f"{shown}_{s}") * 100 for s in ("mean", "ci_low", "ci_high"))
                yerr = None if math.isnan(low) or math.isnan(high) else [[mean - low], [high - mean]]
                container = ax.errorbar([row.rate], [mean], yerr=yerr, fmt=marker, markersize=8, color="#333333",
                                        markerfacecolor="white", capsize=4,
                                        label=f"{text} ({SERIES_LABELS[shown]})" if first else None)  # fmt: skip
                container.lines[0].set_gid(f"off_line:{row.config}")
        if 0 < len(rates) <= 12:
            ax.set_xticks(rates, [f"{r:g}" for r in rates])
        ax.set_xlabel(f"{a.rate_key} (rate)" if a.rate_key.startswith("dropout.") else a.rate_key)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        handles, names = ax.get_legend_handles_labels()
        if handles:
            fig.legend(handles, names, loc="outside lower center", ncols=_legend_columns(names))
    return fig, ax


def accuracy_vs_rate(a: Analysis) -> Figure:
    """Train, validation and test accuracy (percent) against the swept rate (``Analysis.rate_key``).

    The teaching notebook's question as one picture: as the rate grows, what happens to the
    training accuracy (running, dropout on), the eval-mode training accuracy (when
    measured), the validation and the test accuracy? Lines are means over completed seeds
    with interval bands, faint dots the single seeds. Configurations off the rate line
    (``Analysis.rate_on_line``) are drawn as white markers at their test-accuracy mean with
    its interval, one marker shape and legend entry per way of leaving the line: the
    configuration's report label (``Analysis.label``, ``"dropout.dense=0.5 (test)"``), or for
    several configurations leaving it the same way, what they share (``"model=mlp (test)"``).
    Beyond 7 ways of leaving the line (a large grid), the configurations off it are grey dots
    at their test-accuracy means, one legend entry for all. ``rate_table`` has the numbers.
    """
    title = f"Accuracy vs {a.rate_key}: mean over seeds, {level(a.confidence)} CI band"
    return _rate_figure(a, ("train_acc", "train_eval_acc", "val_acc", "test_acc"), "accuracy (%)", title)[0]


def gap_vs_rate(a: Analysis) -> Figure:
    """Generalization gap (train minus test accuracy, percentage points) against the rate.

    The train accuracy is the eval-mode one where measured, the running one otherwise.
    Mean over completed seeds with an interval band, single seeds as dots, a zero line, and
    configurations off the line as labelled markers (as ``accuracy_vs_rate``).
    """
    title = f"Generalization gap vs {a.rate_key}: mean over seeds, {level(a.confidence)} CI band"
    fig, ax = _rate_figure(a, ("gap_acc",), "train \u2212 test accuracy (pp)", title)
    with _style():
        ax.axhline(0.0, color="#555555", linewidth=1.0, zorder=0.5, gid="zero")
    return fig


# ----------------------------------------------------------------------------------------
# Two-parameter grids


#: The most values on either axis of a heatmap whose cells carry their numbers as text.
HEATMAP_ANNOTATED = 8


def heatmap_table(a: Analysis) -> pd.DataFrame:
    """The numbers behind ``heatmap``: one row per cell of ``Analysis.grid`` with a completed run.

    Columns ``y_key, x_key, config, n, test_acc_mean, test_acc_ci_low, test_acc_ci_high``
    (fractions; the analysis' summary of that configuration), sorted by cell.
    """
    x_key, y_key = a.grid
    done = a.summary[a.summary["n"] > 0].sort_values([y_key, x_key], kind="stable")
    return done[[y_key, x_key, "config", "n", "test_acc_mean", "test_acc_ci_low", "test_acc_ci_high"]]


def heatmap(a: Analysis) -> Figure:
    """Mean test accuracy per cell of the two-parameter grid (``Analysis.grid``), each cell annotated.

    Cells read ``"97.3%"`` over ``"96.1–98.2"`` (the interval, logit t, in percent), or
    ``"n=2"`` below 3 seeds; cells without completed runs are grey. The second parameter
    grows upwards. Beyond ``HEATMAP_ANNOTATED`` values on an axis the cells would be too
    small for their text: they are colours only, every other tick labelled as room allows.
    ``heatmap_table`` has the numbers.
    """
    x_key, y_key = a.grid
    table = heatmap_table(a)
    xs, ys = sorted_levels(table[x_key].dropna()), sorted_levels(table[y_key].dropna())
    grid = np.full((len(ys), len(xs)), np.nan)
    low, high = np.full_like(grid, np.nan), np.full_like(grid, np.nan)
    count = np.zeros_like(grid, dtype=int)
    for values in table.to_dict("records"):
        i, j = ys.index(values[y_key]), xs.index(values[x_key])
        grid[i, j], low[i, j], high[i, j] = (
            100 * values[f"test_acc_{s}"] for s in ("mean", "ci_low", "ci_high")
        )
        count[i, j] = values["n"]
    width = min(10.0, max(6.5, 1.3 * len(xs) + 3.0))
    height = min(9.0, max(4.5, 0.9 * len(ys) + 2.5))
    with _style():
        fig, (ax,) = _figure(width, height)
        ax.grid(False)
        cmap = mpl.colormaps["viridis"].with_extremes(bad="#dddddd")
        image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, origin="lower", aspect="auto")
        annotated = max(len(xs), len(ys)) <= HEATMAP_ANNOTATED
        for i in range(len(ys) if annotated else 0):
            for j in range(len(xs)):
                ax.text(j, i, _cell_text(grid[i, j], low[i, j], high[i, j], count[i, j]), ha="center",
                        va="center", fontsize=_SMALL, color=_text_color(image, grid[i, j]), gid=f"cell:{i},{j}")  # fmt: skip
        for axis, values, room in ((ax.xaxis, xs, 14), (ax.yaxis, ys, 20)):
            step = math.ceil(len(values) / room)
            axis.set_ticks(range(0, len(values), step), [_tick(v) for v in values[::step]])
        ax.set_xlabel(x_key)
        ax.set_ylabel(y_key)
        fig.colorbar(image, ax=ax, label="mean test_acc (%)")
        where = "below" if annotated else "in the table"
        ax.set_title(f"Mean test_acc per configuration ({level(a.confidence)} CI {where})")
    return fig


def factor_means_table(a: Analysis) -> pd.DataFrame:
    """The numbers behind ``factor_means``: one row per parameter and value, from ``Analysis.factors``.

    Columns ``parameter, value, reference`` (True at the value effects are measured
    against), ``n`` (seeds) and ``test_acc_mean, test_acc_ci_low, test_acc_ci_high``
    (fractions): the mean over the seeds of each seed's mean over the configurations with
    that value. Raises ``DropoutlabError`` when the study crosses fewer than three parameters.
    """
    if a.factors is None:
        raise DropoutlabError(f"study {a.study!r} does not cross three or more parameters")
    fx = a.factors
    return pd.DataFrame([{"parameter": m.factor, "value": m.level, "reference": m.level == fx.reference[m.factor],
                          "n": m.test_acc.n, "test_acc_mean": m.test_acc.mean, "test_acc_ci_low": m.test_acc.low,
                          "test_acc_ci_high": m.test_acc.high} for m in fx.means])  # fmt: skip


def factor_means(a: Analysis) -> Figure:
    """Small multiples: one panel per crossed parameter, the mean test accuracy (percent) at each
    of its values averaged over the other parameters, with its interval, on one shared y axis.

    Readable whatever the size of the grid (a panel per parameter, a point per value), where
    one heatmap of every configuration is not. Numeric values sit at their value on the x
    axis, others in the study's order; the reference value (the baseline's) is a filled
    square, the others circles. ``factor_means_table`` has the numbers.
    """
    table = factor_means_table(a)
    factors = list(dict.fromkeys(table["parameter"]))
    ncols = min(len(factors), 3)
    nrows = math.ceil(len(factors) / ncols)
    with _style():
        fig = Figure(figsize=(10, 1.2 + 3.2 * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True).ravel()
        for ax, factor in zip(axes, factors, strict=False):
            mine = table[table["parameter"] == factor]
            values = mine["value"].tolist()
            numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
            x = np.asarray(values, dtype=float) if numeric else np.arange(len(values), dtype=float)
            mean, low, high = (
                mine[f"test_acc_{s}"].to_numpy(dtype=float) * 100 for s in ("mean", "ci_low", "ci_high")
            )
            ax.plot(x, mean, color=OKABE_ITO[0], linewidth=1.5, gid=f"factor:{factor}")
            bars = np.where(np.isnan(low) | np.isnan(high), 0.0, np.vstack([mean - low, high - mean]))
            ax.errorbar(x, mean, yerr=bars, fmt="none", ecolor=OKABE_ITO[0], capsize=3, linewidth=1.2)
            ref = mine["reference"].to_numpy(dtype=bool)
            ax.plot(x[ref], mean[ref], "s", color=OKABE_ITO[3], markersize=8, gid=f"reference:{factor}")
            ax.plot(x[~ref], mean[~ref], "o", color=OKABE_ITO[0], markersize=6)
            ax.tick_params(labelsize=_SMALL)
            ax.grid(True, color="#b0b0b0", alpha=0.4, linewidth=0.6)
            ax.set_axisbelow(True)
            if not numeric:
                ax.set_xticks(x, [_tick(v) for v in values], rotation=30 if len(values) > 4 else 0)
            else:
                ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
            ax.set_xlabel(factor)
        for ax in axes[len(factors) :]:
            ax.set_visible(False)
        for ax in axes[::ncols]:
            ax.set_ylabel("mean test accuracy (%)")
        fig.suptitle(f"Mean test accuracy at each value, averaged over the other parameters\n"
                     f"{level(a.confidence)} CI; square: the reference value")  # fmt: skip
    return fig


def _tick(value) -> str:
    return f"{value:g}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def _cell_text(mean: float, low: float, high: float, n: int) -> str:
    if n == 0 or math.isnan(mean):
        return "no runs"
    return f"{mean:.1f}%\n" + (f"{low:.1f}\u2013{high:.1f}" if not math.isnan(low) else f"n={n}")


def _text_color(image, value: float) -> str:
    if math.isnan(value):
        return "#333333"
    r, g, b, _ = image.cmap(image.norm(value))
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


# ----------------------------------------------------------------------------------------
# Learned dropout rates (concrete dropout)


def learned_rate_table(a: Analysis) -> pd.DataFrame:
    """Per configuration, slot and epoch: ``n`` (seeds) and the learned rate's mean and t
    interval, from ``Analysis.learned_rates``. Rates are fractions in (0, 1)."""
    rows = []
    for (config, slot, epoch), group in a.learned_rates.groupby(["config", "slot", "epoch"], sort=False):
        interval = t_interval(group["rate"].to_numpy(dtype=float), a.confidence)
        rows.append({"config": config, "slot": slot, "epoch": int(epoch), "n": interval.n,
                     "rate_mean": interval.mean, "rate_ci_low": interval.low,
                     "rate_ci_high": interval.high})  # fmt: skip
    return pd.DataFrame(rows).sort_values(["config", "slot", "epoch"], kind="stable", ignore_index=True)


def learned_rates(a: Analysis) -> Figure:
    """The learned dropout rate of each slot per epoch: one line per configuration and slot.

    Lines are means over seeds with a Student t band (none below 2 seeds), in percent.
    Raises ``DropoutlabError`` when no run learned a rate.
    """
    if a.learned_rates.empty:
        raise DropoutlabError("no run of this study learned a dropout rate (concrete dropout)")
    table = learned_rate_table(a)
    pairs = list(dict.fromkeys(zip(table["config"], table["slot"], strict=True)))
    colors = _config_colors(len(pairs))
    with _style():
        fig, (ax,) = _figure(7, 4.4)
        for color, (config, slot) in zip(colors, pairs, strict=True):
            mine = table[(table["config"] == config) & (table["slot"] == slot)]
            _band_line(ax, mine["epoch"].to_numpy(), mine, "rate", 100.0, color=color, marker="o",
                       markersize=3, label=f"{a.label(config)}: {slot}", gid=f"rate:{config}:{slot}")  # fmt: skip
        ax.set_xlabel("epoch")
        ax.set_ylabel("learned dropout rate (%)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title("Learned dropout rate per epoch (concrete dropout)")
        ax.legend(fontsize=_SMALL, loc="best")
    return fig


# ----------------------------------------------------------------------------------------
# Monte Carlo dropout, and every figure of a plan


def reliability_diagram(
    bins_by_label: Mapping[str, Sequence[tuple[int, float, float]]], title: str = "Reliability"
) -> Figure:
    """Accuracy against confidence per bin, one line of points per label, and the diagonal.

    ``bins_by_label`` maps a label (say ``"MC, T=50"`` or ``"weight scaling"``) to its bins'
    ``(count, mean confidence, accuracy)``, fractions, as
    :func:`~dropoutlab.train.uncertainty.reliability` gives them; empty bins (count 0) are
    left out. Both axes are drawn in percent. A calibrated model lies on the diagonal
    (Guo et al., ICML 2017, fig. 1); points below it are overconfident.
    """
    with _style():
        fig, (ax,) = _figure(5.0, 4.6)
        ax.plot([0, 100], [0, 100], color="#555555", linestyle="--", linewidth=1.0, gid="diagonal")
        for i, (label, bins) in enumerate(bins_by_label.items()):
            points = [(conf, acc) for count, conf, acc in bins if count > 0]
            ax.plot([100 * conf for conf, _ in points], [100 * acc for _, acc in points],
                    marker=_MARKERS[i % len(_MARKERS)], color=OKABE_ITO[i % len(OKABE_ITO)], linewidth=1.5,
                    label=label, gid=f"reliability:{label}")  # fmt: skip
        ax.set(xlim=(0, 100), ylim=(0, 100), xlabel="confidence (%)", ylabel="accuracy (%)", title=title)
        ax.set_aspect("equal")
        if bins_by_label:
            ax.legend(loc="upper left", frameon=False)
    return fig


def metric_against_samples(rows: Sequence[Mapping[str, Any]], metric: str) -> Figure:
    """``metric`` against the number of MC samples, one line per label with its interval band.

    ``rows`` are dicts ``{"label", "samples", "mean", "low", "high"}``: the mean of ``metric``
    (say over seeds) and its interval, at ``samples`` MC passes. ``samples = 0`` is the
    deterministic pass (weight scaling, Srivastava et al. 2014, §7.5): drawn as a separate
    hollow marker with an error bar at the left, at an x labelled "det."; the MC points
    (``samples >= 1``) are a line on a log-2 axis with the interval as a band. Values are
    drawn as given, in the metric's own units (``metric`` names the y axis).
    """
    with _style():
        fig, (ax,) = _figure(6.5, 4.0)
        labels = list(dict.fromkeys(row["label"] for row in rows))
        mc_samples = sorted({int(row["samples"]) for row in rows if int(row["samples"]) > 0})
        det_x = mc_samples[0] / 2 if mc_samples else 1.0  # one octave left of the first MC point
        for i, label in enumerate(labels):
            color, marker = OKABE_ITO[i % len(OKABE_ITO)], _MARKERS[i % len(_MARKERS)]
            mine = sorted((row for row in rows if row["label"] == label), key=lambda row: int(row["samples"]))
            mc = [row for row in mine if int(row["samples"]) > 0]
            if mc:
                x = [int(row["samples"]) for row in mc]
                ax.fill_between(x, [row["low"] for row in mc], [row["high"] for row in mc],
                                color=color, alpha=0.18, linewidth=0)  # fmt: skip
                ax.plot(x, [row["mean"] for row in mc], color=color, marker=marker, markersize=5,
                        label=label, gid=f"mean:{label}")  # fmt: skip
            for row in mine:
                if int(row["samples"]) == 0:
                    drawn = ax.errorbar([det_x], [row["mean"]],
                                        yerr=[[row["mean"] - row["low"]], [row["high"] - row["mean"]]],
                                        color=color, marker=marker, markerfacecolor="white", capsize=3,
                                        linestyle="none", label=None if mc else label)  # fmt: skip
                    drawn.lines[0].set_gid(f"det:{label}")
        ax.set_xscale("log", base=2)
        det = [det_x] if any(int(row["samples"]) == 0 for row in rows) else []
        ax.set_xticks(det + mc_samples, ["det."] * len(det) + [str(t) for t in mc_samples])
        ax.minorticks_off()
        ax.set(
            xlabel="MC samples (det.: one deterministic pass)", ylabel=metric, title=f"{metric} vs MC samples"
        )
        if labels:
            ax.legend(frameon=False)
    return fig


def mc_metric(a: Analysis, metric: str) -> Figure:
    """A Monte Carlo metric (``acc``, ``nll``, ``ece``...) against the number of passes, per
    configuration, from ``Analysis.mc`` (``metric_against_samples``)."""
    scale = 100 if metric == "acc" else 1
    rows = [{"label": a.label(r.config), "samples": r.samples, "mean": scale * r[metric].mean,
             "low": scale * r[metric].low, "high": scale * r[metric].high} for _, r in a.mc.levels.iterrows()]  # fmt: skip
    return metric_against_samples(rows, "test accuracy (%)" if metric == "acc" else MC_METRIC_NAMES[metric])


def reliability(a: Analysis, config: str) -> Figure:
    """The reliability diagram of ``config``: the deterministic pass and the largest number of passes."""
    bins = {"deterministic pass": a.mc.reliability[(config, 0)]}
    if a.mc.largest:
        bins[f"MC dropout, T={a.mc.largest}"] = a.mc.reliability[(config, a.mc.largest)]
    return reliability_diagram(bins, f"Reliability: {a.label(config)}")


def draw(a: Analysis, plan: FigurePlan) -> Figure:
    """The figure ``plan`` (one of ``Analysis.figures``) asks for. Raises ``DropoutlabError``
    when its data refuse it."""
    if plan.kind.startswith("mc_"):
        return mc_metric(a, plan.kind.removeprefix("mc_"))
    if plan.kind in ("curves", "reliability"):
        return (learning_curves if plan.kind == "curves" else reliability)(a, plan.config)
    if plan.kind == "comparison":
        return comparison(a, plan.configs)
    kinds = {"rate_accuracy": accuracy_vs_rate, "rate_gap": gap_vs_rate, "heatmap": heatmap,
             "factor_means": factor_means, "learned_rates": learned_rates}  # fmt: skip
    if plan.kind not in kinds:
        raise ValueError(f"unknown figure kind {plan.kind!r}")
    return kinds[plan.kind](a)
