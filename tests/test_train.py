import math

import pytest
import torch
from conftest import make_run, prepared

from dropoutlab.data.prepare import prepare_data
from dropoutlab.train import EarlyStopping, train_run


def test_same_seed_gives_the_same_history_and_other_seeds_differ(digits):
    run = make_run(dropout={"hidden1": 0.5})
    data = prepared(digits, run)
    a = train_run(run, data, torch.device("cpu"))
    b = train_run(run, data, torch.device("cpu"))
    c = train_run(make_run(seed=1, dropout={"hidden1": 0.5}), data, torch.device("cpu"))
    assert a.history == b.history
    assert (a.test_loss, a.test_acc) == (b.test_loss, b.test_acc)
    assert a.history != c.history


def test_history_has_every_metric_as_fractions(digits):
    run = make_run()
    result = train_run(run, prepared(digits, run), torch.device("cpu"))
    assert result.status == "completed"
    assert [h.epoch for h in result.history] == [1, 2, 3]
    for h in result.history:
        for key in ("train_acc", "val_acc", "train_eval_acc"):
            assert 0.0 <= getattr(h, key) <= 1.0
        for key in ("train_loss", "val_loss", "train_eval_loss"):
            assert getattr(h, key) > 0
    assert result.history[-1].val_acc > 0.7  # digits are easy: learning really happens
    assert 0.7 < result.test_acc <= 1.0
    assert result.stopped_epoch == 3


def test_eval_train_false_and_no_validation_leave_metrics_null(digits):
    run = make_run(validation=0.0, eval_train=False)
    data = prepared(digits, run)
    assert len(data.val) == 0 and len(data.train) == len(digits.y_train)
    result = train_run(run, data, torch.device("cpu"))
    assert all(h.val_loss is None and h.train_eval_acc is None for h in result.history)
    assert result.best_epoch is None
    assert result.test_acc is not None


def test_validation_split_is_fixed_by_split_seed_and_disjoint(digits):
    a = prepare_data(digits, 0.2, 0, "unit", "cpu")
    b = prepare_data(digits, 0.2, 0, "unit", "cpu")
    c = prepare_data(digits, 0.2, 1, "unit", "cpu")
    assert torch.equal(a.val.x, b.val.x) and not torch.equal(a.val.x, c.val.x)
    assert len(a.val) == round(len(digits.y_train) * 0.2)
    assert len(a.train) + len(a.val) == len(digits.y_train)


@pytest.mark.parametrize(("normalize", "low", "high"), [("unit", 0.0, 1.0), ("symmetric", -1.0, 1.0)])
def test_pixel_scaling(digits, normalize, low, high):
    data = prepare_data(digits, 0.0, 0, normalize, "cpu")
    assert data.train.x.min().item() == pytest.approx(low)
    assert data.train.x.max().item() == pytest.approx(high)


def test_standard_scaling_uses_training_split_statistics(digits):
    data = prepare_data(digits, 0.1667, 0, "standard", "cpu")
    assert data.train.x.mean().item() == pytest.approx(0.0, abs=1e-4)
    assert data.train.x.std().item() == pytest.approx(1.0, abs=1e-3)
    assert data.test.x.mean().item() != pytest.approx(0.0, abs=1e-4)


def test_huge_learning_rate_diverges_and_records_the_epoch(digits):
    run = make_run(optimizer={"name": "sgd", "lr": 1e12}, epochs=5)
    result = train_run(run, prepared(digits, run), torch.device("cpu"))
    assert result.status == "diverged"
    assert result.stopped_epoch == len(result.history) <= 5
    assert result.history[-1].train_loss is None
    assert (result.test_loss, result.test_acc) == (None, None)


def test_early_stopping_stops_and_restores_the_best_weights(digits):
    run = make_run(
        epochs=40,
        optimizer={"name": "adam", "lr": 0.01},
        early_stopping={"monitor": "val_loss", "patience": 2},
    )
    data = prepared(digits, run)
    result = train_run(run, data, torch.device("cpu"))
    losses = [h.val_loss for h in result.history]
    assert result.stopped_epoch < 40
    assert result.best_epoch == 1 + losses.index(min(losses))
    assert result.stopped_epoch == result.best_epoch + 2
    # the kept model is the best epoch's: training the same seed for best_epoch epochs
    # without early stopping gives the same model, hence the same test score
    plain = make_run(epochs=result.best_epoch, optimizer={"name": "adam", "lr": 0.01})
    again = train_run(plain, data, torch.device("cpu"))
    assert (again.test_loss, again.test_acc) == (result.test_loss, result.test_acc)


def test_early_stopping_rules_follow_keras():
    stopper = EarlyStopping("val_acc", patience=2, min_delta=0.01, keep_best=True)
    snapshots = []
    for epoch, acc in enumerate([0.5, 0.6, 0.605, 0.61, 0.62], start=1):
        stopper.update(epoch, acc, lambda epoch=epoch: snapshots.append(epoch) or {"epoch": epoch})
        if stopper.should_stop:
            break
    assert stopper.best_epoch == 2  # 0.605 and 0.61 are within min_delta of 0.6
    assert epoch == 4
    assert math.isclose(-stopper.best_value, 0.6)
    assert snapshots == [1, 2] and stopper.best_state == {"epoch": 2}  # weights copied only when better


def test_without_early_stopping_best_epoch_is_the_least_validation_loss_and_the_last_is_tested(digits):
    run = make_run(epochs=6, optimizer={"name": "adam", "lr": 0.05})
    result = train_run(run, prepared(digits, run), torch.device("cpu"))
    losses = [h.val_loss for h in result.history]
    assert result.best_epoch == 1 + losses.index(min(losses))
    assert result.kept_epoch == result.stopped_epoch == 6


def test_a_never_measured_monitor_never_improves_and_never_stops_without_patience():
    stopper = EarlyStopping("val_loss")
    for epoch in range(1, 4):
        stopper.update(epoch, None, dict)
    assert stopper.best_epoch is None and not stopper.should_stop
