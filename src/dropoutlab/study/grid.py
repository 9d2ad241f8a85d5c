"""Grid expansion: one RunSpec per grid point and seed."""

from __future__ import annotations

import copy
import itertools
import math
from typing import Any

from dropoutlab.errors import DropoutlabError
from dropoutlab.runs import RunSpec, StudySpec, flatten, run_id
from dropoutlab.study.settings import parse_settings, set_dotted


def grid_points(grid: dict[str, list[Any]]):
    keys = list(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        yield dict(zip(keys, values, strict=True))


def count_points(grid: tuple[dict[str, list[Any]], ...]) -> int:
    """The number of grid points, the product of each sub-grid's list lengths summed over sub-grids,
    computed without expanding (duplicates between sub-grids counted twice: an upper bound)."""
    return sum(math.prod(len(values) for values in sub.values()) for sub in grid or ({},))


def sweep_hint(settings: dict, message: str) -> str:
    """A hint for an error about a top-level list (``model = ["mlp", "cnn"]``): lists sweep
    only in ``[[grid]]`` tables."""
    for key, value in settings.items():
        if isinstance(value, list) and message.startswith(f"{key}:"):
            return f"; to sweep {key}, put the list in a [[grid]] table"
    return ""


def _fails_alike(settings: dict, message: str) -> bool:
    """Whether ``settings`` without any grid value fail with ``message`` too: then the error
    is not about the grid point (a missing dataset file), and naming the point misleads."""
    try:
        parse_settings(copy.deepcopy(settings))
    except DropoutlabError as exc:
        return str(exc) == message
    return False


def expand_runs(study: StudySpec) -> list[RunSpec]:
    """The runs of a study: each grid point (union of cross products) times each seed.

    Every point is validated; the error names the grid values that made it invalid.
    Duplicate points (the same resolved settings from two sub-grids) are kept once.
    """
    runs: list[RunSpec] = []
    seen: set[str] = set()
    keys = study.param_keys
    for sub in study.grid or ({},):
        for point in grid_points(sub):
            raw = copy.deepcopy(study.settings)
            for key, value in point.items():
                set_dotted(raw, key, value)
            try:
                settings = parse_settings(raw)
            except DropoutlabError as exc:
                message = str(exc) + sweep_hint(study.settings, str(exc))
                shown = ", ".join(f"{k}={v}" for k, v in flatten(point).items())
                about_point = point and not _fails_alike(study.settings, str(exc))
                raise DropoutlabError(
                    f"{message} (in the grid point {shown})" if about_point else message
                ) from None
            # "dropout.rate" is the grid's own value where the point sets it: read back from the
            # slots (the most common rate) it could name two points alike when slots are set apart
            params = {key: point[key] if key == "dropout.rate" and key in point else settings.value(key)
                      for key in keys}  # fmt: skip
            for seed in study.seeds:
                rid = run_id(study.name, settings, seed)
                if rid not in seen:
                    seen.add(rid)
                    runs.append(RunSpec(rid, study.name, settings, seed, params))
    return runs
