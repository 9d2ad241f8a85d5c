"""The report: statistics over seeds, findings in plain words, figures and the writers.

Everything here reads only the store, so a store made on another machine can be reported.
``write_study_report`` writes report.html, report.md and the PNGs; ``report_numbers`` gives
the same numbers as JSON-ready data; ``summary_table`` is the text table printed after a run.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from dropoutlab.report import plots
from dropoutlab.report.findings import findings, rate_axis
from dropoutlab.report.html import Section, write_report
from dropoutlab.report.stats import compare, resolve_baseline, summarize, varied_params
from dropoutlab.store import Store, history_frame, runs_frame

__all__ = [
    "compare",
    "findings",
    "rate_axis",
    "report_numbers",
    "summarize",
    "summary_table",
    "write_study_report",
]


def summary_table(runs: pd.DataFrame) -> str:
    """A plain-text table: per configuration, runs and test accuracy mean with its 95% CI."""
    if runs.empty:
        return "(no runs)"
    table = summarize(runs)
    varied = varied_params(runs)
    labels = [
        " ".join(f"{k.removeprefix('dropout.')}={row[k]}" for k in varied) or row["config"]
        for _, row in table.iterrows()
    ]
    width = max(14, *map(len, labels)) + 2
    lines = [f"{'configuration':<{width}}{'runs':>6}  {'test accuracy (95% CI)':<26}{'train - test':>13}"]
    for label, row in zip(labels, table.itertuples(), strict=True):
        runs_text = (
            f"{row.n}"
            + (f"+{row.n_diverged}d" if row.n_diverged else "")
            + (f"+{row.n_failed}f" if row.n_failed else "")
        )
        acc = _pct_ci(row.test_acc_mean, row.test_acc_ci_low, row.test_acc_ci_high)
        gap = "" if math.isnan(row.gap_acc_mean) else f"{row.gap_acc_mean * 100:+.1f} pp"
        lines.append(f"{label:<{width}}{runs_text:>6}  {acc:<26}{gap:>13}")
    return "\n".join(lines)


def _pct_ci(mean: float, low: float, high: float) -> str:
    if math.isnan(mean):
        return "-"
    if math.isnan(low):
        return f"{mean:.1%}"
    return f"{mean:.1%} ({low:.1%} to {high:.1%})"


def _stat(row: pd.Series, metric: str) -> dict[str, float | None]:
    return {k: _num(row[f"{metric}_{k}"]) for k in ("mean", "std", "ci_low", "ci_high")}


def _num(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value.item() if hasattr(value, "item") else value


def report_numbers(store: Store, study: str, baseline: str | None = None) -> dict[str, Any]:
    """The report's numbers: ``{"configs": [...], "comparisons": [...], "findings": [...]}``.

    Accuracies are fractions; ``gap`` is train minus test accuracy (eval-mode train
    accuracy where measured). Intervals are 95% Student-t intervals over seeds.
    """
    runs = store.runs(study)
    params = runs.attrs["params"]
    summary = summarize(runs, params)
    table = compare(runs, params, baseline=baseline)
    config_params = {row["config"]: {p: _num(row[p]) for p in params} for _, row in summary.iterrows()}
    return {
        "study": study,
        "configs": [
            {
                "params": config_params[row["config"]],
                "config": row["config"],
                "n": int(row["n"]),
                "n_diverged": int(row["n_diverged"]),
                "n_failed": int(row["n_failed"]),
                "test_acc": _stat(row, "test_acc"),
                "train_acc": _stat(row, "train_acc"),
                "train_eval_acc": _stat(row, "train_eval_acc"),
                "val_acc": _stat(row, "val_acc"),
                "gap": _stat(row, "gap_acc"),
            }
            for _, row in summary.iterrows()
        ],
        "comparisons": [
            {
                "params": config_params[row["config"]],
                "baseline": config_params[row["baseline"]],
                **{k: _num(row[k]) for k in ("diff", "ci_low", "ci_high", "p_value", "p_adjusted")},
                "significant": bool(row["significant"]),
                "test": row["test"],
                "effect_size": _num(row["effect_size"]),
                "seeds_needed": _num(row["seeds_needed"]),
            }
            for _, row in table.iterrows()
        ],
        "findings": findings(runs, params, baseline=baseline),
    }


SUMMARY_COLUMNS = {
    "n": "seeds",
    "test_acc_mean": "test acc",
    "test_acc_ci_low": "test acc ci_low",
    "test_acc_ci_high": "test acc ci_high",
    "val_acc_mean": "val acc",
    "train_acc_mean": "train acc (dropout on)",
    "train_eval_acc_mean": "train acc (eval mode)",
    "gap_acc_mean": "gap acc (train - test)",
    "best_epoch_mean": "best epoch",
}


def _sections(runs: pd.DataFrame, history: pd.DataFrame, baseline: str | None) -> list[Section]:
    params = runs.attrs["params"]
    summary = summarize(runs, params)
    shown = summary[["config", *SUMMARY_COLUMNS]].rename(columns=SUMMARY_COLUMNS)
    shown = shown.dropna(axis=1, how="all")
    sections = [
        Section(
            "Summary over seeds",
            [
                "Final accuracies per configuration: mean over seeds with a 95% confidence interval. "
                "Train accuracy 'dropout on' is the running accuracy during the epoch, as the notebooks "
                "print it; 'eval mode' is measured afterwards with dropout off."
            ],
            tables=[("Per configuration", shown)],
        )  # fmt: skip
    ]
    if not (runs["status"] == "completed").any():
        return sections  # nothing finished: no comparison and no figure to draw
    table = compare(runs, params, baseline=baseline)
    if not table.empty:
        cols = ["config", "metric", "diff", "ci_low", "ci_high", "test", "p_value", "p_adjusted",
                "significant", "effect_size", "seeds_needed"]  # fmt: skip
        sections.append(
            Section(
                "Compared with the baseline",
                [
                    f"Test accuracy of each configuration minus the baseline ({table['baseline'].iloc[0]}). "
                    "Paired t-tests where the seeds match, Welch's otherwise; p-values adjusted for the "
                    "number of comparisons (Holm). 'seeds needed' estimates how many seeds per configuration "
                    "would detect a difference of the observed size with 80% power."
                ],
                tables=[("Differences in test accuracy", table[cols])],
            )  # fmt: skip
        )
    key, on_line = rate_axis(runs, params)
    if key:
        sections.append(
            Section(
                "Accuracy against the dropout rate",
                [
                    f"How train and test accuracy move as {key} grows (seed 000's question). Bands are 95% "
                    "confidence intervals of the mean over seeds; dots are single seeds."
                ],
                figures=[
                    (
                        f"Accuracy vs {key}",
                        plots.accuracy_vs_rate(runs, key, on_line, params),
                        f"Line chart of train, validation and test accuracy against {key}",
                    ),
                    (
                        f"Gap vs {key}",
                        plots.gap_vs_rate(runs, key, on_line, params),
                        f"Line chart of train minus test accuracy against {key}",
                    ),
                ],
                tables=[("Numbers behind the plots", plots.rate_table(runs, key, on_line, params))],
            )  # fmt: skip
        )
    varied = varied_params(runs, params)
    if (
        len(varied) == 2
        and runs.drop_duplicates("config").shape[0] == runs[varied].drop_duplicates().shape[0]
    ):
        x_key, y_key = varied
        try:
            heat, heat_table = plots.heatmap(runs, x_key, y_key), plots.heatmap_table(runs, x_key, y_key)
        except Exception:  # noqa: BLE001 - a grid that is not a full cross product has no heatmap
            heat = None
        if heat is not None:
            sections.append(
                Section(
                    f"{y_key} x {x_key}",
                    [
                        "Mean test accuracy in each cell of the two-dimensional grid, with the 95% CI half-width."
                    ],
                    figures=[
                        (
                            f"Heatmap {y_key} x {x_key}",
                            heat,
                            f"Heatmap of test accuracy over {y_key} and {x_key}",
                        )
                    ],
                    tables=[("Numbers behind the heatmap", heat_table)],
                )  # fmt: skip
            )
    completed = history[history["status"] == "completed"]
    configs = list(dict.fromkeys(completed["config"]))
    figures = [("All configurations", plots.comparison(history, params),
                "Loss and accuracy per epoch of every configuration")]  # fmt: skip
    figures += [
        (
            f"Learning curves {config}",
            plots.learning_curves(history, config),
            f"Loss and accuracy per epoch for {config}, train and validation",
        )  # fmt: skip
        for config in configs
    ]
    sections.append(
        Section(
            "Learning curves",
            [
                "Seed 001's two panels, loss and accuracy per epoch, mean over seeds with a 95% band: "
                "first every configuration on one figure, then one figure per configuration."
            ],
            figures=figures,
        )  # fmt: skip
    )
    return sections


def write_study_report(
    store: Store, study: str, out: str | Path, baseline: str | None = None
) -> dict[str, Path]:
    """Write report.html (self-contained), report.md and the PNG figures of ``study`` into ``out``."""
    records = store.records(study)  # read once; both frames are built from it
    runs, history = runs_frame(records), history_frame(records)
    # a bad --baseline fails before any file is written
    resolve_baseline(runs, baseline, runs.attrs["params"])
    title = f"dropoutlab report: {study}"
    sections = _sections(runs, history, baseline)
    env = records[-1]["env"]
    sections.append(
        Section(
            "About these runs",
            [
                f"{len(runs)} runs ({', '.join(f'{n} {s}' for s, n in runs['status'].value_counts().items())}), "
                f"dropoutlab {env.get('dropoutlab')}, torch {env.get('torch')}, Python {env.get('python')}, "
                f"on {env.get('device')}."
            ],
        )  # fmt: skip
    )
    return write_report(out, title, findings(runs, runs.attrs["params"], baseline=baseline), sections)
