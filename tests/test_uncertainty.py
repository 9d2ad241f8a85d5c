"""MC dropout: the metrics on hand-made and reference cases, the sampler, the figures."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import brier_score_loss, log_loss
from torch import nn

from dropoutlab.layers import Dropout
from dropoutlab.report.plots import metric_against_samples, reliability_diagram
from dropoutlab.train.uncertainty import (
    PROB_FLOOR,
    accuracy,
    brier,
    expected_calibration_error,
    mc_predict,
    mutual_information,
    nll,
    predictive_entropy,
    reliability,
    uncertainty_metrics,
)


def two_class(confidences, correct):
    """Binary probabilities whose max is each ``confidence`` (class 0), labels right where ``correct``."""
    conf = torch.tensor(confidences, dtype=torch.float64)
    probs = torch.stack([conf, 1 - conf], 1)
    y = torch.tensor([0 if ok else 1 for ok in correct])
    return probs, y


def random_probs(n=500, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    probs = (3 * torch.randn(n, classes, generator=g, dtype=torch.float64)).softmax(1)
    return probs, torch.randint(classes, (n,), generator=g)


# ----------------------------------------------------------------------------------------
# Metrics


def test_ece_is_zero_when_each_bins_accuracy_equals_its_confidence():
    # bin (0.7, 0.8]: 4 at 0.75, 3 right; bin (0.9, 1.0]: 20 at 0.95, 19 right
    probs, y = two_class([0.75] * 4 + [0.95] * 20, [True] * 3 + [False] + [True] * 19 + [False])
    assert expected_calibration_error(probs, y, bins=10) == pytest.approx(0.0, abs=1e-12)
    assert reliability(probs, y, bins=10)[7] == (4, pytest.approx(0.75), pytest.approx(0.75))


def test_ece_of_a_miscalibrated_case_matches_the_hand_computation():
    # (0.8, 0.9]: 0.82 right and 0.88 wrong: |0.5 - 0.85| = 0.35 (within a bin, averaged before |.|)
    # (0.5, 0.6]: 0.55 right: |1 - 0.55| = 0.45;  (0.9, 1.0]: two at 0.95, both wrong: 0.95
    probs, y = two_class([0.82, 0.88, 0.55, 0.95, 0.95], [True, False, True, False, False])
    want = (2 * 0.35 + 1 * 0.45 + 2 * 0.95) / 5
    assert expected_calibration_error(probs, y, bins=10) == pytest.approx(want, abs=1e-12)
    # one bin: |overall accuracy - mean confidence|
    assert expected_calibration_error(probs, y, bins=1) == pytest.approx(abs(2 / 5 - 0.83), abs=1e-12)


def numpy_bins(probs, y, bins):
    """Guo et al.'s binning written independently: bin m holds confidences in (m/bins, (m+1)/bins]."""
    conf, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0, 1, bins + 1)
    rows = []
    for m in range(bins):
        inside = (conf > edges[m]) & (conf <= edges[m + 1]) if m else conf <= edges[1]
        n = int(inside.sum())
        rows.append(
            (n, conf[inside].mean() if n else math.nan, (pred == y)[inside].mean() if n else math.nan)
        )
    return rows


@pytest.mark.parametrize("bins", [1, 7, 15])
def test_ece_and_reliability_match_an_independent_binning_on_random_data(bins):
    probs, y = random_probs()
    rows = numpy_bins(probs.numpy(), y.numpy(), bins)
    got = reliability(probs, y, bins)
    assert [n for n, _, _ in got] == [n for n, _, _ in rows] and sum(n for n, _, _ in got) == len(y)
    np.testing.assert_allclose([r[1:] for r in got], [r[1:] for r in rows], rtol=1e-12)
    want = sum(n / len(y) * abs(acc - conf) for n, conf, acc in rows if n)
    assert expected_calibration_error(probs, y, bins) == pytest.approx(want, rel=1e-12)


def test_reliability_marks_empty_bins_with_nan():
    probs, y = two_class([0.95, 0.95], [True, False])
    rows = reliability(probs, y, bins=4)
    assert [n for n, _, _ in rows] == [0, 0, 0, 2]
    assert all(math.isnan(conf) and math.isnan(acc) for _, conf, acc in rows[:3])
    assert rows[3][1:] == (pytest.approx(0.95), pytest.approx(0.5))


def test_brier_and_nll_of_hand_made_probabilities():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]])
    y = torch.tensor([0, 2])
    # (0.3^2 + 0.2^2 + 0.1^2 = 0.14) and (0.1^2 + 0.6^2 + 0.7^2 = 0.86)
    assert brier(probs, y) == pytest.approx((0.14 + 0.86) / 2, rel=1e-6)
    assert nll(probs, y) == pytest.approx(-(math.log(0.7) + math.log(0.3)) / 2, rel=1e-6)
    assert accuracy(probs, y) == 0.5


def test_nll_clamps_a_zero_probability_at_the_floor():
    probs = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    assert nll(probs, torch.tensor([1, 0])) == pytest.approx((-math.log(PROB_FLOOR) + math.log(2)) / 2)


def test_nll_matches_sklearn_and_brier_an_independent_computation():
    probs, y = random_probs(classes=6)
    p, labels = probs.numpy(), y.numpy()
    assert nll(probs, y) == pytest.approx(log_loss(labels, p, labels=range(6)), rel=1e-10)
    onehot = np.eye(6)[labels]
    assert brier(probs, y) == pytest.approx(((p - onehot) ** 2).sum(1).mean(), rel=1e-12)
    assert brier(probs, y) == pytest.approx(brier_score_loss(labels, p, labels=range(6)), rel=1e-10)
    binary, yb = random_probs(classes=2, seed=1)  # scikit-learn's binary score is half ours
    assert brier(binary, yb) == pytest.approx(
        2 * brier_score_loss(yb.numpy(), binary[:, 1].numpy()), rel=1e-10
    )


def test_entropy_is_log_classes_for_uniform_and_zero_for_certain():
    probs = torch.tensor([[0.25] * 4, [1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]])
    torch.testing.assert_close(
        predictive_entropy(probs), torch.tensor([math.log(4), 0.0, math.log(2)]).double()
    )


def test_mutual_information_is_zero_when_passes_agree_and_positive_when_they_disagree():
    one, _ = random_probs(n=50)
    same = mutual_information(one.expand(8, -1, -1))
    torch.testing.assert_close(
        same, torch.zeros(50, dtype=torch.float64), rtol=0, atol=1e-12
    )  # mean's rounding
    # two confident passes that disagree: total entropy log 2, each pass's 0
    disagree = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    assert mutual_information(disagree).item() == pytest.approx(math.log(2))
    noisy = (one.log() + torch.randn(8, 50, 5, generator=torch.Generator().manual_seed(3))).softmax(-1)
    assert (mutual_information(noisy) > 0).all()


def test_uncertainty_metrics_score_the_mean_of_the_passes():
    sample_probs = torch.stack([random_probs(seed=s)[0] for s in range(4)])
    y = random_probs(seed=9)[1]
    mean = sample_probs.mean(0)
    got = uncertainty_metrics(sample_probs, y, bins=10)
    assert got == pytest.approx({
        "acc": accuracy(mean, y), "nll": nll(mean, y), "brier": brier(mean, y),
        "ece": expected_calibration_error(mean, y, 10), "entropy": predictive_entropy(mean).mean().item(),
        "mutual_information": mutual_information(sample_probs).mean().item(),
    })  # fmt: skip
    assert got["nll"] < sum(nll(p, y) for p in sample_probs) / 4  # the predictive beats its passes
    assert uncertainty_metrics(sample_probs[:1], y)["mutual_information"] == 0.0


# ----------------------------------------------------------------------------------------
# mc_predict: a run's own model


class Log(nn.Module):
    def forward(self, x):
        return x.log()


def linear_probability_model(features=20, classes=4, p=0.5):
    """Dropout then a dense layer whose outputs are positive and sum to ``classes`` whatever the
    mask (each input's weights sum to 0 over the classes, biases 1), then log: its softmax is
    the dense output / classes, linear in the mask, so the MC mean converges to the eval output."""
    torch.manual_seed(0)
    dense = nn.Linear(features, classes)
    with torch.no_grad():
        dense.weight.copy_(0.02 * torch.randn(classes, features))
        dense.weight.sub_(dense.weight.mean(0))
        dense.bias.fill_(1.0)
    return nn.Sequential(Dropout(p), dense, Log())


def test_mc_predict_with_zero_samples_is_the_eval_pass():
    model = linear_probability_model()
    x = torch.randn(30, 20)
    got = mc_predict(model, x, 0, batch_size=7)
    assert got.shape == (1, 30, 4)
    assert model.training  # modes restored
    assert torch.equal(got[0], model.eval()(x).softmax(-1))


def test_mc_passes_differ_and_their_mean_approaches_the_eval_output():
    model = linear_probability_model()
    x = torch.randn(30, 20)
    want = model.eval()(x).softmax(-1)
    samples = mc_predict(model, x, 400, batch_size=16, seed=0).double()
    assert samples.shape == (400, 30, 4)
    assert (samples.std(0) > 1e-4).all()  # every pass its own mask
    error = samples.mean(0) - want
    se = samples.std(0) / math.sqrt(400)
    assert (error.abs() <= 5 * se).all()  # |z| <= 5 for each of the 120 means
    assert error.abs().max() < 0.2 * (samples - want).abs().max()  # the mean is far closer than a pass


def test_mc_predict_with_a_seed_repeats_itself_and_leaves_the_global_generator():
    model = linear_probability_model()
    x = torch.randn(10, 20)
    state = torch.get_rng_state()
    a = mc_predict(model, x, 5, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, mc_predict(model, x, 5, seed=7)) and not torch.equal(
        a, mc_predict(model, x, 5, seed=8)
    )


class Probe(nn.Module):
    """A new dropout kind (a class ``kind``) that records its mode at each pass."""

    kind = "probe"

    def __init__(self):
        super().__init__()
        self.modes = []

    def forward(self, x):
        self.modes.append(self.training)
        return x


def test_mc_predict_keeps_batch_norm_statistics_and_restores_every_mode():
    torch.manual_seed(0)
    probe = Probe()
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), Dropout(0.3), probe,
                          nn.Dropout(0.3), nn.Linear(8, 3))  # fmt: skip
    model.train()
    model[1](torch.randn(64, 8) * 3 + 1)  # running statistics away from their start
    model[2].eval()  # a mixed set of modes, each to be restored
    modes = [m.training for m in model.modules()]
    state = copy.deepcopy(model.state_dict())
    x = torch.randn(40, 6)
    samples = mc_predict(model, x, 6)
    assert probe.modes == [True] * 6
    assert [m.training for m in model.modules()] == modes
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # num_batches_tracked too
    # with the dropout layers alone in training mode, a rate of 0 gives the eval output
    for module in (model[3], model[5]):
        module.p = 0.0
    torch.testing.assert_close(mc_predict(model, x, 2)[1], model.eval()(x).softmax(-1))
    assert not torch.equal(samples[0], samples[1])


# ----------------------------------------------------------------------------------------
# Figures


def test_reliability_diagram_draws_the_diagonal_and_one_line_per_label(tmp_path):
    probs, y = random_probs()
    fig = reliability_diagram(
        {"MC, T=50": reliability(probs, y, 10), "weight scaling": reliability(probs, y, 5)}
    )
    (ax,) = fig.axes
    gids = [line.get_gid() for line in ax.lines]
    assert gids == ["diagonal", "reliability:MC, T=50", "reliability:weight scaling"]
    counts = [n for n, _, _ in reliability(probs, y, 10)]
    assert len(ax.lines[1].get_xdata()) == sum(n > 0 for n in counts)  # empty bins left out
    fig.savefig(tmp_path / "reliability.png")
    assert (tmp_path / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_metric_against_samples_draws_a_banded_line_per_label_and_the_deterministic_pass(tmp_path):
    rows = [
        {"label": label, "samples": t, "mean": m + 0.01 * t, "low": m - 0.02, "high": m + 0.05}
        for label, m in (("p=0.2", 0.3), ("p=0.5", 0.4))
        for t in (0, 1, 4, 16, 64)
    ] + [{"label": "det only", "samples": 0, "mean": 0.5, "low": 0.45, "high": 0.55}]
    fig = metric_against_samples(rows, "nll (nats)")
    (ax,) = fig.axes
    mean_lines = [line for line in ax.lines if (line.get_gid() or "").startswith("mean:")]
    assert [line.get_gid() for line in mean_lines] == ["mean:p=0.2", "mean:p=0.5"]
    assert list(mean_lines[0].get_xdata()) == [1, 4, 16, 64]
    assert len(ax.collections) >= 2  # a band per MC line (error bars add their own collections)
    det = sorted(line.get_gid() for line in ax.lines if (line.get_gid() or "").startswith("det:"))
    assert det == ["det:det only", "det:p=0.2", "det:p=0.5"] and len(ax.containers) == 3
    assert "det." in [t.get_text() for t in ax.get_xticklabels()]
    assert ax.get_ylabel() == "nll (nats)"
    fig.savefig(tmp_path / "nll.png")
    assert (tmp_path / "nll.png").stat().st_size > 1000
