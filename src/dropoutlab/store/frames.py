"""The DataFrame views of the store: :meth:`Frames.runs` (one row per run) and
:meth:`Frames.history` (one row per run and epoch), as DEVELOPERS.md ("Store DataFrames")
defines them, built from the export records so that ``export`` and a frame agree."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dropoutlab.runs import EPOCH_METRICS
from dropoutlab.store.records import Records, record_kept_epoch

if TYPE_CHECKING:
    import pandas as pd


class Frames(Records):
    """The DataFrame views (part of :class:`~dropoutlab.store.Store`)."""

    def runs(self, study: str | None = None) -> pd.DataFrame:
        """One row per run (see DEVELOPERS.md, "Store DataFrames"); ``attrs["params"]`` lists the grid keys."""
        return runs_frame(self.records(study))

    def history(self, study: str | None = None) -> pd.DataFrame:
        """One row per run and epoch, with the run's configuration columns."""
        return history_frame(self.records(study))


def config_label(params: dict[str, Any]) -> str:
    """A readable label for a configuration: ``"dropout.conv=0.05, optimizer.lr=0.01"``."""
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "default"


def _param_keys(records: list[dict[str, Any]]) -> list[str]:
    keys: dict[str, None] = {}
    for r in records:
        keys.update(dict.fromkeys(r["params"]))
    return list(keys)


def _cell(value: Any) -> Any:
    """A parameter's value as one table cell: a list (``augment``) as ``"crop+flip"``, ``"none"`` when empty."""
    if isinstance(value, list):
        return "+".join(map(str, value)) or "none"
    return value


def runs_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The runs DataFrame built from export records."""
    import pandas as pd  # here, not at the top: `dropoutlab run` trains without pandas

    params = _param_keys(records)
    rows = []
    for r in records:
        kept = record_kept_epoch(r)
        final = next((h for h in r["history"] if h["epoch"] == kept), {})
        row = {
            "id": r["id"], "study": r["study"], "config": config_label(r["params"]), "seed": r["seed"],
            "status": r["status"], "test_loss": r["test"]["loss"], "test_acc": r["test"]["acc"],
            "best_epoch": r["best_epoch"], "stopped_epoch": r["stopped_epoch"], "kept_epoch": kept,
            "wall_s": r["wall_s"],
        }  # fmt: skip
        row.update({f"final_{m}": final.get(m) for m in EPOCH_METRICS})
        row.update({f"dropout.{slot}": rate for slot, rate in r["spec"].get("dropout", {}).items()})
        row.update({k: _cell(r["params"].get(k)) for k in params})
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in ("test_loss", "test_acc", *(f"final_{m}" for m in EPOCH_METRICS)):
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    frame.attrs["params"] = params
    return frame


def history_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The history DataFrame (one row per run and epoch) built from export records."""
    import pandas as pd

    params = _param_keys(records)
    rows = []
    for r in records:
        base = {"run_id": r["id"], "study": r["study"], "config": config_label(r["params"]), "seed": r["seed"],
                "status": r["status"]}  # fmt: skip
        base.update({k: _cell(r["params"].get(k)) for k in params})
        rows.extend({**base, **h} for h in r["history"])
    frame = pd.DataFrame(
        rows,
        columns=None if rows else ["run_id", "study", "config", "seed", "status", "epoch", *EPOCH_METRICS],
    )
    for column in EPOCH_METRICS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    frame.attrs["params"] = params
    return frame
