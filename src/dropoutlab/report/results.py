"""The notebook entry point: one study of a store, as DataFrames, tables and figures."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from dropoutlab.report import plots
from dropoutlab.report.analysis import StudyData, _analyze
from dropoutlab.report.model import ALPHA, CONFIDENCE, MIN_EFFECT, Analysis, Levels
from dropoutlab.report.stats import COMPARE_COLUMNS, compare
from dropoutlab.store import DEFAULT_STORE, Store


class StudyResults:
    """The runs of one study, read from a store, with the report's tables and figures.

    ``runs`` and ``history`` are pandas DataFrames (see DEVELOPERS.md, "Store DataFrames");
    ``analysis()`` is the report's ``Analysis`` (computed once per set of arguments);
    ``summary()``, ``compare()`` and ``findings()`` render it as the report's tables and
    sentences; each ``plot_*`` method draws one of the report's figures from it and returns
    a matplotlib Figure, so a notebook shows it and a script can ``savefig`` it;
    ``write_report(out)`` writes the report files. Accuracies are fractions in [0, 1].
    """

    def __init__(self, store: Store, study: str | None = None) -> None:
        self.store = store
        self.study = store.resolve_study(study)

    def __repr__(self) -> str:
        return f"StudyResults(study={self.study!r}, runs={len(self.runs)}, store={self.store.name!r})"

    @cached_property
    def _data(self) -> StudyData:
        # read once; the frames and every analysis are built from it
        return StudyData.from_records(self.store.records(self.study), self.store.study_definition(self.study))

    @property
    def runs(self) -> pd.DataFrame:
        """One row per run: parameters, seed, status, final and test metrics."""
        return self._data.runs

    @property
    def history(self) -> pd.DataFrame:
        """One row per run and epoch."""
        return self._data.history

    @property
    def params(self) -> list[str]:
        """The grid parameters (dotted keys)."""
        return list(self._data.params)

    def analysis(
        self,
        baseline: str | dict | None = None,
        alpha: float = ALPHA,
        confidence: float = CONFIDENCE,
        min_effect: float = MIN_EFFECT,
    ) -> Analysis:
        """The report's analysis (``dropoutlab.report.analyze``) of this study."""
        key = (repr(baseline), alpha, confidence, min_effect)
        cache = self.__dict__.setdefault("_analyses", {})
        if key not in cache:
            cache[key] = _analyze(self._data, self.study, baseline, Levels(alpha, confidence, min_effect))
        return cache[key]

    def summary(self, confidence: float = CONFIDENCE) -> pd.DataFrame:
        """Per configuration: n, mean, std and interval of test/val/train accuracy, the gap, best epoch."""
        return self.analysis(confidence=confidence).summary

    def compare(
        self,
        baseline: str | dict | None = None,
        metric: str = "test_acc",
        alpha: float = ALPHA,
        confidence: float = CONFIDENCE,
        min_effect: float = MIN_EFFECT,
    ) -> pd.DataFrame:
        """Each configuration minus the baseline (default: no dropout): the report's comparisons.

        On test accuracy these are the report's own numbers (Holm over the report's whole
        family, simultaneous intervals, seeds needed for ``min_effect``); on another
        ``metric`` the comparisons form a family of their own (``stats.compare``).
        """
        if metric != "test_acc":
            return compare(self.runs, self.params, baseline, metric, alpha, confidence, min_effect)
        rows = self.analysis(baseline, alpha, confidence, min_effect).comparisons
        return pd.DataFrame([c.__dict__ for c in rows], columns=list(COMPARE_COLUMNS))

    def findings(
        self,
        baseline: str | dict | None = None,
        alpha: float = ALPHA,
        confidence: float = CONFIDENCE,
        min_effect: float = MIN_EFFECT,
    ) -> list[str]:
        """The report's headline findings, as sentences (``analysis().findings`` has them as data)."""
        return [f.text for f in self.analysis(baseline, alpha, confidence, min_effect).headline]

    def plot_learning_curves(self, config: str | None = None) -> Figure:
        """Loss and accuracy per epoch for one configuration (default: the first)."""
        return plots.learning_curves(self.analysis(), config or self.runs["config"].iloc[0])

    def plot_comparison(self, configs: Sequence[str] = ()) -> Figure:
        """Loss and accuracy per epoch in one figure: of ``configs`` (named as in the summary's
        ``config`` column), else of those the report draws: every configuration up to 12, else
        the baseline and the 8 with the highest mean test accuracy."""
        a = self.analysis()
        planned = next((plan.configs for plan in a.figures if plan.kind == "comparison"), ())
        return plots.comparison(a, list(configs) or planned)

    def plot_accuracy_vs_rate(self) -> Figure:
        """Train, validation and test accuracy against the swept dropout rate."""
        return plots.accuracy_vs_rate(self.analysis())

    def plot_gap_vs_rate(self) -> Figure:
        """Train minus test accuracy against the swept rate."""
        return plots.gap_vs_rate(self.analysis())

    def plot_heatmap(self) -> Figure:
        """Mean test accuracy over the study's two-parameter grid."""
        return plots.heatmap(self.analysis())

    def write_report(
        self,
        out: str | Path,
        baseline: str | None = None,
        alpha: float = ALPHA,
        confidence: float = CONFIDENCE,
        min_effect: float = MIN_EFFECT,
    ) -> dict[str, Path]:
        """Write report.html, report.md and the PNGs into ``out``."""
        from dropoutlab.report.write import write_analysis

        return write_analysis(self.analysis(baseline, alpha, confidence, min_effect), out)


def open_store(location: str | Path = DEFAULT_STORE, study: str | None = None) -> StudyResults:
    """Open a study in an existing store for reading: ``dl.open_store("dropoutlab.db")``, or
    ``dl.open_store("postgresql://USER@HOST/DB")``.

    ``study`` is needed only when the store holds several studies.
    """
    return StudyResults(Store(location, readonly=True), study)
