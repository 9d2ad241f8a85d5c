"""Seeds added until decided: the loop of ``dropoutlab run STUDY.toml --until-decided``.

:func:`run_until_decided` reads top to bottom:

1. train the study's own runs through :func:`~dropoutlab.study.runner.run_study` (its seeds
   are the first look);
2. decide on every stored run of the study (``decide(store.runs(study), design)``, the pure
   function :func:`dropoutlab.report.decide.decide`) and store the look with
   ``Store.write_look``: the decision's ``to_dict()`` (verdicts, boundary, next seeds) with
   ``seeds`` (per configuration at this look), ``seeds_run`` (configuration -> seeds it has
   run) and ``spent`` (runs of the study, configurations x seeds);
3. train the seeds that look asks for (the undecided configurations, the baseline, the
   candidates for best) through the same runner, so they train in stacks like any others;
4. again from 2, until the decision is done: every comparison decided and the best set
   settled, or every configuration that still matters at ``max_seeds`` seeds.

Looks are numbered by the design's grid: look ``n`` is taken at ``design.grid()[n - 1]`` seeds
per configuration. A look the store holds is read back, never taken again, and a resumed
study first trains what its last stored look asked for, then looks: so ``kill -9`` during a
step and the same command again continue the same design, and the runner skips finished runs
as always. The store keeps the study file's own definition (its seeds, not the added ones),
so a plain ``dropoutlab run`` or ``report`` of the same file afterwards is the same design.

The looks record the design they were taken with; resuming with another one (a changed
``step``, ``max_seeds``, ``min_effect``, baseline, first look or grid) is refused by
:func:`check_looks`, since changing a sequential design after looking at the data voids its
error rates.

The decision lives in the report room, above this one (imports point down), so the loop is
handed ``decide`` and the design; the CLI passes :func:`dropoutlab.report.decide.decide`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dropoutlab.errors import DropoutlabError
from dropoutlab.runs import RunSpec, StudySpec
from dropoutlab.store import Store
from dropoutlab.store.frames import config_label
from dropoutlab.study.grid import expand_runs
from dropoutlab.study.limits import MAX_RUNS
from dropoutlab.study.runner import StudyOutcome, run_study

if TYPE_CHECKING:
    import pandas as pd

# The report room sits above this one: a Design and a Decision (report/decide.py) reach this
# module as values, with the decide function itself, and are named here without importing them.
Design = Decision = Any

log = logging.getLogger(__name__)


@dataclass
class SequentialOutcome:
    """What :func:`run_until_decided` did.

    ``steps``: the runner's outcome of each step, in order. ``looks``: every look the store
    holds for the study, each its record with ``look`` (its number). ``taken``: the looks this
    call took (the others were read back). ``decision``: the last decision (None when no look
    could be taken). ``spent``: runs of the study in the store (configurations x seeds, any
    status); ``max_runs``: what the design's maximum allows, configurations x ``max_seeds``.
    ``stopped``: why it stopped before the decision was done (runs left to another driver).
    """

    study: str
    steps: list[StudyOutcome] = field(default_factory=list)
    looks: list[dict[str, Any]] = field(default_factory=list)
    taken: int = 0
    decision: Decision | None = None
    spent: int = 0
    max_runs: int = 0
    wall_s: float = 0.0
    stopped: str | None = None

    @property
    def statuses(self) -> Counter:
        """Runs trained by this call, by status (completed, failed, diverged)."""
        return sum((step.statuses for step in self.steps), Counter())


def run_label(run: RunSpec) -> str:
    """The ``config`` label the store gives ``run`` (its parameters as stored, in JSON)."""
    return config_label(json.loads(json.dumps(run.params)))


def planned_configs(study: StudySpec) -> pd.DataFrame:
    """One row per configuration of the study's grid, with the columns of ``Store.runs()``
    that name it: ``config``, one per grid parameter (``attrs["params"]``) and one
    ``dropout.<slot>`` per dropout slot. For choosing the baseline and checking the design
    before anything trains."""
    import pandas as pd  # here: `dropoutlab run` without --until-decided trains without pandas

    rows: dict[str, dict[str, Any]] = {}
    for run in expand_runs(study):
        params = json.loads(json.dumps(run.params))
        row = {"config": config_label(params), "seed": run.seed}
        row.update({f"dropout.{slot}": rate for slot, rate in run.settings.dropout.items()})
        row.update(
            {k: "+".join(map(str, v)) or "none" if isinstance(v, list) else v for k, v in params.items()}
        )
        rows.setdefault(row["config"], row)
    frame = pd.DataFrame(list(rows.values()))
    frame.attrs["params"] = list(study.param_keys)
    return frame


def runs_for(study: StudySpec, seeds: Mapping[str, Sequence[int]]) -> list[RunSpec]:
    """The runs of ``study`` for ``seeds`` (configuration label -> seeds, a decision's
    ``next_seeds``); seeds beyond the study's own are added to its grid points."""
    wanted = {(config, int(seed)) for config, values in seeds.items() for seed in values}
    if not wanted:
        return []
    extra = sorted({seed for _, seed in wanted} - set(study.seeds))
    every = expand_runs(dataclasses.replace(study, seeds=(*study.seeds, *extra)))
    chosen = [run for run in every if (run_label(run), run.seed) in wanted]
    unknown = sorted({config for config, _ in wanted} - {run_label(run) for run in chosen})
    if unknown:
        raise DropoutlabError(
            f"study {study.name!r}: a stored look asks for seeds of {', '.join(map(repr, unknown))}, "
            "which is not a configuration of its grid; run it with the grid it was started with, or --replace"
        )
    return chosen


def check_size(configs: int, max_seeds: int) -> None:
    """Refuse (one line) a design whose most runs, ``configs`` x ``max_seeds``, pass the bound
    on a study's runs (``DROPOUTLAB_MAX_RUNS``, docs/security.md), before its looks are planned."""
    if configs * max_seeds > MAX_RUNS.value():
        raise MAX_RUNS.refuse(
            f"the sequential design ({configs:,} configurations x max_seeds {max_seeds:,}) has at most",
            configs * max_seeds,
        )


def check_looks(study: str, looks: list[dict[str, Any]], design: Design, configs: Sequence[str]) -> None:
    """Refuse (one line) to continue the looks the store holds for ``study`` with another
    design or another set of configurations (``configs``, the grid's labels) than the one
    they were taken with."""
    if not looks:
        return
    stored = looks[0]["design"]
    now = json.loads(json.dumps(dataclasses.asdict(design)))
    changed = [
        f"{key} {stored.get(key)!r} -> {value!r}" for key, value in now.items() if stored.get(key) != value
    ]
    before = {stored.get("baseline"), *(c["config"] for c in looks[0]["comparisons"])}
    if before != set(configs):
        changed.append("the grid's configurations")
    if changed:
        raise DropoutlabError(
            f"study {study!r} took {len(looks)} look(s) with another sequential design (changed: "
            f"{'; '.join(changed)}); a design stays fixed once a look is taken, or its error rates no longer "
            "hold: run it with the settings it started with, give the study a new name, or --replace"
        )


def progress_label(study: str, looks: list[dict[str, Any]], looks_planned: int, max_runs: int) -> str:
    """The progress bar's label while a step trains: the look it prepares, then the last
    look's decided and undecided comparisons and the seeds spent (configurations x seeds)."""
    label = f"{study} look {looks[-1]['look'] + 1 if looks else 1}/{looks_planned}"
    if looks:
        last = looks[-1]
        verdicts = Counter(c["verdict"] for c in last["comparisons"])
        undecided = verdicts.pop("undecided", 0)
        label += (
            f" ({sum(verdicts.values())} decided, {undecided} undecided, {last['spent']}/{max_runs} seeds)"
        )
    return label


def run_until_decided(
    study: StudySpec,
    store: Store,
    design: Design,
    decide: Callable[[pd.DataFrame, Design], Decision],
    **options: Any,
) -> SequentialOutcome:
    """Train ``study`` until ``decide`` (:func:`dropoutlab.report.decide.decide`) says it is
    done under ``design`` (see the module docstring), storing every look.

    ``options`` are :func:`run_study`'s (device, stack, workers, replace, ...); ``replace``
    archives the study's runs and looks before the first step only. Raises
    ``DropoutlabError`` before anything trains when the store holds looks of another design.
    """
    start = time.perf_counter()
    configs = list(planned_configs(study)["config"])
    check_size(len(configs), design.max_seeds)
    grid = list(design.grid())
    looks = [] if options.get("replace") else store.looks(study.name)
    check_looks(study.name, looks, design, configs)
    outcome = SequentialOutcome(study.name, looks=looks, max_runs=len(configs) * design.max_seeds)
    # the first step: the study's own runs, or what the last stored look asked for
    runs = expand_runs(study) if not looks else runs_for(study, looks[-1]["next_seeds"])
    seen: set[int] = set()
    while True:
        label = progress_label(study.name, looks, len(grid), outcome.max_runs)
        step = run_study(study, store, runs=runs, desc=label, **options)
        options["replace"] = False  # archive once, before the first step
        outcome.steps.append(step)
        if step.busy:
            outcome.stopped = (
                f"{step.busy} run(s) of this step are being trained by another `dropoutlab run`: no look "
                "taken; run the same command again once it ends"
            )
            break
        table = store.runs(study.name)
        outcome.spent = len(table)
        decision = outcome.decision = decide(table, design)
        if decision.look not in grid:
            outcome.stopped = "no configuration has run the first look's seeds: no look taken"
            break
        number = grid.index(decision.look) + 1
        if number in seen:  # a step that does not move the look on would loop forever
            raise RuntimeError(f"look {number} of study {study.name!r} came again after a step")
        seen.add(number)
        record = next((look for look in looks if look["look"] == number), None)
        if record is None:
            record = {
                **decision.to_dict(),
                "seeds": decision.look,  # per configuration; "look" is the look's number
                "seeds_run": {str(c): int(n) for c, n in table.groupby("config")["seed"].nunique().items()},
                "spent": len(table),
            }
            try:
                store.write_look(study.name, number, record)
                looks.append({**record, "look": number})
                outcome.taken += 1
            except DropoutlabError:  # another driver of the study took this look meanwhile: its stands
                looks[:] = store.looks(study.name)
                if not any(look["look"] == number for look in looks):
                    raise
            record = next(look for look in looks if look["look"] == number)
        log.info("%s: look %d/%d at %d seeds, %s; %d/%d seeds spent", study.name, number, len(grid),
                 decision.look, record["reason"], len(table), outcome.max_runs)  # fmt: skip
        if record["done"]:
            break
        runs = runs_for(study, record["next_seeds"])
    outcome.wall_s = time.perf_counter() - start
    return outcome
