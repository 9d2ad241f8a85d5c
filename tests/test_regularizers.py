"""Regularizers beside dropout (label smoothing, max-norm, augmentation, batch norm presets),
model families in studies, and what the settings added with them keep (run ids)."""

import pytest
import torch
from conftest import make_run, prepared
from test_stacked import SMALL_CNN, assert_same_history

from dropoutlab.models import PRESETS, build_network, with_batchnorm
from dropoutlab.store import Store
from dropoutlab.study import expand_runs, load_study, run_study
from dropoutlab.train import train_run, train_runs
from dropoutlab.train.augment import Augmentation, apply_augmentation, draw_augmentation
from dropoutlab.train.plan import plan_stacks, trains_alone
from dropoutlab.train.regularizers import apply_max_norm

CPU = torch.device("cpu")


def test_settings_added_later_keep_the_run_ids_of_earlier_studies(tiny_study):
    # ids computed by dropoutlab 4fe35f1, before these settings existed: its stores stay valid
    ids = [run.id for run in expand_runs(load_study(tiny_study))]
    assert ids == ["087be21061abd67f", "e31dfd5682643bb4", "c2ef0b6056b5e333", "8b6d7ab4b3c8d545"]


def test_a_new_setting_changes_the_run_id():
    assert make_run(0).id != make_run(0, label_smoothing=0.1).id != make_run(0, max_norm=3.0).id


@pytest.mark.parametrize("model", ["mlp", SMALL_CNN])
def test_stacked_engine_applies_the_regularizers_as_the_single_engine_does(digits, model, float64):
    # rate 0 everywhere, so both engines must give the same histories to float64 rounding;
    # seeds 0, 0, 1: two runs share batches and crops (grouped input), one draws its own
    extra = {"label_smoothing": 0.1, "augment": ["crop", "flip"], "epochs": 2,
             "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}}  # fmt: skip
    runs = [make_run(0, model=model, max_norm=0.5, **extra), make_run(0, model=model, **extra),
            make_run(1, model=model, max_norm=1.0, **extra)]  # fmt: skip
    data = prepared(digits, runs[0])
    for result, run in zip(train_runs(runs, data, CPU, "stacked"), runs, strict=True):
        assert_same_history(result, train_run(run, data, CPU))


def unit_norms(model):
    return torch.cat(
        [m.weight.flatten(1).norm(dim=1) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    )


def test_max_norm_bounds_every_units_incoming_weights(digits):
    torch.manual_seed(0)
    model = build_network(make_run(0).settings, (1, 8, 8), 10)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(10)
    assert unit_norms(model).max() > 0.5
    before = unit_norms(model)
    apply_max_norm(model, 0.5)
    after = unit_norms(model)
    assert after.max() <= 0.5 + 1e-6
    small = before <= 0.5  # vectors already inside the ball are left exactly as they were
    assert torch.equal(after[small], before[small])


def test_crop_shifts_within_the_padded_frame_and_flip_mirrors():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    same = Augmentation(flip=None, shift=torch.tensor([[1, 1]]), pad=1)  # centred: the image itself
    assert torch.equal(apply_augmentation(x, same), x)
    down_right = Augmentation(flip=None, shift=torch.tensor([[2, 2]]), pad=1)
    out = apply_augmentation(x, down_right)[0, 0]
    assert (
        torch.equal(out[:3, :3], x[0, 0, 1:, 1:]) and out[3].abs().sum() == 0 and out[:, 3].abs().sum() == 0
    )
    flipped = Augmentation(flip=torch.tensor([True]), shift=None, pad=1)
    assert torch.equal(apply_augmentation(x, flipped), x.flip(3))


def test_augmentation_draws_follow_the_generator_and_flip_half():
    draw = lambda seed: draw_augmentation(("crop", "flip"), 4000, 32, torch.Generator().manual_seed(seed))  # noqa: E731
    a, b, c = draw(0), draw(0), draw(1)
    assert torch.equal(a.flip, b.flip) and torch.equal(a.shift, b.shift) and not torch.equal(a.shift, c.shift)
    assert abs(a.flip.float().mean().item() - 0.5) < 5 * (0.25 / 4000) ** 0.5
    assert a.pad == 4 and a.shift.min() == 0 and a.shift.max() == 8


def test_augmentation_changes_training_but_never_evaluation(digits):
    plain, augmented = make_run(0, epochs=1), make_run(0, epochs=1, augment=["crop", "flip"])
    data = prepared(digits, plain)
    a, b = train_run(plain, data, CPU), train_run(augmented, data, CPU)
    assert a.history[0].train_loss != b.history[0].train_loss
    # the same weights score the same on the test set with or without augment: it is off at test
    from dropoutlab.train.single import SingleEngine

    engines = [SingleEngine([run], data, CPU) for run in (plain, augmented)]
    state = engines[0].member_state(0)
    assert engines[0].test([0], [state]) == engines[1].test([0], [state])


def test_batchnorm_presets_put_batch_norm_before_each_hidden_activation():
    layers = with_batchnorm(PRESETS["cnn"])
    kinds = [layer.type for layer in layers]
    assert kinds[:3] == ["conv2d", "batchnorm", "activation"]
    assert kinds.count("batchnorm") == 4  # two convolutions, two hidden dense layers; not the output
    assert layers[-1].units == "classes" and kinds[-2] != "batchnorm"
    run = make_run(0, model="cnn", batchnorm=True)
    assert (
        sum(isinstance(m, torch.nn.BatchNorm2d) for m in build_network(run.settings, (1, 8, 8), 10).modules())
        == 2
    )


def test_families_train_alone_and_the_plan_says_why(digits, write_study, tmp_path):
    path = write_study(
        """
        name = "families"
        dataset = "digits"
        epochs = 1
        seeds = 2
        [grid]
        model = ["gru", "mlp"]
        """
    )
    study = load_study(path)
    runs = expand_runs(study)
    gru = [run for run in runs if run.settings.model == "gru"]
    assert trains_alone(gru[0]) == "gru runs train one at a time: the stacked engine covers layer-list models"
    data = prepared(digits, runs[0])
    stacks = plan_stacks(runs, data, CPU, "auto", workers=1)
    assert sorted(len(s) for s in stacks) == [1, 1, 2]
    with Store(tmp_path / "s.db") as store:
        outcome = run_study(study, store, progress=False, workers=1)
        assert outcome.plan_notes == [trains_alone(gru[0])]
        frame = store.runs("families")
    assert set(frame["status"]) == {"completed"} and len(frame) == 4
    engines = {
        record["params"]["model"]: record["env"]["engine"] for record in Store(tmp_path / "s.db").records()
    }
    assert engines == {"gru": "single", "mlp": "stacked"}
