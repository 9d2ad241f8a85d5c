"""Study files: TOML in, a validated :class:`StudySpec` out, errors naming file, key and what is allowed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from dropoutlab.errors import DropoutlabError
from dropoutlab.runs import StudySpec
from dropoutlab.study.grid import expand_runs
from dropoutlab.study.settings import (
    SETTING_KEYS,
    STUDY_KEYS,
    check_keys,
    check_number,
    check_table,
    check_whole,
    type_error,
)


def _parse_grid(raw: Any) -> tuple[dict[str, list[Any]], ...]:
    subs = raw if isinstance(raw, list) else [raw]
    grid = []
    for i, sub in enumerate(subs):
        where = "grid" if not isinstance(raw, list) else f"grid[{i}]"
        sub = check_table(sub, where)
        for key, values in sub.items():
            root = key.split(".")[0]
            if root not in SETTING_KEYS:
                raise DropoutlabError(
                    f"{where}.{key!r}: unknown setting {root!r}; allowed: {', '.join(sorted(SETTING_KEYS))}"
                )
            if not isinstance(values, list) or not values:
                raise type_error(f"{where}.{key!r}", "a non-empty list of values", values)
        grid.append(sub)
    return tuple(grid)


def parse_study(raw: dict[str, Any], path: Path | None = None) -> StudySpec:
    """Validate a study's top-level table and every run of its grid (raises DropoutlabError)."""
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise DropoutlabError('name: missing; give the study a name, e.g. name = "digits-mlp"')
    seeds_raw = raw.get("seeds", [0, 1, 2])
    if isinstance(seeds_raw, int) and not isinstance(seeds_raw, bool):
        seeds = tuple(range(check_whole(seeds_raw, "seeds", 1)))
    elif isinstance(seeds_raw, list) and seeds_raw:
        seeds = tuple(check_whole(s, f"seeds[{i}]", 0) for i, s in enumerate(seeds_raw))
        if len(set(seeds)) != len(seeds):
            raise DropoutlabError(f"seeds: {seeds_raw!r} repeats a seed; each seed must appear once")
    else:
        raise type_error("seeds", "a list of whole numbers or a count", seeds_raw)
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise type_error("description", "text", description)
    min_effect = raw.get("min_effect")
    if min_effect is not None:
        min_effect = check_number(min_effect, "min_effect", 0.0, 1.0)
        if min_effect == 0:
            raise DropoutlabError("min_effect: 0 is out of range; allowed: a fraction in (0, 1), e.g. 0.01")
    settings = {k: v for k, v in raw.items() if k not in STUDY_KEYS}
    check_keys(settings, SETTING_KEYS | STUDY_KEYS, "")
    study = StudySpec(
        name=name.strip(),
        path=path,
        settings=settings,
        grid=_parse_grid(raw.get("grid", {})),
        seeds=seeds,
        description=description,
        min_effect=min_effect,
    )
    expand_runs(study)  # validates every grid point now, before anything trains
    return study


def load_study(path: str | Path) -> StudySpec:
    """Read and validate a TOML study file; errors name the file, the key and what is allowed."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DropoutlabError(f"{path}: no such study file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DropoutlabError(f"{path}: cannot read the study file ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise DropoutlabError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse_study(raw, path)
    except DropoutlabError as exc:
        raise DropoutlabError(f"{path}: {exc}") from None
