"""The JSON rendering of an ``Analysis`` (``dropoutlab report --format json``).

Every number a finding's sentence quotes is in that finding's ``numbers``; accuracies and
differences are fractions in [0, 1]; NaN and infinity become ``null`` (a ``seeds_needed``
of ``null`` with ``seeds_needed_more_than`` set means "more than that many").
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from dropoutlab.report.model import Analysis, TestResult
from dropoutlab.report.stats import SEEDS_SEARCH_LIMIT
from dropoutlab.report.text import clean
from dropoutlab.runs import MC_METRICS


def _stat(interval) -> dict:
    return {"mean": interval.mean, "std": interval.std, "ci_low": interval.low, "ci_high": interval.high}


def _test(c: TestResult, **more) -> dict:
    """The fields of a test, with ``seeds_needed_more_than`` for an infinite ``seeds_needed``."""
    return {
        **asdict(c),
        **more,
        "seeds_needed_more_than": SEEDS_SEARCH_LIMIT if math.isinf(c.seeds_needed) else None,
    }


def _factors(a: Analysis) -> dict | None:
    fx = a.factors
    if fx is None:
        return None
    return {
        "factors": list(fx.factors),
        "levels": fx.levels,
        "reference": fx.reference,
        "cells": fx.cells,
        "seeds": list(fx.seeds),
        "empty_cells": list(fx.empty_cells),
        "means": [
            {
                "factor": m.factor,
                "level": m.level,
                "n": m.test_acc.n,
                "seeds": list(m.seeds),
                "seeds_left_out": list(m.seeds_left_out),
                "test_acc": _stat(m.test_acc),
                "interval": m.test_acc.method,
                "range": {"min": m.test_acc.min, "max": m.test_acc.max},
            }
            for m in fx.means
        ],  # fmt: skip
        "effects": [_test(e) for e in fx.effects],
        "interactions": [_test(i) for i in fx.interactions],
    }


def _mc(a: Analysis) -> dict | None:
    mc = a.mc
    if mc is None:
        return None
    levels = [{"config": r["config"], "label": a.label(r["config"]), "samples": int(r["samples"]), "n": int(r["n"]),
               **{m: {**_stat(r[m]), "interval": r[m].method} for m in MC_METRICS}}
              for _, r in mc.levels.iterrows()]  # fmt: skip
    return {
        "samples": list(mc.samples),
        "levels": levels,
        "contrasts": [_test(c, label=a.label(c.config)) for c in mc.contrasts],
        "reliability": [
            {"config": config, "samples": t, "bins": [list(b) for b in bins]}
            for (config, t), bins in mc.reliability.items()
        ],
        "no_dropout": list(mc.no_dropout),
    }


def _factor_best(a: Analysis) -> list[dict]:
    """Per multi-level categorical parameter: its values that could be best, compared with each
    other, by value (the decision's own data, labels ``factor=value``, under ``decision``)."""
    out = []
    for fb in a.factor_best:
        d = fb.decision
        out.append({"factor": fb.factor, "levels": list(fb.levels), "reference": fb.reference,
                    "over": {k: list(v) for k, v in fb.over.items()}, "configs": list(fb.configs),
                    "seeds": list(fb.seeds), "could_be_best": [fb.value(c) for c in d.could_be_best],
                    "within_min_effect": [fb.value(c) for c in d.within_min_effect],
                    "worse_than_best": {str(fb.value(c)): w for c, w in d.worse_than_best.items()},
                    "means": {str(fb.value(c)): m for c, m in d.means.items()},
                    "choice": fb.value(d.choice) if d.choice else None, "rule": d.rule, "alpha": d.design.alpha,
                    "decision": d.to_dict()})  # fmt: skip
    return out


def _families(a: Analysis) -> list[dict]:
    """The report's families of claims, each with the error rate it holds (``docs/report.md``,
    "One family of claims"): the decision (or the strata's decisions, together), the
    could-be-best sets of multi-level parameters (together), and the Holm family. Any false
    claim anywhere has probability at most the sum of their ``alpha``s (the union bound)."""
    out = []
    if a.decision is not None:
        out.append({"family": "decision", "alpha": a.decision.design.alpha, "decisions": 1})
    elif a.strata_decisions:
        out.append({"family": "decision", "alpha": a.alpha, "decisions": len(a.strata_decisions),
                    "alpha_each": next(iter(a.strata_decisions.values())).design.alpha})  # fmt: skip
    if a.factor_best:
        out.append({"family": "factor_best", "alpha": a.alpha, "sets": len(a.factor_best),
                    "alpha_each": a.factor_best[0].decision.design.alpha})  # fmt: skip
    if a.family_size:
        out.append({"family": "holm", "alpha": a.alpha, "tests": a.family_size})
    return out


def _decision(a: Analysis) -> dict | None:
    """The decision (``report/decide.py``) with its headline fields first: ``choice`` and its
    ``rule``, ``could_be_best``, and each comparison's ``verdict`` (``better``, ``worse``,
    ``equivalent`` or ``undecided``), with the report's labels beside the configurations."""
    if a.decision is None:
        return None
    return _decision_data(a, a.decision)


def _decision_data(a: Analysis, decision) -> dict:
    """One decision as JSON, headline fields first, with the report's labels."""
    d = decision.to_dict()
    for c in d["comparisons"]:
        c["label"] = a.label(c["config"])
    return {"choice": d["choice"], "choice_label": a.label(d["choice"]) if d["choice"] else None,
            "rule": d["rule"], "could_be_best": d["could_be_best"],
            "verdicts": {c["config"]: c["verdict"] for c in d["comparisons"]}, **d}  # fmt: skip


def analysis_to_json(a: Analysis) -> dict[str, Any]:
    """The analysis as JSON-ready data, laid out as ``docs/report.md`` ("JSON") shows:
    accuracies and differences as fractions, NaN and infinity as None, each test with
    ``seeds_needed_more_than`` for an infinite ``seeds_needed``."""
    configs = []
    for c in a.configs:
        accuracies = {"test_acc": c.test_acc, "train_acc": c.train_acc, "train_eval_acc": c.train_eval_acc,
                      "val_acc": c.val_acc}  # fmt: skip
        configs.append({"params": c.params, "config": c.config, "label": a.label(c.config), "seeds": list(c.seeds),
                        "n": c.n, "n_diverged": c.n_diverged, "n_failed": c.n_failed,
                        **{name: _stat(interval) for name, interval in accuracies.items()}, "gap": _stat(c.gap_acc),
                        "interval": {name: interval.method for name, interval in accuracies.items()},
                        "range": {name: {"min": i.min, "max": i.max} for name, i in accuracies.items()}})  # fmt: skip
    verdicts = a.verdicts()
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
            "families": _families(a),
            "configs": configs,
            "comparisons": [
                _test(
                    c,
                    params=a.config(c.config).params,
                    baseline_config=c.baseline,
                    baseline=a.config(c.baseline).params,
                    label=a.label(c.config),
                    verdict=verdicts.get(c.config)
                    if c.metric == "test_acc" and c.baseline == (a.baseline or a.strata.get(c.config))
                    else None,
                )
                for c in a.comparisons
            ],  # fmt: skip
            "interaction": asdict(a.interaction) if a.interaction is not None else None,
            "factors": _factors(a),
            "mc": _mc(a),
            "learned_rates": a.learned_rates.to_dict("records"),
            "gap_trend": asdict(a.gap_trend) if a.gap_trend is not None else None,
            "rate_peak": asdict(a.rate_peak) if a.rate_peak is not None else None,
            "factor_best": _factor_best(a),
            "decision": _decision(a),
            "strata_decisions": [
                {"stratum": base, "label": a.label(base), **_decision_data(a, d)}
                for base, d in a.strata_decisions.items()
            ],
            "looks": list(a.looks),
            "findings": [asdict(f) for f in a.findings],
            "unavailable": a.unavailable,
            "methods": asdict(a.methods),
        }
    )
