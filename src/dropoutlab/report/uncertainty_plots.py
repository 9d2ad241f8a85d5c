"""Figures of MC dropout: reliability diagrams and a metric against the number of MC samples.

The functions take plain numbers (what :func:`dropoutlab.train.uncertainty.reliability`
gives, or rows of a table) and return a ``matplotlib.figure.Figure`` drawn with the object
API on an Agg canvas (no pyplot, no GUI, nothing shown): save it with ``fig.savefig``. matplotlib is imported inside the
functions, so importing this module costs nothing. Each drawn line carries a ``gid``
(``"diagonal"``, ``"reliability:<label>"``, ``"mean:<label>"``, ``"det:<label>"``) so that
tests and callers can find it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Okabe & Ito's colour-blind-safe palette, without its yellow (as ``report/plots.py``).
COLORS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.grid(True, color="#b0b0b0", alpha=0.4, linewidth=0.6)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


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
    fig, ax = _figure(5.0, 4.6)
    ax.plot([0, 100], [0, 100], color="#555555", linestyle="--", linewidth=1.0, gid="diagonal")
    for i, (label, bins) in enumerate(bins_by_label.items()):
        points = [(conf, acc) for count, conf, acc in bins if count > 0]
        ax.plot(
            [100 * conf for conf, _ in points],
            [100 * acc for _, acc in points],
            marker=_MARKERS[i % len(_MARKERS)],
            color=COLORS[i % len(COLORS)],
            linewidth=1.5,
            label=label,
            gid=f"reliability:{label}",
        )
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
    fig, ax = _figure(6.0, 4.0)
    labels = list(dict.fromkeys(row["label"] for row in rows))
    mc_samples = sorted({int(row["samples"]) for row in rows if int(row["samples"]) > 0})
    det_x = mc_samples[0] / 2 if mc_samples else 1.0  # one octave left of the first MC point
    for i, label in enumerate(labels):
        color, marker = COLORS[i % len(COLORS)], _MARKERS[i % len(_MARKERS)]
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
    ax.set(xlabel="MC samples (det.: one deterministic pass)", ylabel=metric, title=f"{metric} vs MC samples")
    if labels:
        ax.legend(frameon=False)
    return fig
