"""A study run again into a store: the same design, an extension, or a change that is refused.

The store keeps each study's definition (``Store.write_study``). Running a study whose
stored definition differs would put runs of two designs under one name, and the report
would compare them as if they were one. So adding seeds or grid values *extends* the study
(said in one line); any other change of the settings, grid or seeds is refused, naming the
changed keys and the ways out: a new study name, or ``--replace``, which keeps the old runs
under ``NAME@archived-N``. ``description`` and ``min_effect`` only affect the report and may
change freely.
"""

from __future__ import annotations

import json
from typing import Any

from dropoutlab.errors import DropoutlabError
from dropoutlab.runs import StudySpec, flatten


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _values(values: list[Any]) -> list[str]:
    return [json.dumps(v, sort_keys=True) for v in values]


def compare_designs(old: dict[str, Any], new: dict[str, Any]) -> tuple[list[str], list[str]]:
    """``(changed, added)`` between two study definitions (``StudySpec.definition()``).

    ``changed`` names the keys whose change makes another design (dotted settings keys,
    ``grid...``, ``seeds``); ``added`` says what an extension adds ("2 seeds", "1 value of
    dropout.hidden1"). An empty ``changed`` means the new definition extends the old one.
    """
    changed: list[str] = []
    added: list[str] = []
    old_settings, new_settings = flatten(old.get("settings", {})), flatten(new.get("settings", {}))
    for key in sorted(set(old_settings) | set(new_settings)):
        if (
            key not in old_settings
            or key not in new_settings
            or not _same(old_settings[key], new_settings[key])
        ):
            changed.append(key)

    old_identity, new_identity = old.get("identity") or {}, new.get("identity") or {}
    for key in sorted(set(old_identity) & set(new_identity)):  # one not stored before is adopted
        if not _same(old_identity[key], new_identity[key]):
            changed.append(f"identity.{key}")

    old_grid, new_grid = old.get("grid") or [{}], new.get("grid") or [{}]
    several = len(old_grid) > 1 or len(new_grid) > 1
    old_keys = {key for sub in old_grid for key in sub}
    for i, new_sub in enumerate(new_grid):
        where = f"grid[{i}]" if several else "grid"
        if i >= len(old_grid):  # a new sub-grid over the old keys adds points; new keys change the design
            new_keys = sorted(set(new_sub) - old_keys)
            changed.extend(f"{where}.{key}" for key in new_keys)
            if not new_keys:
                added.append(f"the sub-grid {where}")
            continue
        old_sub = old_grid[i]
        for key in sorted(set(old_sub) | set(new_sub)):
            if key not in old_sub or key not in new_sub:
                changed.append(f"{where}.{key}")
                continue
            before, after = _values(old_sub[key]), _values(new_sub[key])
            if not set(before) <= set(after):
                changed.append(f"{where}.{key}")
            elif len(set(after) - set(before)):
                n = len(set(after) - set(before))
                added.append(f"{n} value{'s' * (n > 1)} of {key}")
    if len(new_grid) < len(old_grid):
        changed.append("grid")

    old_seeds, new_seeds = set(old.get("seeds", [])), set(new.get("seeds", []))
    if not old_seeds <= new_seeds:
        changed.append("seeds")
    elif new_seeds - old_seeds:
        n = len(new_seeds - old_seeds)
        added.append(f"{n} seed{'s' * (n > 1)}")
    return changed, added


def check_design(old: dict[str, Any] | None, study: StudySpec, store: str) -> str | None:
    """Refuse ``study`` when the definition ``old`` stored in ``store`` is another design.

    Returns the one line that says what an extension adds, or None when nothing is added
    (or nothing was stored: a new study, or a store made before definitions were kept, whose
    runs are taken as this definition's).
    """
    if old is None:
        return None
    changed, added = compare_designs(old, study.definition())
    if changed:
        shown = ", ".join(changed[:8]) + (f" and {len(changed) - 8} more" if len(changed) > 8 else "")
        raise DropoutlabError(
            f"study {study.name!r} in {store} was run with another design (changed: {shown}); runs of two "
            "designs would be compared as one. Adding seeds or grid values extends a study; for any other "
            f"change give the study a new name, or run with --replace to keep the stored runs as "
            f"'{study.name}@archived-N'"
        )
    if added:
        return f"{study.name}: extends the stored study with {', '.join(added)}"
    return None
