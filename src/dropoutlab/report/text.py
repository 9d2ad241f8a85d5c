"""Numbers in words: every way the report writes a number, a list or a file name, said once.

Fractions come in (accuracies and their differences, as in the store), percent and
percentage points (pp) go out, with a true minus sign. The findings, the sections, the
labels of the analysis and the JSON (``clean``) all write through these functions.
"""

from __future__ import annotations

import math
import re
from typing import Any

MINUS = "\u2212"

#: How the report names each Monte Carlo dropout metric (``runs.MC_METRICS``), with its unit.
MC_METRIC_NAMES = {"acc": "test accuracy", "nll": "NLL (nats)", "brier": "Brier score", "ece": "ECE",
                   "entropy": "predictive entropy (nats)", "mutual_information": "mutual information (nats)"}  # fmt: skip


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)


def pct(x: float) -> str:
    """``0.9691`` -> ``"96.9%"``."""
    return f"{100 * x:.1f}%" if _finite(x) else "n/a"


def signed(x: float) -> str:
    """``0.013`` -> ``"+1.3"`` (percentage points, true minus sign, no ``-0.0``); a value that
    rounds to 0.0 keeps its sign with two decimals (``-0.0004`` -> ``"−0.04"``), so an interval's
    bound shows on which side of 0 it lies."""
    text = f"{100 * x:+.1f}"
    if text in ("+0.0", "-0.0"):
        text = f"{100 * x:+.2f}"
        if text in ("+0.00", "-0.00"):
            text = "0.0"
    return text.replace("-", MINUS)


def pp(x: float) -> str:
    """``0.013`` -> ``"+1.3 pp"``."""
    return f"{signed(x)} pp" if _finite(x) else "n/a"


def nats(x: float, unit: bool = True) -> str:
    """``-0.0123`` -> ``"−0.012 nats"`` (true minus sign)."""
    return (f"{x:+.3f}" + (" nats" if unit else "")).replace("-", MINUS)


def level(confidence: float) -> str:
    """``0.95`` -> ``"95%"``, ``0.995`` -> ``"99.5%"``, ``0.992857`` -> ``"99.29%"``."""
    return f"{100 * confidence:.4g}%"


def p_text(p: float, prefix: str = "p", alpha: float = 0.05) -> str:
    """``"p = 0.16"``, ``"p = 0.004"``, ``"p < 0.001"``; with the digits it takes to read the
    comparison with ``alpha``: 0.0497 is ``"p = 0.0497"``, never ``"p = 0.05"`` beside a claim."""
    if not _finite(p):
        return f"{prefix} n/a"
    if p < 0.001:
        return f"{prefix} < 0.001"
    digits = 2 if p >= 0.01 else 3
    text = f"{p:.{digits}f}"
    while digits < 6 and (float(text) == alpha or (float(text) < alpha) != (p < alpha)):
        digits += 1
        text = f"{p:.{digits}f}"
    return f"{prefix} = {text}"


def seeds_text(n: int) -> str:
    """``1`` -> ``"1 seed"``, ``3`` -> ``"3 seeds"``."""
    return f"{n} seed" if n == 1 else f"{n} seeds"


def value_text(x) -> str:
    """A parameter value as the report writes it: ``0.0`` -> ``"0"``, ``0.5`` -> ``"0.5"``."""
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def setting(key: str, value) -> str:
    """``("dropout.conv", 0.0)`` -> ``"dropout.conv=0"``."""
    return f"{key}={value_text(value)}"


def and_list(names) -> str:
    """``["a", "b", "c"]`` -> ``"a, b and c"``."""
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def ci_pp(low: float, high: float, confidence: float, kind: str = "simultaneous") -> str:
    """``"simultaneous 95% CI −0.1 to +2.5 pp"``; ``kind`` is ``simultaneous`` or ``unadjusted``."""
    if not (_finite(low) and _finite(high)):
        return "no interval"
    return f"{kind} {level(confidence)} CI {signed(low)} to {signed(high)} pp"


def accuracy_level(interval, confidence: float, what: str = "accuracy") -> str:
    """A mean accuracy with what can be said of its spread, e.g. ``"96.9% (95% CI 95.6 to 98.1%)"``."""
    mean = pct(interval.mean)
    method = interval.method
    if method == "logit t":
        return f"{mean} ({level(confidence)} CI {100 * interval.low:.1f} to {100 * interval.high:.1f}%)"
    if method == "same":
        return f"{mean} (all {interval.n} seeds gave the same {what}; no interval)"
    if method == "range" and interval.n == 1:
        return f"{mean} (one seed, no interval)"
    if method == "range":
        return (
            f"{mean} ({interval.n} seeds ranged {100 * interval.min:.1f} to {100 * interval.max:.1f}%; "
            "too few for an interval, run at least 3)"
        )
    if method == "boundary":
        return (
            f"{mean} (seeds ranged {100 * interval.min:.1f} to {100 * interval.max:.1f}%; a seed at "
            "exactly 0% or 100% leaves no interval on the logit scale)"
        )
    return mean


def slug(text: str, default: str = "figure") -> str:
    """A file-name-safe form of ``text``: lowercase ASCII letters, digits, dots and hyphens
    (``"hidden1=0.5"`` -> ``"hidden1-0.5"``), at most 60 characters."""
    text = re.sub(r"[^a-z0-9.]+", "-", str(text).lower()).strip("-.")
    return text[:60].rstrip("-.") or default


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
