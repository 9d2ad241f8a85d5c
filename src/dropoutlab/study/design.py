"""A study run again into a store: the same design, an extension, or a change that is refused.

The store keeps each study's definition (``Store.write_study``). Running a study whose
stored definition differs would put runs of two designs under one name, and the report
would compare them as if they were one. So adding seeds or grid values *extends* the study
(said in one line); any other change of the settings, grid or seeds is refused, naming the
changed keys and the ways out: a new study name, or ``--replace``, which keeps the old runs
under ``NAME@archived-N``. ``description`` and ``min_effect`` only affect the report and may
change freely.

What the names stand for is part of the design too: the definition's ``identity`` table holds
one entry per thing a name can hide (``identity["data"]``: each dataset's identity, see
:mod:`dropoutlab.data.identity`; other entries, such as a model's, the same way). Every entry
is compared: a different value is a changed design, refused with the entry named (``the data
changed (identity.data): ...``). An entry the stored definition lacks (a store written before
it was recorded) is adopted, said in one line, never refused; a dataset added by extending
the grid adds its identity.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
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
    ``grid...``, ``seeds``, ``identity.ENTRY``: see :func:`compare_identities`); ``added`` says what an extension adds ("2 seeds", "1 value of
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
    diffs, _ = _identity_diffs(old.get("identity") or {}, new.get("identity") or {})
    changed.extend(f"identity.{entry}" for entry in diffs)  # compare_identities says how
    return changed, added


def with_identity(study: StudySpec, data_dir: str | Path | None = None, download: bool = True) -> StudySpec:
    """``study`` with ``identity["data"]``: each of its datasets' identity
    (:func:`~dropoutlab.data.identity.data_identity`). Without ``download``, a registered
    dataset whose files are not on this machine is left out (it cannot be told apart here)."""
    from dropoutlab.data.identity import data_identity

    # the datasets a study names: its setting and the grid's values (validated names, so no run
    # need be expanded again)
    named = [study.settings.get("dataset"), *(v for sub in study.grid for v in sub.get("dataset", []))]
    names = sorted({name for name in named if isinstance(name, str)})
    found = {name: data_identity(name, data_dir, download) for name in names}
    data = {name: identity for name, identity in found.items() if identity is not None}
    return dataclasses.replace(study, identity={**study.identity, "data": data})


def keep_identity(old: dict[str, Any] | None, study: StudySpec) -> StudySpec:
    """``study`` with the identities the stored definition ``old`` has and ``study`` lacks (a
    dataset whose files this machine does not have), so that writing the definition again never
    forgets what the stored runs were trained on."""
    kept = (old or {}).get("identity") or {}
    identity = dict(study.identity)
    for entry, value in kept.items():
        if entry not in identity:
            identity[entry] = value
        elif isinstance(value, dict) and isinstance(identity[entry], dict):
            identity[entry] = {**value, **identity[entry]}
    return dataclasses.replace(study, identity=identity) if identity != study.identity else study


def compare_identities(old: dict[str, Any], new: dict[str, Any]) -> tuple[list[str], list[str]]:
    """``(changed, adopted)`` between two definitions' ``identity`` tables.

    ``changed`` has one phrase per entry whose value differs (``the data changed (identity.data):
    npz:a.npz was sha256:1f2e... when its runs were stored, now sha256:9a8b...``); ``adopted``
    names the entries the stored table lacks. Entries that are tables (``data``: one identity
    per dataset) are compared key by key, and a key only one side has is no change: a dataset
    the grid adds, or one whose files this machine lacks.
    """
    diffs, adopted = _identity_diffs(old, new)
    changed = [f"the {entry} changed (identity.{entry}): {'; '.join(d)}" for entry, d in diffs.items()]
    return changed, adopted


def _identity_diffs(old: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, list[str]], list[str]]:
    """``({entry: what differs}, adopted)``: see :func:`compare_identities`."""
    diffs: dict[str, list[str]] = {}
    adopted: list[str] = []
    for entry in sorted(new):
        if entry not in old:
            adopted.append(entry)
            continue
        before, after = old[entry], new[entry]
        if isinstance(before, dict) and isinstance(after, dict):
            pairs = [(f"{key} was", before[key], after[key]) for key in sorted(set(before) & set(after))]
        else:
            pairs = [("was", before, after)]
        found = [f"{what} {_short(a)} when its runs were stored, now {_short(b)}"
                 for what, a, b in pairs if not _same(a, b)]  # fmt: skip
        if found:
            diffs[entry] = found
    return diffs, adopted


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    text = " ".join(text.split())  # one line: a model's repr has line breaks
    return text if len(text) <= 80 else text[:77] + "..."


def _identity_text(entry: str, value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key} as {_short(v)}" for key, v in sorted(value.items())) or "nothing"
    return _short(value)


def check_design(old: dict[str, Any] | None, study: StudySpec, store: str) -> str | None:
    """Refuse ``study`` when the definition ``old`` stored in ``store`` is another design.

    Returns the lines that say what an extension adds and which identity entries are adopted
    (see :func:`compare_identities`), or None when there is nothing to say (or nothing was
    stored: a new study, or a store made before definitions were kept, whose runs are taken as
    this definition's). A study without its data's identity (not from
    :func:`with_identity`) gets the identities that can be known without downloading.
    """
    if old is None:
        return None
    if "data" not in study.identity:
        study = with_identity(study, download=False)
    new = study.definition()
    changed_ids, adopted = compare_identities(old.get("identity") or {}, new.get("identity") or {})
    if changed_ids:
        raise DropoutlabError(
            f"study {study.name!r} in {store}: {'; '.join(changed_ids)}; runs of the two "
            f"would be compared as one: use a new study name or --replace (keeps the stored runs as '{study.name}@archived-N')"
        )
    changed, added = compare_designs(old, new)
    if changed:
        shown = ", ".join(changed[:8]) + (f" and {len(changed) - 8} more" if len(changed) > 8 else "")
        raise DropoutlabError(
            f"study {study.name!r} in {store} was run with another design (changed: {shown}); runs of two "
            "designs would be compared as one. Adding seeds or grid values extends a study; for any other "
            f"change give the study a new name, or run with --replace to keep the stored runs as "
            f"'{study.name}@archived-N'"
        )
    lines = [f"{study.name}: extends the stored study with {', '.join(added)}"] if added else []
    for entry in adopted:
        lines.append(
            f"{study.name}: the store had no identity.{entry} for this study (written before it was recorded); "
            f"recorded it now: {_identity_text(entry, new['identity'][entry])}"
        )
    return "\n".join(lines) or None
