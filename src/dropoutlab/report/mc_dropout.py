"""Monte Carlo dropout in the analysis: the test metrics per number of passes, over seeds.

A study with ``mc_samples`` stores, for each run, its test metrics with dropout on at test
time for each number of passes ``T`` and for the usual deterministic pass (``T = 0``; see
``train/uncertainty.py``). This module turns those rows into what the report shows:

* ``levels``: per configuration and ``T``, each metric's mean over seeds with an interval
  (accuracy on the logit scale, the others Student t), as the summary table does;
* ``contrast_rows``: per configuration with dropout, the largest ``T`` minus the
  deterministic pass, paired over seeds, for test accuracy and negative log-likelihood:
  rows the analysis adds to its one Holm family;
* ``pooled_reliability``: the reliability-diagram bins of a configuration, counts summed
  over seeds.
"""

from __future__ import annotations

import math

import pandas as pd

from dropoutlab.report.model import McDropout
from dropoutlab.report.stats import compare_values, metric_interval
from dropoutlab.runs import MC_METRICS

#: The metrics the Holm family tests (the largest T against the deterministic pass).
TESTED_METRICS = ("acc", "nll")


def mc_frame(records: list[dict], runs: pd.DataFrame) -> pd.DataFrame:
    """One row per completed run and number of passes: ``config, seed, samples``, the metrics
    and ``reliability``; empty when no run measured Monte Carlo dropout."""
    config = dict(zip(runs["id"], runs["config"], strict=True)) if "id" in runs else {}
    status = dict(zip(runs["id"], runs["status"], strict=True)) if "id" in runs else {}
    rows = [
        {"config": config[r["id"]], "seed": r["seed"], **entry}
        for r in records
        if status.get(r["id"]) == "completed"
        for entry in r.get("mc", ())
    ]
    return pd.DataFrame(rows)


def mc_levels(frame: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """Per configuration and number of passes: ``n`` and each metric's Interval over seeds."""
    rows = []
    for (config, samples), group in frame.groupby(["config", "samples"], sort=False):
        row = {"config": config, "samples": int(samples), "n": len(group)}
        for metric in MC_METRICS:
            kind = "test_acc" if metric == "acc" else metric  # accuracies get the logit interval
            row[metric] = metric_interval(kind, group[metric].to_numpy(dtype=float), confidence)
        rows.append(row)
    return pd.DataFrame(rows)


def has_dropout(frame: pd.DataFrame, config: str) -> bool:
    """Whether passes with dropout on differ from the deterministic one for ``config``: False
    when every pass of every seed gives the deterministic NLL (no layer draws at test time)."""
    mine = frame[frame["config"] == config]
    deterministic = mine[mine["samples"] == 0].set_index("seed")["nll"]
    return not all(
        math.isclose(r.nll, deterministic.get(r.seed, math.nan), rel_tol=1e-9, abs_tol=1e-12)
        for r in mine[mine["samples"] > 0].itertuples()
    )


def contrast_rows(frame: pd.DataFrame, confidence: float) -> list[dict]:
    """The family's rows: per configuration with dropout, the largest T minus T = 0, paired over
    seeds, for each of :data:`TESTED_METRICS` (``compare_values`` columns, metric ``mc_<name>``)."""
    largest = int(frame["samples"].max())
    rows = []
    for config in dict.fromkeys(frame["config"]):
        if not has_dropout(frame, config):
            continue
        mine = frame[frame["config"] == config]
        for metric in TESTED_METRICS:
            at = {t: pd.Series(g[metric].to_numpy(dtype=float), index=g["seed"].to_numpy())
                  for t, g in mine.groupby("samples")}  # fmt: skip
            if largest not in at or 0 not in at:
                continue
            rows.append({"config": config, "baseline": config, "metric": f"mc_{metric}",
                         **compare_values(at[largest], at[0], confidence)})  # fmt: skip
    return rows


def pooled_reliability(frame: pd.DataFrame, config: str, samples: int) -> list[tuple[int, float, float]]:
    """The reliability bins of ``config`` at ``samples`` passes with every seed's test samples
    pooled: counts summed, confidence and accuracy averaged weighted by count (nan if empty)."""
    mine = frame[(frame["config"] == config) & (frame["samples"] == samples)]
    if mine.empty:
        return []
    bins = len(mine.iloc[0]["reliability"])
    out = []
    for b in range(bins):
        cells = [r[b] for r in mine["reliability"]]
        count = sum(int(c[0]) for c in cells)
        conf = sum(c[0] * c[1] for c in cells if c[0]) / count if count else math.nan
        acc = sum(c[0] * c[2] for c in cells if c[0]) / count if count else math.nan
        out.append((count, conf, acc))
    return out


def mc_dropout(frame: pd.DataFrame, contrasts: tuple, confidence: float) -> McDropout:
    """The :class:`McDropout` of a study from :func:`mc_frame` and its adjusted contrasts."""
    samples = tuple(sorted(int(t) for t in frame["samples"].unique()))
    largest = max(samples)
    configs = list(dict.fromkeys(frame["config"]))
    return McDropout(
        samples=samples,
        levels=mc_levels(frame, confidence),
        contrasts=contrasts,
        reliability={(c, t): pooled_reliability(frame, c, t) for c in configs for t in sorted({0, largest})},
        no_dropout=tuple(c for c in configs if not has_dropout(frame, c)),
    )
