"""Study files: TOML in, a validated :class:`StudySpec` out, errors naming file, key and what is allowed."""

from __future__ import annotations

import copy
import logging
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from dropoutlab.errors import DropoutlabError
from dropoutlab.runs import RunSpec, StudySpec
from dropoutlab.study.grid import count_points, expand_runs, grid_points
from dropoutlab.study.limits import (
    MAX_DESCRIPTION_CHARS,
    MAX_KEY_PARTS,
    MAX_NAME_CHARS,
    MAX_NESTING,
    MAX_RUNS,
    MAX_STUDY_BYTES,
)
from dropoutlab.study.settings import (
    SETTING_KEYS,
    STUDY_KEYS,
    check_block_sizes,
    check_keys,
    check_number,
    check_table,
    check_text,
    check_whole,
    did_you_mean,
    set_dotted,
    shown,
    type_error,
)

log = logging.getLogger(__name__)

RESOURCE_KEYS = {"cpus_per_task", "gpus_per_task"}  # [resources]: what each Ray task asks for
SEQUENTIAL_KEYS = {"step", "max_seeds", "baseline"}  # [sequential]: the design of --until-decided


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
                    f"{where}.{shown(key)}: unknown setting {shown(root)}{did_you_mean(root, SETTING_KEYS)}; "
                    f"allowed: {', '.join(sorted(SETTING_KEYS))}"
                )
            if key.count(".") >= MAX_KEY_PARTS:
                raise DropoutlabError(f"{where}.{shown(key)}: a key of more than {MAX_KEY_PARTS} parts")
            if not isinstance(values, list) or not values:
                raise type_error(f"{where}.{shown(key)}", "a non-empty list of values", values)
        grid.append(sub)
    return tuple(grid)


def parse_study(raw: dict[str, Any], path: Path | None = None) -> StudySpec:
    """Validate a study's top-level table and every run of its grid (raises DropoutlabError).

    The plan's size (grid points x seeds) is computed and checked against ``DROPOUTLAB_MAX_RUNS``
    before any run is expanded, so a file declaring a billion seeds is refused at once.
    """
    raw = with_factory_paths(raw)
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise DropoutlabError('name: missing; give the study a name, e.g. name = "digits-mlp"')
    check_text(name, "name", limit=MAX_NAME_CHARS)
    description = check_text(
        raw.get("description", ""), "description", lines=True, limit=MAX_DESCRIPTION_CHARS
    )
    settings = {k: v for k, v in raw.items() if k not in STUDY_KEYS}
    check_keys(settings, SETTING_KEYS | STUDY_KEYS, "")
    grid = _parse_grid(raw.get("grid", {}))
    seeds_raw = raw.get("seeds", [0, 1, 2])
    if isinstance(seeds_raw, int) and not isinstance(seeds_raw, bool):
        n_seeds = check_whole(seeds_raw, "seeds", 1)
    elif isinstance(seeds_raw, list) and seeds_raw:
        n_seeds = len(seeds_raw)
    else:
        raise type_error("seeds", "a list of whole numbers or a count", seeds_raw)
    points = count_points(grid)
    if points * n_seeds > MAX_RUNS.value():
        raise MAX_RUNS.refuse(
            f"the plan ({points:,} grid point{'s' * (points != 1)} x {n_seeds:,} seed{'s' * (n_seeds != 1)}) has",
            points * n_seeds,
        )
    if isinstance(seeds_raw, int):
        seeds = tuple(range(n_seeds))
    else:
        seeds = tuple(check_whole(s, f"seeds[{i}]", 0) for i, s in enumerate(seeds_raw))
        if len(set(seeds)) != len(seeds):
            raise DropoutlabError(f"seeds: {shown(seeds_raw)} repeats a seed; each seed must appear once")
    min_effect = raw.get("min_effect")
    if min_effect is not None:
        min_effect = check_number(
            min_effect, "min_effect", 0.0, 1.0, open_low=True, allowed="a fraction in (0, 1), e.g. 0.01"
        )
    declared = check_table(raw.get("resources", {}), "resources")
    check_keys(declared, RESOURCE_KEYS, "resources")
    resources = {"cpus_per_task": check_number(declared.get("cpus_per_task", 1), "resources.cpus_per_task", 0.0,
                                               open_low=True, allowed="a number of CPUs > 0, e.g. 1 or 0.5")}  # fmt: skip
    if "gpus_per_task" in declared:  # absent: the device decides (1 on cuda, 0 on the cpu)
        resources["gpus_per_task"] = check_number(declared["gpus_per_task"], "resources.gpus_per_task", 0.0,
                                                  allowed="a number of GPUs >= 0; a fraction shares a card, e.g. 0.25")  # fmt: skip
    sequential = _parse_sequential(raw.get("sequential", {}))
    study = StudySpec(
        name=name.strip(),
        path=path,
        settings=settings,
        grid=grid,
        seeds=seeds,
        description=description,
        min_effect=min_effect,
        resources=resources,
        sequential=sequential,
    )
    runs = expand_runs(study)  # validates every grid point now, before anything trains
    check_block_sizes(_dropout_points(study))  # and the options that a run may leave out
    model = model_identity(runs)
    return replace(study, identity={"model": model}) if model else study


def model_identity(runs: list[RunSpec]) -> dict[str, Any] | list[dict[str, Any]] | None:
    """``identity.model`` of a study whose runs build a factory's model: its import path, source
    hash and repr (:func:`~dropoutlab.models.user.model_identity`) with the arguments of the
    first run that calls it; a list, by path, when the grid names several factories; None
    without any."""
    from dropoutlab.data import dataset_info
    from dropoutlab.models.user import model_identity as identity_of

    first: dict[str, RunSpec] = {}
    for run in runs:
        if run.settings.factory:
            first.setdefault(run.settings.factory, run)
    entries = []
    for path, run in sorted(first.items()):
        info = dataset_info(run.settings.dataset)
        entries.append(identity_of(path, run.settings.factory_args, info.input_shape, info.num_classes))
    return None if not entries else entries[0] if len(entries) == 1 else entries


def with_factory_paths(raw: dict[str, Any], folder: Path | None = None) -> dict[str, Any]:
    """``raw`` with each callable given as a model (``model``, ``model.factory``, a grid's values of
    ``model`` or ``model.factory``) replaced by its import path, registered so that runs find it
    (:func:`~dropoutlab.models.user.register_factory`). With ``folder`` (a study file's), each
    factory path the study names is imported from there when it is not on ``sys.path``."""
    from dropoutlab.models.user import is_factory_path, register_factory, remember_folder

    def path_of(value: Any) -> Any:
        if callable(value) and not isinstance(value, str):
            value = register_factory(value)
        if isinstance(value, dict) and "factory" in value:
            return {**value, "factory": path_of(value["factory"])}
        if folder is not None and is_factory_path(value):
            remember_folder(value, folder)
        return value

    raw = dict(raw)
    if "model" in raw:
        raw["model"] = path_of(raw["model"])
    grid = raw.get("grid")
    if isinstance(grid, dict | list):
        subs = [grid] if isinstance(grid, dict) else grid
        subs = [
            {k: [path_of(v) for v in vs] if k in ("model", "model.factory") and isinstance(vs, list) else vs
             for k, vs in sub.items()} if isinstance(sub, dict) else sub
            for sub in subs
        ]  # fmt: skip
        raw["grid"] = subs[0] if isinstance(grid, dict) else subs
    return raw


def define_study(name: str, **keys: Any) -> StudySpec:
    """A study from Python, as a study file would define it: the same keys, checked the same way.

    ``model`` may be a factory, a function returning a fresh ``nn.Module`` (called once per run
    after seeding; its dropout modules are the slots), as well as anything a study file writes;
    ``grid`` is a table (or a list of tables) of dotted keys, ``{"dropout.rate": [0.0, 0.3]}``.
    For example ``define_study("mine", model=make_net, dataset="digits", seeds=5, epochs=3,
    grid={"dropout.rate": [0.0, 0.25]})``.
    """
    return parse_study({"name": name, **keys})


def _parse_sequential(raw: Any) -> dict[str, Any]:
    """The ``[sequential]`` table: whole numbers ``step`` and ``max_seeds``, a ``baseline`` as
    ``KEY=VALUE,...``. Their ranges (a step of 0, a maximum below the first look) are checked
    by the design, when ``--until-decided`` uses them."""
    table = check_table(raw, "sequential")
    check_keys(table, SEQUENTIAL_KEYS, "sequential")
    out: dict[str, Any] = {}
    for key in ("step", "max_seeds"):
        if key in table:
            out[key] = check_whole(table[key], f"sequential.{key}", 0)
    if "baseline" in table:
        out["baseline"] = check_text(table["baseline"], "sequential.baseline", limit=MAX_DESCRIPTION_CHARS)
    return out


def _dropout_points(study: StudySpec) -> Iterator[dict[str, Any]]:
    """Each grid point's ``model`` and ``[dropout]`` settings, its grid values applied."""
    base = {key: study.settings[key] for key in ("model", "dropout") if key in study.settings}
    for sub in study.grid or ({},):
        for point in grid_points(sub):
            raw = copy.deepcopy(base)
            for key, value in point.items():
                if key.split(".")[0] in ("model", "dropout"):
                    set_dotted(raw, key, value)
            yield raw


def load_study(path: str | Path, model: Any = None) -> StudySpec:
    """Read and validate a TOML study file; errors name the file, the key and what is allowed.

    ``model`` replaces the file's model: a factory (a function returning a fresh ``nn.Module``),
    a factory path, a preset or a family; a file's ``[model]`` table keeps its factory's
    arguments. A factory path the file names is imported from beside the file, else from
    ``PYTHONPATH``: a study file that names code runs it.

    The text is checked for size, nesting and key length before the TOML parser reads it
    (see :mod:`dropoutlab.study.limits`), so no file makes parsing slow or large.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            blob = f.read(MAX_STUDY_BYTES + 1)
        if len(blob) > MAX_STUDY_BYTES:
            raise DropoutlabError(
                f"{path}: a study file is at most {MAX_STUDY_BYTES >> 20} MiB of text; this one is larger"
            )
        text = blob.decode("utf-8-sig")  # a BOM (Windows editors write one) is no part of the TOML
    except FileNotFoundError:
        raise DropoutlabError(f"{path}: no such study file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DropoutlabError(f"{path}: cannot read the study file ({exc})") from None
    try:
        check_toml_shape(text)
        raw = tomllib.loads(text)
    except DropoutlabError as exc:
        raise DropoutlabError(f"{path}: {exc}") from None
    except RecursionError:
        raise DropoutlabError(f"{path}: not valid TOML: nested too deeply") from None
    except ValueError as exc:  # TOMLDecodeError, and integers of more than 4300 digits
        raise DropoutlabError(f"{path}: not valid TOML: {exc}") from None
    if model is not None:
        given = raw.get("model")
        keep = isinstance(given, dict) and "factory" in given and not isinstance(model, str | dict)
        raw["model"] = {**given, "factory": model} if keep else model
    try:
        study = parse_study(with_factory_paths(raw, path.parent), path)
    except DropoutlabError as exc:
        raise DropoutlabError(f"{path}: {exc}") from None
    log.info("%s: study %r checked: %d grid points x %d seeds", path, study.name, count_points(study.grid),
             len(study.seeds))  # fmt: skip
    return study


def check_toml_shape(text: str) -> None:
    """Refuse TOML text nested deeper than MAX_NESTING or with a key of more than MAX_KEY_PARTS parts.

    A light scan that skips strings and comments: brackets and braces give the nesting, and
    dots between two separators (``= , [ ] { }`` or a line break) the parts of a dotted key.
    A value has at most one dot outside strings (a float or a time), so a valid study file
    never comes near either bound.
    """
    depth = dots = 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if c in "\"'":
            i = _string_end(text, i)
            continue
        if c in "[{":
            depth += 1
            if depth > MAX_NESTING:
                raise DropoutlabError(
                    f"not valid for dropoutlab: brackets nested more than {MAX_NESTING} deep (line {_line(text, i)})"
                )
        elif c in "]}":
            depth = max(depth - 1, 0)
        if c in "=,[]{}\n":
            dots = 0
        elif c == ".":
            dots += 1
            if dots >= MAX_KEY_PARTS:
                raise DropoutlabError(
                    f"not valid for dropoutlab: a dotted key of more than {MAX_KEY_PARTS} parts (line {_line(text, i)})"
                )
        i += 1


def _string_end(text: str, i: int) -> int:
    """The index just after the TOML string starting at ``i`` (basic or literal, one- or multi-line)."""
    quote = text[i]
    if text.startswith(quote * 3, i):
        end = i + 3
        while True:
            end = text.find(quote * 3, end)
            if end < 0:
                return len(text)
            if quote == '"' and _escaped(text, end):
                end += 1
                continue
            end += 3
            while end < len(text) and text[end] == quote:  # up to two quotes may end the content
                end += 1
            return end
    end = i + 1
    while end < len(text) and text[end] not in (quote, "\n"):
        end += 2 if quote == '"' and text[end] == "\\" else 1
    return end + 1


def _escaped(text: str, at: int) -> bool:
    """Whether the character at ``at`` follows an odd number of backslashes."""
    count = 0
    while at - count - 1 >= 0 and text[at - count - 1] == "\\":
        count += 1
    return count % 2 == 1


def _line(text: str, at: int) -> int:
    return text.count("\n", 0, at) + 1
