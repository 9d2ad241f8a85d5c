"""The functional engine (user nn.Modules stacked through torch.func) against the single engine."""

from __future__ import annotations

import copy
import dataclasses
from functools import partial

import pytest
import torch
from conftest import make_run, prepared
from test_stacked import F64_RTOL, assert_same_history
from torch import nn
from torch.nn import functional as F

from dropoutlab.layers import kinds
from dropoutlab.layers.dropout import Dropout as LabDropout
from dropoutlab.store import Store
from dropoutlab.study import expand_runs, load_study, run_study
from dropoutlab.train import loop, single
from dropoutlab.train.checkpoints import Checkpoint
from dropoutlab.train.functional import (
    FunctionalEngine,
    NotStackable,
    draw_noise,
    functional_reason,
)
from dropoutlab.train.loop import train_runs
from dropoutlab.train.plan import stack_key, trains_alone

CPU = torch.device("cpu")


class UserMLP(nn.Module):
    """A user's MLP: two dropout modules, one of them at the input, and a shared activation."""

    def __init__(self, p_in: float = 0.0, p_hidden: float = 0.0, width: int = 32) -> None:
        super().__init__()
        self.drop_in = nn.Dropout(p_in)
        self.body = nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Dropout(p_hidden))
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        return self.head(self.body(self.drop_in(x.flatten(1))))


class UserCNN(nn.Module):
    """A user's small CNN: channel dropout on the feature maps, dropout before the head."""

    def __init__(self, p_conv: float = 0.0, p_dense: float = 0.0) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(inplace=True), nn.Dropout2d(p_conv)
        )
        self.fc = nn.Linear(6 * 16, 24)
        self.drop = nn.Dropout(p_dense)
        self.out = nn.Linear(24, 10)

    def forward(self, x):
        x = F.max_pool2d(self.features(x), 2).flatten(1)
        return self.out(self.drop(F.relu(self.fc(x))))


def user_mlp(settings):
    return UserMLP(settings.dropout["input"], settings.dropout["hidden1"])


def user_cnn(settings):
    return UserCNN(settings.dropout["input"], settings.dropout["hidden1"])


@pytest.fixture
def user_model(monkeypatch):
    """Make both engines build ``factory(settings)`` as each run's model (the single engine the
    reference, the functional engine with ``options`` as the stacked one); returns the setter."""

    def use(factory, **options):
        monkeypatch.setattr(single, "build_network", lambda settings, shape, classes: factory(settings))
        build = lambda run, data: factory(run.settings)  # noqa: E731
        monkeypatch.setitem(loop.ENGINES, "stacked", partial(FunctionalEngine, build=build, **options))

    return use


def alone(run, data):
    return train_runs([run], data, CPU, "single")[0]


@pytest.mark.parametrize(
    "optimizer",
    [
        {"name": "adam", "lr": 0.01, "weight_decay": 1e-3},
        {"name": "adamw", "lr": 0.01, "weight_decay": 0.05},
        {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3},
    ],
)
def test_a_stack_of_user_mlps_trains_each_run_as_alone_with_its_own_rates_and_lr(
    digits, user_model, optimizer, float64
):
    user_model(user_mlp)
    rates = [{"input": 0.2, "hidden1": 0.5}, {"input": 0.0, "hidden1": 0.3}, {"input": 0.1, "hidden1": 0.0}]
    lrs = [optimizer["lr"], optimizer["lr"] / 3, optimizer["lr"]]
    runs = [make_run(seed, dropout=r, optimizer={**optimizer, "lr": lr})
            for seed, r, lr in zip((0, 1, 2), rates, lrs, strict=True)]  # fmt: skip
    data = prepared(digits, runs[0])
    results = train_runs(runs, data, CPU, "stacked")
    for result, run in zip(results, runs, strict=True):
        assert result.env["engine"] == "stacked" and result.env["stack"]["size"] == 3
        assert_same_history(result, alone(run, data))
    # the rates are each member's own: the heavily dropped member fits its training data worse
    assert results[0].history[-1].train_loss > results[2].history[-1].train_loss


@pytest.mark.parametrize("loop", [False, True], ids=["vmap", "member-loop"])
def test_a_stack_of_user_cnns_with_channel_dropout_trains_each_run_as_alone(
    digits, user_model, loop, float64
):
    user_model(user_cnn, loop=loop)
    runs = [make_run(seed, dropout={"input": pc, "hidden1": pd}, epochs=2, batch_size=50,
                     optimizer={"name": "adam", "lr": 0.01}, label_smoothing=0.1, max_norm=1.5)
            for seed, pc, pd in ((3, 0.3, 0.5), (3, 0.0, 0.0), (4, 0.2, 0.1))]  # fmt: skip
    data = prepared(digits, runs[0])
    for result, run in zip(train_runs(runs, data, CPU, "stacked"), runs, strict=True):
        assert_same_history(result, alone(run, data))


def test_early_stopping_divergence_and_restore_best_are_per_member(digits, user_model, float64):
    user_model(user_mlp)
    es = {"monitor": "val_loss"}
    runs = [
        make_run(seed, epochs=10, dropout={"hidden1": 0.3}, optimizer={"name": "sgd", "lr": lr, "momentum": 0.9},
                 early_stopping={**es, "patience": patience})
        for seed, lr, patience in ((0, 0.2, 1), (1, 0.002, 30), (2, 1e200, 30))
    ]  # fmt: skip
    data = prepared(digits, runs[0])
    early, late, bad = train_runs(runs, data, CPU, "stacked")
    assert early.stopped_epoch < 10 == late.stopped_epoch
    assert bad.status == "diverged"
    for result, run in zip((early, late, bad), runs, strict=True):
        assert_same_history(result, alone(run, data))


def test_a_resumed_functional_stack_ends_as_one_never_interrupted(digits, user_model, tmp_path, float64):
    user_model(user_mlp)
    runs = [make_run(seed, epochs=4, dropout={"input": 0.1, "hidden1": 0.4}, early_stopping={"patience": p},
                     optimizer={"name": "adam", "lr": 0.01}) for seed, p in ((0, 1), (1, 5))]  # fmt: skip
    data = prepared(digits, runs[0])
    reference = train_runs(runs, data, CPU, "stacked")

    class Interrupted(Exception):
        pass

    def interrupt(epoch, members):
        if epoch == 2:
            raise Interrupted

    checkpoint = Checkpoint(tmp_path, every=1)
    with pytest.raises(Interrupted):
        train_runs(runs, data, CPU, "stacked", on_epoch=interrupt, checkpoint=checkpoint)
    assert checkpoint.path(runs, "stacked").exists()
    resumed = train_runs(runs, data, CPU, "stacked", checkpoint=checkpoint)
    for got, want in zip(resumed, reference, strict=True):
        assert [dataclasses.asdict(r) for r in got.history] == [dataclasses.asdict(r) for r in want.history]
        assert (got.test_loss, got.best_epoch) == (want.test_loss, want.best_epoch)


NOISE_MODULES = [
    nn.Dropout(0.3),
    nn.Dropout(1.0),
    nn.Dropout1d(0.4),
    nn.Dropout2d(0.25),
    nn.Dropout3d(0.5),
    nn.AlphaDropout(0.2),
    nn.FeatureAlphaDropout(0.3),
    LabDropout(0.35),
    kinds.GaussianDropout(0.3),
    kinds.SpatialDropout(0.4),
    kinds.DropBlock(0.3, block_size=2),
    kinds.AlphaDropout(0.2),
]
NOISE_SHAPES = {nn.Dropout1d: [(4, 3, 5), (3, 5)], nn.Dropout3d: [(2, 3, 2, 2, 2), (3, 2, 2, 2)]}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("module", NOISE_MODULES, ids=lambda m: f"{type(m).__name__}-{m.p}")
def test_drawn_noise_reproduces_the_modules_own_training_forward_bit_for_bit(module, dtype):
    for shape in NOISE_SHAPES.get(type(module), [(4, 3, 5, 5)]):
        x = torch.randn(shape, dtype=dtype)
        module.train()
        torch.manual_seed(7)
        want = module(x)
        g = torch.Generator().manual_seed(7)
        multiplier, offset = draw_noise(module, shape, dtype, CPU, g)
        got = x * multiplier if offset is None else x * multiplier + offset
        assert torch.equal(got, want), shape
        assert torch.equal(torch.rand(3, generator=g), torch.rand(3)), "both drew the same numbers"


def test_a_rate_of_zero_draws_nothing():
    g = torch.Generator().manual_seed(0)
    before = g.get_state()
    assert draw_noise(nn.Dropout(0.0), (4, 5), torch.float32, CPU, g) is None
    assert torch.equal(g.get_state(), before)


class Branching(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        out = self.fc(x.flatten(1))
        return out if out.sum() > 0 else -out  # control flow on the data


class Noisy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(x.flatten(1) + 0.1 * torch.randn_like(x.flatten(1)))  # randomness of its own


def test_what_the_modules_show_is_said_in_one_line():
    with_bn = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(10))
    reason = functional_reason(with_bn)
    assert "BatchNorm2d at '1' updates running statistics" in reason and "one at a time" in reason
    assert (
        functional_reason(nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4, track_running_stats=False)))
        is None
    )
    assert "scaled at 'drop' has no functional form" in functional_reason(
        nn.ModuleDict({"drop": kinds.ScaledDropout(0.2)})
    )
    assert "RReLU at '1'" in functional_reason(nn.Sequential(nn.Linear(4, 4), nn.RReLU()))
    assert functional_reason(UserCNN(0.1, 0.2)) is None and functional_reason(UserMLP()) is None
    for reason in (functional_reason(with_bn), functional_reason(nn.Sequential(nn.RReLU()))):
        assert "\n" not in reason


@pytest.mark.parametrize(
    "model, says", [(Branching, "cannot map this model"), (Noisy, "cannot map this model")]
)
def test_what_only_a_pass_shows_refuses_the_stack_before_it_trains(digits, model, says, caplog):
    runs = [make_run(seed) for seed in (0, 1)]
    data = prepared(digits, runs[0])
    with pytest.raises(NotStackable, match=says) as caught:
        FunctionalEngine(runs, data, CPU, build=lambda run, data: model())
    assert "\n" not in str(caught.value)
    assert f"{caught.value}; these runs train one at a time" in caplog.text  # the runner's log says why


def test_a_stack_of_one_user_model_leaves_the_global_generator_alone(digits):
    run = make_run(0, dropout={"hidden1": 0.5})
    data = prepared(digits, run)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    FunctionalEngine([run], data, CPU, build=lambda run, data: user_mlp(run.settings))
    assert torch.equal(torch.get_rng_state(), before)


def test_members_with_different_kinds_at_one_slot_train_as_alone(digits, monkeypatch, float64):
    """A sweep over parameter-free kinds puts several kinds at one slot of one stack: each member
    draws its own kind's noise (the alpha member's offset, the others' none)."""
    hidden = {
        0: kinds.GaussianDropout(0.3),
        1: nn.Dropout(0.0),
        2: kinds.AlphaDropout(0.2),
        3: nn.Dropout(0.4),
    }

    def factory(settings, seed):
        model = UserMLP(p_in=0.1)
        model.body[2] = copy.deepcopy(hidden[seed])
        return model

    runs = [make_run(seed, epochs=2, optimizer={"name": "adam", "lr": 0.01}) for seed in hidden]
    data = prepared(digits, runs[0])
    monkeypatch.setitem(
        loop.ENGINES,
        "stacked",
        partial(FunctionalEngine, build=lambda run, data: factory(run.settings, run.seed)),
    )
    results = train_runs(runs, data, CPU, "stacked")
    for result, run in zip(results, runs, strict=True):
        monkeypatch.setattr(
            single, "build_network", lambda settings, shape, classes, seed=run.seed: factory(settings, seed)
        )
        assert_same_history(result, alone(run, data))


NETS = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, width, norm):
        super().__init__()
        self.fc = nn.Linear(64, width)
        self.norm = nn.BatchNorm1d(width) if norm else nn.Identity()
        self.drop = nn.Dropout(0.5)
        self.out = nn.Linear(width, 10)

    def forward(self, x):
        return self.out(self.drop(torch.relu(self.norm(self.fc(x.flatten(1))))))


def make_net(width=16):
    return Net(width, norm=False)


def make_bn_net(width=16):
    return Net(width, norm=True)
"""

FACTORY_STUDY = """
name = "{name}"
dataset = "digits"
model = "nets:{factory}"
epochs = 3
batch_size = 64
seeds = [0, 1]

[optimizer]
name = "adam"
lr = 0.01

[grid]
"dropout.drop" = [0.0, 0.4]
"model.width" = [16, 24]
"""


def test_a_factorys_study_stacks_its_runs_and_stores_what_one_at_a_time_stores(
    write_study, tmp_path, float64
):
    (tmp_path / "nets.py").write_text(NETS)
    study = load_study(write_study(FACTORY_STUDY.format(name="user", factory="make_net")))
    runs = expand_runs(study)
    assert trains_alone(runs[0]) is None
    assert len({stack_key(run) for run in runs}) == 2  # the width shapes the network; the rate does not
    records = {}
    for stack in ("off", "auto"):
        with Store(tmp_path / f"{stack}.db") as store:
            outcome = run_study(study, store, device="cpu", progress=False, stack=stack, workers=1)
            assert outcome.statuses == {"completed": 8}
            records[stack] = {r["id"]: r for r in store.records()}
    assert records["off"].keys() == records["auto"].keys()
    for run_id, want in records["off"].items():
        got = records["auto"][run_id]
        assert (got["env"]["engine"], got["env"]["stack"]["size"], want["env"]["engine"]) == (
            "stacked",
            4,
            "single",
        )
        for g, w in zip(got["history"], want["history"], strict=True):
            for metric, value in w.items():
                assert g[metric] == (value if value is None else pytest.approx(value, rel=F64_RTOL)), metric
        assert got["test"]["acc"] == want["test"]["acc"]


def test_the_plan_says_why_a_factory_with_batch_norm_trains_one_at_a_time(write_study, tmp_path):
    (tmp_path / "nets.py").write_text(NETS)
    study = load_study(write_study(FACTORY_STUDY.format(name="bn", factory="make_bn_net")))
    reason = trains_alone(expand_runs(study)[0])
    assert reason == (
        "nets:make_bn_net: BatchNorm1d at 'norm' updates running statistics in training: "
        "this model's runs train one at a time"
    )
    with Store(tmp_path / "bn.db") as store:
        outcome = run_study(study, store, device="cpu", progress=False, stack="auto", workers=1)
        assert outcome.statuses == {"completed": 8} and reason in outcome.plan_notes
        assert {r["env"]["engine"] for r in store.records()} == {"single"}
