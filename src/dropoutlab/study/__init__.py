"""Studies: the validated spec, grid expansion and the runner."""

from dropoutlab.runs import RunSettings, RunSpec, StudySpec
from dropoutlab.study.grid import expand_runs
from dropoutlab.study.runner import StudyOutcome, resolve_device, run_study
from dropoutlab.study.sequential import SequentialOutcome, run_until_decided
from dropoutlab.study.spec import define_study, load_study, parse_study

__all__ = [
    "RunSettings",
    "RunSpec",
    "SequentialOutcome",
    "StudyOutcome",
    "StudySpec",
    "define_study",
    "expand_runs",
    "load_study",
    "parse_study",
    "resolve_device",
    "run_study",
    "run_until_decided",
]
