"""Every dropout kind and every model family learns digits from a study file, alone and stacked."""

import pytest

from dropoutlab.models import FAMILIES
from dropoutlab.store import Store
from dropoutlab.study import load_study, run_study

KINDS_STUDY = """
name = "kinds"
dataset = "digits"
model = "cnn"
epochs = 3
batch_size = 32
seeds = 1
[optimizer]
lr = 0.002
[dropout]
conv = 0.2
dense1 = 0.2
[[grid]]
"dropout.conv.kind" = ["standard", "scaled", "gaussian", "spatial", "dropblock", "concrete"]
[[grid]]
"dropout.dense1.kind" = ["alpha", "dropconnect"]
"""

CHANCE = 0.1  # ten balanced classes


@pytest.mark.parametrize("stack", ["auto", "off"])
def test_every_kind_learns_digits_from_a_study_file(write_study, tmp_path, stack):
    study = load_study(write_study(KINDS_STUDY))
    with Store(tmp_path / "s.db") as store:
        outcome = run_study(study, store, progress=False, stack=stack, workers=1)
        records = store.records("kinds")
    # a union grid fills each run's other keys with its own value ("standard")
    kinds = {max(r["params"]["dropout.conv.kind"], r["params"]["dropout.dense1.kind"], key=lambda k: k != "standard"): r
             for r in records}  # fmt: skip
    assert len(kinds) == 8 and all(r["status"] == "completed" for r in records)
    for kind, record in kinds.items():
        assert record["test"]["acc"] > 3 * CHANCE, kind
    engines = {r["env"]["engine"] for r in records}
    assert engines == ({"stacked"} if stack == "auto" else {"single"})
    if stack == "auto":
        assert not outcome.plan_notes  # every kind has a stacked form: nothing trains alone


def test_every_family_learns_digits_with_dropout_at_each_slot(write_study, tmp_path):
    tables = "\n".join(
        f'[[grid]]\nmodel = ["{name}"]\n' + "\n".join(f'"dropout.{slot}" = [0.1]' for slot in family.slots)
        for name, family in FAMILIES.items()
    )
    study = load_study(
        write_study(
            'name = "families"\ndataset = "digits"\nepochs = 3\nbatch_size = 32\nseeds = 1\n'
            f"[optimizer]\nlr = 0.003\n{tables}\n"
        )
    )
    with Store(tmp_path / "s.db") as store:
        outcome = run_study(study, store, progress=False, workers=1)
        records = store.records("families")
    assert {r["params"]["model"] for r in records} == set(FAMILIES)
    for record in records:
        assert record["status"] == "completed" and record["test"]["acc"] > 3 * CHANCE, record["params"]
    assert len(outcome.plan_notes) == len(FAMILIES)  # each family's note says why it trains alone
