"""Monte Carlo dropout on stored models: ``dropoutlab evaluate --mc T,...``.

A study run with ``--keep-weights`` stores each tested run's weights. This rebuilds each
run's own model from its stored settings, loads those weights and measures it on the test
split as a study with ``mc_samples`` would have (as :func:`~dropoutlab.train.loop.mc_test`:
:func:`~dropoutlab.train.loop.restored_model`, then the same masks, seeded by the run's
seed), then stores the entries beside the run, where the report and the export read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from dropoutlab.data import load_dataset
from dropoutlab.data.prepare import prepare_data
from dropoutlab.errors import DropoutlabError
from dropoutlab.runs import RunSettings
from dropoutlab.store import Store
from dropoutlab.study.runner import resolve_device
from dropoutlab.train.loop import restored_model, weights_from_bytes
from dropoutlab.train.uncertainty import mc_sweep


@dataclass
class EvaluateOutcome:
    """What :func:`evaluate_mc` did: runs measured, and completed runs without stored weights."""

    study: str
    evaluated: int
    without_weights: int


def evaluate_mc(
    store: Store,
    study: str,
    samples: tuple[int, ...],
    device: str = "auto",
    data_dir: str | Path | None = None,
    progress: bool | None = None,
) -> EvaluateOutcome:
    """Measure Monte Carlo dropout with each number of passes in ``samples`` (and the
    deterministic pass, ``samples = 0``) for every completed run of ``study`` whose weights
    the store holds, and store the entries. ``progress=None`` shows a bar only on a terminal.
    """
    records = [r for r in store.records(study) if r["status"] == "completed"]
    kept = store.runs_with_weights()
    todo = [r for r in records if r["id"] in kept]
    if not todo:
        raise DropoutlabError(
            f"{store.name}: study {study!r} has no stored weights; run it with "
            "`dropoutlab run STUDY.toml --keep-weights` (a run trained without it is trained again "
            "only after `--replace`)"
        )
    dev = resolve_device(device)
    settings = {r["id"]: RunSettings.from_dict(r["spec"]) for r in todo}
    datasets = {name: load_dataset(name, data_dir) for name in {s.dataset for s in settings.values()}}
    data_key = {rid: (s.dataset, s.validation, s.split_seed, s.normalize) for rid, s in settings.items()}
    todo.sort(key=lambda r: data_key[r["id"]])  # one prepared data set on the device at a time
    data, prepared_for = None, None
    bar = tqdm(todo, desc=f"{study} MC dropout", unit="run",
               disable=False if progress else None if progress is None else True)  # fmt: skip
    for record in bar:
        s = settings[record["id"]]
        if data_key[record["id"]] != prepared_for:
            data = None  # free the last data set first
            data = prepare_data(datasets[s.dataset], s.validation, s.split_seed, s.normalize, dev)
            prepared_for = data_key[record["id"]]
        try:  # one run's weights in memory at a time
            model = restored_model(s, weights_from_bytes(store.weights(record["id"]), dev), data, dev)
        except Exception as exc:  # torch.load of damaged bytes raises many kinds (struct, pickle, zip...)
            raise DropoutlabError(
                f"{store.name}: the stored weights of run {record['id']} cannot be read ({type(exc).__name__}); "
                "train the study again with --keep-weights (--replace keeps the old runs)"
            ) from None
        entries = mc_sweep(model, data.test.x, data.test.y, (0, *samples), seed=record["seed"])
        store.write_mc(record["id"], entries)
    return EvaluateOutcome(study, len(todo), len(records) - len(todo))
