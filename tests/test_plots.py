"""Figures: what each plot draws is the seed means (and intervals) of known synthetic runs."""

from __future__ import annotations

import itertools
import math
import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from dropoutlab.errors import DropoutlabError
from dropoutlab.report import plots
from dropoutlab.report.analysis import CURVES_BEST, StudyData, _analyze
from dropoutlab.report.model import FigurePlan
from dropoutlab.report.results import StudyResults

matplotlib.use("Agg")

T_975_2 = 4.302653  # Student t quantile 0.975 with 2 degrees of freedom, from tables
OFFSETS = (-0.01, 0.0, 0.01)  # per seed: mean 0, sd 0.01
HALF = T_975_2 * 0.01 / math.sqrt(3)  # 95% t half-width of three values spread by OFFSETS


def logit_band(center: float) -> tuple[float, float]:
    """95% t interval on the logit scale of ``center + OFFSETS``, mapped back (fractions)."""
    z = np.log((center + np.array(OFFSETS)) / (1 - center - np.array(OFFSETS)))
    half = T_975_2 * z.std(ddof=1) / math.sqrt(3)
    return 1 / (1 + math.exp(-(z.mean() - half))), 1 / (1 + math.exp(-(z.mean() + half)))


PARAMS = ["dropout.conv", "dropout.dense"]
TEST = {(0.0, 0.0): 0.90, (0.2, 0.0): 0.92, (0.5, 0.0): 0.88, (0.2, 0.5): 0.91}
TRAIN = {(0.0, 0.0): 0.99, (0.2, 0.0): 0.95, (0.5, 0.0): 0.85, (0.2, 0.5): 0.93}


def label(conv, dense) -> str:
    return f"dropout.conv={conv}, dropout.dense={dense}"


def make_runs(cells=TEST, eval_mode=True) -> pd.DataFrame:
    """3 seeds per configuration, values ``base + OFFSETS[seed]``, plus one diverged run."""
    rows = []
    for (conv, dense), test in cells.items():
        for seed, off in enumerate(OFFSETS):
            train = TRAIN.get((conv, dense), test + 0.05)
            rows.append(
                {
                    "id": f"{conv}-{dense}-{seed}",
                    "config": label(conv, dense),
                    "seed": seed,
                    "status": "completed",
                    "test_acc": test + off,
                    "test_loss": 1 - test,
                    "final_train_acc": train + off,
                    "final_train_eval_acc": (train + 0.02 + off) if eval_mode else np.nan,
                    "final_val_acc": test + 0.01 + off,
                    "dropout.conv": conv,
                    "dropout.dense": dense,
                }
            )
    rows.append({**rows[0], "id": "bad", "seed": 9, "status": "diverged", "test_acc": 0.1})
    rows[-1]["final_train_acc"] = 0.1
    runs = pd.DataFrame(rows)
    runs.attrs["params"] = PARAMS
    return runs


def val_acc(conv, epoch):
    return 0.5 + 0.08 * epoch - conv / 10


def make_history(configs=((0.0, 0.0), (0.2, 0.0), (0.5, 0.0)), eval_for=(0.2, 0.0)):
    """5 epochs per run; every metric is ``f(config, epoch) + OFFSETS[seed]``."""
    rows = []
    for conv, dense in configs:
        for seed, off in enumerate(OFFSETS):
            for epoch in range(1, 6):
                rows.append(
                    {
                        "run_id": f"{conv}-{dense}-{seed}",
                        "config": label(conv, dense),
                        "seed": seed,
                        "status": "completed",
                        "dropout.conv": conv,
                        "dropout.dense": dense,
                        "epoch": epoch,
                        "train_loss": 2.0 / epoch + off,
                        "val_loss": 2.2 / epoch + conv + off,
                        "train_acc": 0.45 + 0.09 * epoch + off,
                        "val_acc": val_acc(conv, epoch) + off,
                        "train_eval_acc": 0.5 + 0.09 * epoch + off if (conv, dense) == eval_for else np.nan,
                        "train_eval_loss": 1.8 / epoch + off if (conv, dense) == eval_for else np.nan,
                    }
                )
                if seed == 0:  # a diverged run that must not count
                    rows.append({**rows[-1], "run_id": "bad", "seed": 9, "status": "diverged"})
                    rows[-1].update({"val_acc": 0.0, "train_loss": 99.0})
    history = pd.DataFrame(rows)
    history.attrs["params"] = PARAMS
    return history


def analysis(runs=None, history=None):
    """The report's analysis of ``runs`` (default: the four-cell grid) and ``history``."""
    runs = make_runs() if runs is None else runs
    return _analyze(StudyData.from_runs(runs, PARAMS, history=make_history() if history is None else history))


def sweep(**options):
    """The analysis of the three configurations without dense dropout: one rate line."""
    return analysis(make_runs({k: v for k, v in TEST.items() if k[1] == 0.0}, **options))


def by_gid(ax, gid):
    found = [line for line in ax.lines if line.get_gid() == gid]
    assert len(found) == 1, f"{gid}: {[line.get_gid() for line in ax.lines]}"
    return found[0]


def band_at(band, x):
    """(low, high) of a fill_between band at abscissa x."""
    vertices = band.get_paths()[0].vertices
    ys = vertices[np.isclose(vertices[:, 0], x), 1]
    return ys.min(), ys.max()


# ----------------------------------------------------------------------------------------


def test_learning_curves_draw_seed_means_per_epoch_with_t_band():
    fig = plots.learning_curves(analysis(), label(0.5, 0.0))
    assert isinstance(fig, Figure)
    assert fig.get_suptitle().startswith("dropout.conv=0.5\n")  # the report's label
    ax_loss, ax_acc = fig.axes
    assert [line.get_gid() for line in ax_acc.lines] == ["mean:train_acc", "mean:val_acc"]
    assert [line.get_gid() for line in ax_loss.lines] == ["mean:train_loss", "mean:val_loss"]
    epochs = np.arange(1, 6)
    np.testing.assert_allclose(by_gid(ax_acc, "mean:val_acc").get_xdata(), epochs)
    # Percent on the accuracy axis; the diverged run (val_acc 0) is left out.
    np.testing.assert_allclose(by_gid(ax_acc, "mean:val_acc").get_ydata(), val_acc(0.5, epochs) * 100)
    np.testing.assert_allclose(by_gid(ax_loss, "mean:train_loss").get_ydata(), 2.0 / epochs)
    low, high = band_at(ax_acc.collections[1], 3)  # validation band at epoch 3: logit t
    expected = logit_band(val_acc(0.5, 3))
    assert low == pytest.approx(expected[0] * 100, abs=1e-5)
    assert high == pytest.approx(expected[1] * 100, abs=1e-5)
    # The loss band is a plain t interval.
    low, high = band_at(ax_loss.collections[0], 3)
    assert high - low == pytest.approx(2 * HALF, abs=1e-6)


def test_learning_curves_add_dashed_eval_mode_train_when_measured():
    fig = plots.learning_curves(analysis(), label(0.2, 0.0))
    ax_loss, ax_acc = fig.axes
    assert len(ax_acc.lines) == 3 and len(ax_loss.lines) == 3
    eval_line = by_gid(ax_acc, "mean:train_eval_acc")
    assert eval_line.get_linestyle() == "--"
    assert by_gid(ax_acc, "mean:val_acc").get_linestyle() == "-"
    np.testing.assert_allclose(eval_line.get_ydata(), (0.5 + 0.09 * np.arange(1, 6)) * 100)


def test_learning_curves_name_the_missing_configuration():
    with pytest.raises(DropoutlabError, match="dropout.conv=0.0, dropout.dense=0.0"):
        plots.learning_curves(analysis(), "dropout.conv=0.9")


def test_curve_table_holds_the_plotted_fractions():
    table = plots.curve_table(analysis(), label(0.0, 0.0))
    assert list(table["n"]) == [3] * 5
    assert "train_eval_acc_mean" not in table  # not measured for this configuration
    np.testing.assert_allclose(table["val_acc_mean"], val_acc(0.0, np.arange(1, 6)))
    expected = [logit_band(v) for v in val_acc(0.0, np.arange(1, 6))]
    np.testing.assert_allclose(table["val_acc_ci_low"], [lo for lo, _ in expected], atol=1e-7)
    np.testing.assert_allclose(table["val_acc_ci_high"], [hi for _, hi in expected], atol=1e-7)
    assert (table["val_acc_ci_high"] < 1).all()


def test_bands_need_three_seeds():
    history = make_history()
    two = history[history["seed"] != 2]
    two.attrs["params"] = PARAMS
    table = plots.curve_table(analysis(history=two), label(0.0, 0.0))
    assert table["val_acc_ci_low"].isna().all() and table["val_acc_mean"].notna().all()


def test_comparison_gives_each_configuration_one_colour_solid_val_dashed_train():
    fig = plots.comparison(analysis())
    ax_loss, ax_acc = fig.axes
    assert len(ax_acc.lines) == len(ax_loss.lines) == 6
    colors = set()
    for conv in (0.0, 0.2, 0.5):
        val = by_gid(ax_acc, f"val:{label(conv, 0.0)}")
        train = by_gid(ax_acc, f"train:{label(conv, 0.0)}")
        assert val.get_linestyle() == "-" and train.get_linestyle() == "--"
        assert val.get_color() == train.get_color()
        colors.add(val.get_color())
        np.testing.assert_allclose(val.get_ydata(), val_acc(conv, np.arange(1, 6)) * 100)
        loss = by_gid(ax_loss, f"val:{label(conv, 0.0)}")
        np.testing.assert_allclose(loss.get_ydata(), 2.2 / np.arange(1, 6) + conv)
    assert len(colors) == 3
    legend_texts = [t.get_text() for t in fig.legends[0].get_texts()]
    # The report's labels name the configurations (the one without a run has no line).
    assert legend_texts == [
        "no dropout",
        "dropout.conv=0.2",
        "dropout.conv=0.5",
        "validation",
        "train (dropout on)",
    ]


def test_comparison_keeps_twelve_configurations_apart():
    configs = [(c / 10, 0.0) for c in range(12)]
    runs = make_runs({c: 0.9 for c in configs})
    fig = plots.comparison(analysis(runs, make_history(configs=configs, eval_for=None)))
    lines = fig.axes[1].lines
    assert len(lines) == 24
    styles = {(str(line.get_color()), line.get_marker()) for line in lines}
    assert len(styles) == 12
    assert len(fig.legends[0].get_texts()) == 14
    assert 7 <= fig.get_figwidth() <= 10


def test_accuracy_vs_rate_draws_means_bands_and_single_seeds():
    fig = plots.accuracy_vs_rate(sweep())
    (ax,) = fig.axes
    rates = [0.0, 0.2, 0.5]
    assert [line.get_gid() for line in ax.lines] == [
        "mean:train_acc",
        "mean:train_eval_acc",
        "mean:val_acc",
        "mean:test_acc",
    ]
    test = by_gid(ax, "mean:test_acc")
    np.testing.assert_allclose(test.get_xdata(), rates)
    np.testing.assert_allclose(test.get_ydata(), [TEST[(r, 0.0)] * 100 for r in rates])
    train = by_gid(ax, "mean:train_acc")  # running, dropout on; diverged run left out
    np.testing.assert_allclose(train.get_ydata(), [TRAIN[(r, 0.0)] * 100 for r in rates])
    bands = [c for c in ax.collections if c.get_gid() is None]  # one per line, in order
    dots = {c.get_gid(): c for c in ax.collections if c.get_gid()}
    low, high = band_at(bands[3], 0.2)
    assert (low, high) == tuple(pytest.approx(x * 100, abs=1e-5) for x in logit_band(0.92))
    assert len(dots["seeds:test_acc"].get_offsets()) == 9
    assert sorted(np.round(dots["seeds:test_acc"].get_offsets()[:, 1], 6)) == sorted(
        np.round([(TEST[(r, 0.0)] + o) * 100 for r in rates for o in OFFSETS], 6)
    )


def test_rate_figures_draw_the_numbers_of_the_analysis_and_its_table():
    a = analysis()
    table = plots.rate_table(a)
    summary = a.summary.set_index("config").loc[table["config"]]
    for column in ("test_acc_mean", "test_acc_ci_low", "gap_acc_mean", "train_eval_acc_ci_high"):
        np.testing.assert_array_equal(table[column], summary[column])  # the same numbers, not recomputed
    line = table[table["on_line"]]
    np.testing.assert_allclose(
        by_gid(plots.accuracy_vs_rate(a).axes[0], "mean:test_acc").get_ydata(), line["test_acc_mean"] * 100
    )


def test_accuracy_vs_rate_draws_configurations_off_the_line_as_labelled_markers():
    fig = plots.accuracy_vs_rate(analysis())
    (ax,) = fig.axes
    marker = by_gid(ax, f"off_line:{label(0.2, 0.5)}")
    np.testing.assert_allclose(np.asarray(marker.get_xdata(), float), [0.2])
    np.testing.assert_allclose(np.asarray(marker.get_ydata(), float), [TEST[(0.2, 0.5)] * 100])
    assert marker.get_linestyle() == "None" and marker.get_marker() == "D"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    # named as the report names it (Analysis.label), not by where it leaves the line alone
    assert f"{analysis().label(label(0.2, 0.5))} (test)" in legend
    assert "dropout.conv=0.2, dropout.dense=0.5 (test)" in legend
    # The line itself holds only the dense=0 configurations (the rate axis of the analysis).
    np.testing.assert_allclose(by_gid(ax, "mean:test_acc").get_ydata(), [90, 92, 88])


def test_rate_plots_refuse_a_study_without_a_rate_axis():
    runs = make_runs()
    for key in PARAMS:  # kinds, not rates
        runs[key] = runs[key].map({0.0: "a", 0.2: "b", 0.5: "c"})
    with pytest.raises(DropoutlabError, match="varies no dropout rate"):
        plots.accuracy_vs_rate(analysis(runs))


def test_accuracy_vs_rate_leaves_out_eval_mode_train_when_not_measured():
    (ax,) = plots.accuracy_vs_rate(sweep(eval_mode=False)).axes
    assert "mean:train_eval_acc" not in [line.get_gid() for line in ax.lines]


def test_gap_vs_rate_uses_eval_mode_train_where_measured_and_draws_zero():
    for eval_mode, extra in ((True, 0.02), (False, 0.0)):
        (ax,) = plots.gap_vs_rate(sweep(eval_mode=eval_mode)).axes
        gap = by_gid(ax, "mean:gap_acc")
        expected = [(TRAIN[(r, 0.0)] + extra - TEST[(r, 0.0)]) * 100 for r in (0.0, 0.2, 0.5)]
        np.testing.assert_allclose(gap.get_ydata(), expected)
        np.testing.assert_allclose(by_gid(ax, "zero").get_ydata(), [0, 0])


def test_gap_vs_rate_marks_configurations_off_the_line():
    marker = by_gid(plots.gap_vs_rate(analysis()).axes[0], f"off_line:{label(0.2, 0.5)}")
    np.testing.assert_allclose(np.asarray(marker.get_ydata(), float), [(0.93 + 0.02 - 0.91) * 100])


def test_heatmap_annotates_each_cell_with_mean_and_interval():
    runs = make_runs()
    single = runs[(runs["config"] != label(0.5, 0.0)) | (runs["seed"] == 0)]
    fig = plots.heatmap(analysis(single))
    ax = fig.axes[0]
    texts = {t.get_gid(): t.get_text() for t in ax.texts}

    # rows: dense 0.0, 0.5 (upwards); columns: conv 0.0, 0.2, 0.5
    def cell(center):
        low, high = logit_band(center)
        return f"{center * 100:.1f}%\n{low * 100:.1f}\u2013{high * 100:.1f}"

    assert texts["cell:0,0"] == cell(0.90)
    assert texts["cell:0,1"] == cell(0.92)
    assert texts["cell:0,2"] == "87.0%\nn=1"  # one seed: no interval
    assert texts["cell:1,1"] == cell(0.91)
    assert texts["cell:1,0"] == "no runs"
    assert texts["cell:1,2"] == "no runs"
    image = ax.images[0].get_array()
    assert image[0, 1] == pytest.approx(92.0)
    assert np.ma.is_masked(image[1, 0])


def test_every_figure_of_the_plan_is_drawn_and_its_png_is_the_same_each_time():
    a = analysis()
    kinds = {plan.kind for plan in a.figures}
    assert {"rate_accuracy", "rate_gap", "heatmap", "comparison", "curves"} <= kinds
    for plan in a.figures:
        if plan.config != label(0.2, 0.5):  # no history stored for it
            assert isinstance(plots.draw(a, plan), Figure)
    with pytest.raises(ValueError, match="unknown figure kind"):
        plots.draw(a, FigurePlan("x", "pie", "x", "x"))
    fig = plots.learning_curves(a, label(0.0, 0.0))
    assert plots.png_bytes(fig).startswith(b"\x89PNG\r\n\x1a\n")
    assert plots.png_bytes(fig) == plots.png_bytes(fig)


def test_every_figure_is_print_and_phone_sized_with_no_tiny_text():
    a = analysis()
    figures = [
        plots.learning_curves(a, label(0.2, 0.0)),
        plots.comparison(a),
        plots.accuracy_vs_rate(a),
        plots.gap_vs_rate(a),
        plots.heatmap(a),
    ]
    for fig in figures:
        assert 6.5 <= fig.get_figwidth() <= 10
        plots.png_bytes(fig)  # draws, so that lazily made tick labels exist
        sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_text() and t.get_visible()]
        assert sizes and min(sizes) >= 10


def test_configurations_leaving_the_line_the_same_way_share_one_marker_and_name_what_they_share():
    cells = {**TEST, (0.5, 0.5): 0.87}  # two configurations off the line, both at dropout.dense=0.5
    a = analysis(make_runs(cells))
    fig = plots.accuracy_vs_rate(a)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "dropout.dense=0.5 (test)" in legend  # one entry for both: what they share
    markers = {by_gid(fig.axes[0], f"off_line:{label(c, 0.5)}").get_marker() for c in (0.2, 0.5)}
    assert len(markers) == 1


def test_every_legend_names_a_configuration_as_the_report_does():
    """One name per configuration: the curves, the comparison and the rate figures use ``Analysis.label``."""
    a = analysis(make_runs(), make_history(configs=tuple(TEST)))
    names = {a.label(c.config) for c in a.configs}
    assert "no dropout" in names
    for plan in a.figures:
        fig = plots.draw(a, plan)
        texts = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
        texts += [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
        for text in texts:
            named = text.removesuffix(" (test)").removesuffix(" (train \u2212 test)")
            assert (
                named in names
                or named in plots.SERIES_LABELS.values()
                or named in ("validation", "train (dropout on)", "train (eval mode)")
            ), (plan.kind, text)


# ----------------------------------------------------------------------------------------
# Large grids: figures that stay readable


def large_grid(levels: dict[str, list], epochs: int = 2):
    """The analysis of every combination of ``levels``, 3 seeds each: test accuracy falls with
    each rate (by a different weight per parameter), 2 epochs of history per run."""
    params = list(levels)
    weights = (0.10, 0.07, 0.03)
    runs, history = [], []
    for values in itertools.product(*levels.values()):
        cell = dict(zip(params, values, strict=True))
        config = ", ".join(f"{k}={v}" for k, v in cell.items())
        mean = 0.9 - sum(w * v for w, v in zip(weights, values, strict=False))
        for seed, off in enumerate(OFFSETS):
            run = f"{config}-{seed}"
            runs.append({"id": run, "config": config, "seed": seed, "status": "completed", "test_acc": mean + off,
                         "test_loss": 1 - mean, "final_train_acc": mean + 0.05 + off, "final_val_acc": mean + off,
                         **cell})  # fmt: skip
            history += [{"run_id": run, "config": config, "seed": seed, "status": "completed", "epoch": epoch,
                         "train_loss": 1 / epoch + off, "val_loss": 1.1 / epoch + off,
                         "train_acc": mean - 0.1 / epoch + off, "val_acc": mean - 0.05 / epoch + off, **cell}
                        for epoch in range(1, epochs + 1)]  # fmt: skip
    runs, history = pd.DataFrame(runs), pd.DataFrame(history)
    return _analyze(StudyData.from_runs(runs, params, history=history))


THREE = {"dropout.hidden1": [0.0, 0.1, 0.2, 0.3, 0.5], "dropout.hidden2": [0.0, 0.1, 0.2, 0.3, 0.5],
         "dropout.input": [0.0, 0.2]}  # fmt: skip


@pytest.fixture(scope="module")
def three():
    return large_grid(THREE)


def test_a_large_grid_draws_the_curves_of_the_best_configurations_and_the_baseline_only(three):
    a = three
    (comparison,) = [plan for plan in a.figures if plan.kind == "comparison"]
    curves = [plan.config for plan in a.figures if plan.kind == "curves"]
    assert len(a.configs) == 50 and len(curves) == CURVES_BEST + 1
    assert comparison.configs == tuple(curves) and curves[0] == a.baseline
    means = a.summary.set_index("config")["test_acc_mean"]
    rest = means.drop([*curves])
    assert means[curves[1:]].min() >= rest.max()  # the best, whatever the ties
    assert list(means[curves[1:]]) == sorted(means[curves[1:]], reverse=True)  # best first
    fig = plots.draw(a, comparison)
    assert len(fig.axes[1].lines) == 2 * (CURVES_BEST + 1)
    assert len(fig.legends[0].get_texts()) == CURVES_BEST + 1 + 2
    assert fig.texts[0].get_text().startswith(f"{CURVES_BEST + 1} of 50 configurations")


def test_the_notebooks_comparison_draws_what_the_report_draws_unless_told_which(three):
    class Results(StudyResults):  # a StudyResults whose analysis is the large grid's, no store
        def analysis(self, *args, **kwargs):
            return three

    (comparison,) = [plan for plan in three.figures if plan.kind == "comparison"]
    fig = Results.__new__(Results).plot_comparison()
    assert len(fig.axes[1].lines) == 2 * len(comparison.configs) == 2 * (CURVES_BEST + 1)
    fig = Results.__new__(Results).plot_comparison(three.summary["config"].iloc[:3])
    assert len(fig.axes[1].lines) == 2 * 3


def test_factor_means_draw_one_panel_per_parameter_with_the_analysis_means(three):
    a = three
    fig = plots.factor_means(a)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_xlabel() for ax in axes] == list(THREE)
    for ax, factor in zip(axes, THREE, strict=True):
        expected = [100 * m.test_acc.mean for m in a.factors.means if m.factor == factor]
        np.testing.assert_allclose(by_gid(ax, f"factor:{factor}").get_ydata(), expected)
        np.testing.assert_allclose(by_gid(ax, f"factor:{factor}").get_xdata(), THREE[factor])
        reference = by_gid(ax, f"reference:{factor}")
        assert list(reference.get_xdata()) == [a.factors.reference[factor]]
    table = plots.factor_means_table(a)
    assert len(table) == sum(map(len, THREE.values())) and table["reference"].sum() == 3
    with pytest.raises(DropoutlabError, match="does not cross three or more parameters"):
        plots.factor_means(sweep())


def test_a_rate_figure_of_a_large_grid_draws_the_configurations_off_the_line_as_one_grey_group(three):
    a = three
    fig = plots.accuracy_vs_rate(a)
    (ax,) = fig.axes
    (dots,) = [c for c in ax.collections if c.get_gid() == "off_line"]
    off = int((~plots.rate_table(a)["on_line"]).sum())
    assert off == 45 and len(dots.get_offsets()) == off
    assert not [line for line in ax.lines if str(line.get_gid()).startswith("off_line:")]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert f"{off} other configurations (test)" in legend and len(legend) <= 5


def test_a_heatmap_of_a_large_grid_keeps_its_colours_and_drops_the_cell_text():
    xs, ys = [i / 20 for i in range(18)], [i / 20 for i in range(9)]
    a = large_grid({"dropout.hidden1": xs, "dropout.hidden2": ys}, epochs=1)
    fig = plots.heatmap(a)
    ax = fig.axes[0]
    assert ax.images[0].get_array().shape == (len(ys), len(xs))
    assert not [t for t in ax.texts if str(t.get_gid()).startswith("cell:")]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert 2 <= len(labels) <= 14 and labels[0] == "0"
    assert len(ax.get_yticklabels()) == len(ys)  # room for every row
    assert ax.get_title().endswith("(95% CI in the table)")


def test_every_figure_of_a_large_grid_draws_without_a_warning_at_page_size(three):
    a = large_grid(THREE, epochs=1)  # one epoch: one tick, not a span of fractions around it
    for plan in a.figures:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fig = plots.draw(a, plan)
            plots.png_bytes(fig)
        assert 6.5 <= fig.get_figwidth() <= 10 and fig.get_figheight() <= 10, plan.name
        sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_text() and t.get_visible()]
        assert min(sizes) >= 10, plan.name
        if plan.kind == "curves":
            assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["1"]
