"""The JSON rendering of an ``Analysis`` (``dropoutlab report --format json``).

Every number a finding's sentence quotes is in that finding's ``numbers``; accuracies and
differences are fractions in [0, 1]; NaN and infinity become ``null`` (a ``seeds_needed``
of ``null`` with ``seeds_needed_more_than`` set means "more than that many").
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from dropoutlab.report.analysis import Analysis, Comparison
from dropoutlab.report.stats import SEEDS_SEARCH_LIMIT


def clean(value: Any) -> Any:
    """JSON-ready: NaN and infinities become None, numpy scalars plain numbers, tuples lists."""
    if hasattr(value, "item") and not isinstance(value, dict | list | tuple):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def _stat(interval) -> dict:
    return {"mean": interval.mean, "std": interval.std, "ci_low": interval.low, "ci_high": interval.high}


def _comparison(a: Analysis, c: Comparison) -> dict:
    out = asdict(c)
    out["params"] = a.config(c.config).params
    out["baseline_config"] = c.baseline
    out["baseline"] = a.config(c.baseline).params
    out["label"] = a.label(c.config)
    out["seeds_needed_more_than"] = SEEDS_SEARCH_LIMIT if math.isinf(c.seeds_needed) else None
    return out


def analysis_to_json(a: Analysis) -> dict[str, Any]:
    """The analysis as JSON-ready data.

    ``{"study", "alpha", "confidence", "min_effect", "power", "baseline", "baseline_config",
    "family_size", "configs": [...], "comparisons": [...], "interaction", "gap_trend",
    "findings": [{"kind", "text", "configs", "numbers", "claim", "exploratory"}],
    "unavailable": {section: reason}, "methods": {...}}``. Each config has ``params,
    config, label, seeds, n, n_diverged, n_failed`` and ``test_acc, train_acc,
    train_eval_acc, val_acc, gap`` as ``{mean, std, ci_low, ci_high}``, with ``interval``
    (how each interval was made, see ``stats.Interval``) and ``range`` (lowest and highest
    seed) per accuracy.
    """
    configs = []
    for c in a.configs:
        accuracies = {"test_acc": c.test_acc, "train_acc": c.train_acc, "train_eval_acc": c.train_eval_acc,
                      "val_acc": c.val_acc}  # fmt: skip
        configs.append(
            {
                "params": c.params,
                "config": c.config,
                "label": a.label(c.config),
                "seeds": list(c.seeds),
                "n": c.n,
                "n_diverged": c.n_diverged,
                "n_failed": c.n_failed,
                **{name: _stat(interval) for name, interval in accuracies.items()},
                "gap": _stat(c.gap_acc),
                "interval": {name: interval.method for name, interval in accuracies.items()},
                "range": {name: {"min": i.min, "max": i.max} for name, i in accuracies.items()},
            }
        )
    gap = None
    if a.gap_trend is not None:
        gap = asdict(a.gap_trend)
        gap["change"] = asdict(a.gap_trend.change)
    return clean(
        {
            "study": a.study,
            "alpha": a.alpha,
            "confidence": a.confidence,
            "min_effect": a.min_effect,
            "power": a.power,
            "baseline": a.config(a.baseline).params if a.baseline is not None else None,
            "baseline_config": a.baseline,
            "family_size": a.family_size,
            "configs": configs,
            "comparisons": [_comparison(a, c) for c in a.comparisons],
            "interaction": asdict(a.interaction) if a.interaction is not None else None,
            "gap_trend": gap,
            "findings": [asdict(f) for f in a.findings],
            "unavailable": a.unavailable,
            "methods": asdict(a.methods),
        }
    )
