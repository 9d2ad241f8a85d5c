"""The stacked engine (``--stack``) against the single engine, the reference (``--stack off``)."""

import dataclasses
import math
import re
import statistics

import pandas as pd
import pytest
import torch
from conftest import TINY_STUDY, make_run, prepared

from dropoutlab import train
from dropoutlab.data.prepare import Split, prepare_data
from dropoutlab.errors import DropoutlabError
from dropoutlab.layers import StackedNet, stacked_dropout, standard
from dropoutlab.layers.stacked import ungroup
from dropoutlab.models import build_network
from dropoutlab.store import Store
from dropoutlab.study import load_study, run_study
from dropoutlab.train import plan, plan_stacks, stack_key, train_run, train_runs
from dropoutlab.train.optim import StackedOptimizer
from dropoutlab.train.stacked import build_stack, order_groups

CPU = torch.device("cpu")
# In float64, batched and single products differ by ~1e-16 per operation; over a few epochs of
# training that grows by a few orders of magnitude at most, far below this.
F64_RTOL = 1e-9

SMALL_CNN = {
    "layers": [
        {"type": "conv2d", "filters": 8, "kernel": 3, "padding": "same"},
        {"type": "batchnorm"},
        {"type": "activation", "name": "relu"},
        {"type": "dropout", "slot": "conv"},
        {"type": "maxpool2d", "size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 32, "activation": "relu"},
        {"type": "dropout", "slot": "dense"},
        {"type": "dense", "units": "classes"},
    ]
}


def train_stack(runs, data, device, **options):
    """``runs`` trained as one stack by the stacked engine."""
    return train_runs(runs, data, device, "stacked", **options)


def assert_same_history(got, want, rtol=F64_RTOL):
    """``got`` lived the life of ``want``: same status, epochs and fates, the same numbers to ``rtol``.

    Meant for runs trained in float64 (the ``float64`` fixture), where two code paths agree to
    far below ``rtol`` on any CPU, so accuracies, the best epoch and early stops agree exactly.
    """
    assert torch.get_default_dtype() == torch.float64, (
        "compare trained numbers in float64 (the float64 fixture)"
    )
    assert got.status == want.status
    assert len(got.history) == len(want.history)
    for g, w in zip(got.history, want.history, strict=True):
        for key, value in dataclasses.asdict(w).items():
            if value is None or key.endswith("acc") or key == "epoch":
                assert getattr(g, key) == value, key
            else:
                assert getattr(g, key) == pytest.approx(value, rel=rtol), key
    assert (got.best_epoch, got.stopped_epoch, got.kept_epoch) == (
        want.best_epoch,
        want.stopped_epoch,
        want.kept_epoch,
    )
    assert got.test_acc == want.test_acc
    assert got.test_loss == (None if want.test_loss is None else pytest.approx(want.test_loss, rel=rtol))


@pytest.mark.parametrize(
    "optimizer",
    [
        {"name": "adam", "lr": 0.003, "weight_decay": 1e-3},
        {"name": "adamw", "lr": 0.003, "weight_decay": 0.05},
        {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3},
    ],
)
def test_rates_zero_give_train_runs_history_with_each_members_own_lr(digits, optimizer, float64):
    lrs = [optimizer["lr"], optimizer["lr"] / 3, optimizer["lr"]]  # one member with its own lr
    runs = [
        make_run(seed, optimizer={**optimizer, "lr": lr}) for seed, lr in zip((0, 1, 2), lrs, strict=True)
    ]
    data = prepared(digits, runs[0])
    results = train_stack(runs, data, CPU)
    assert [r.run for r in results] == runs
    for result, run in zip(results, runs, strict=True):
        assert_same_history(result, train_run(run, data, CPU))
    # the slower learning rate really is that member's own: its first-epoch loss is higher
    assert results[1].history[0].train_loss > results[0].history[0].train_loss


def test_rates_zero_match_for_conv_batchnorm_pool(digits, float64):
    runs = [make_run(seed, model=SMALL_CNN, epochs=2, optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9})
            for seed in (0, 1)]  # fmt: skip
    data = prepared(digits, runs[0])
    for result, run in zip(train_stack(runs, data, CPU), runs, strict=True):
        assert_same_history(result, train_run(run, data, CPU))


@pytest.mark.engine_parity
@pytest.mark.parametrize("model", ["mlp", SMALL_CNN])
def test_float32_engines_agree_on_one_step_within_the_rounding_bound(digits, model):
    """In float32, after one optimizer step, the two engines agree within a bound that follows from
    the arithmetic, not from one machine's run: a sum of n float32 terms in any order is exact to
    a relative n * 2**-24 (Higham, gamma_n); n counts every sum of the step (the batch mean, each
    layer's fan-in, the classes), doubled for the backward pass and again as a safety factor."""
    settings = {"model": model, "epochs": 1, "batch_size": 64, "optimizer": {"name": "sgd", "lr": 0.05}}
    run = make_run(0, **settings)
    full = prepared(digits, run)
    one_batch = Split(full.train.x[:64], full.train.y[:64])  # one epoch = one step
    data = dataclasses.replace(full, train=one_batch, train_eval=one_batch)
    net = build_network(run.settings, data.input_shape, data.num_classes)
    fan_ins = [m.weight[0].numel() for m in net.modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)]
    rtol = 4 * (64 + sum(fan_ins) + data.num_classes) * 2.0**-24
    got, want = train_stack([run, make_run(1, **settings)], data, CPU)[0], train_run(run, data, CPU)
    for key in ("train_loss", "val_loss", "train_eval_loss"):
        assert getattr(got.history[0], key) == pytest.approx(getattr(want.history[0], key), rel=rtol), key
    assert got.test_loss == pytest.approx(want.test_loss, rel=rtol)


def test_optimizer_fused_and_tensor_paths_follow_torch_optim():
    torch.manual_seed(0)
    for name in ("adam", "adamw", "sgd"):
        lrs, wds = [0.1, 0.01, 0.1], [0.01, 0.0, 0.01]
        momenta = [0.9, 0.0, 0.9] if name == "sgd" else [0.0] * 3
        start = torch.randn(3, 4, 5)
        reference = [torch.nn.Parameter(start[i].clone()) for i in range(3)]
        optimizers = [
            torch.optim.SGD([p], lr=lr, momentum=mo, weight_decay=wd) if name == "sgd"
            else (torch.optim.Adam if name == "adam" else torch.optim.AdamW)([p], lr=lr, weight_decay=wd)
            for p, lr, wd, mo in zip(reference, lrs, wds, momenta, strict=True)
        ]  # fmt: skip
        stacks = {fused: start.clone() for fused in (True, False)}
        steppers = {
            fused: StackedOptimizer([p], name, lrs, wds, momenta, fused=fused) for fused, p in stacks.items()
        }
        for _ in range(4):
            grad = torch.randn(3, 4, 5)
            for i, (p, opt) in enumerate(zip(reference, optimizers, strict=True)):
                p.grad = grad[i].clone()
                opt.step()
            for fused, p in stacks.items():
                steppers[fused].step([p], [grad.clone()])
        want = torch.stack([p.detach() for p in reference])
        for p in stacks.values():
            torch.testing.assert_close(p, want, rtol=1e-5, atol=1e-6)


def test_dropout_rate_is_per_member_and_rate_zero_is_identity():
    x = torch.ones(3, 400, 500)
    keep = torch.tensor([1.0, 0.5, 0.1])
    out = stacked_dropout(x, "flat", keep, [torch.Generator().manual_seed(i) for i in range(3)])
    assert torch.equal(out[0], x[0])
    for member, k in ((1, 0.5), (2, 0.1)):
        kept = out[member] != 0
        assert kept.float().mean().item() == pytest.approx(k, abs=0.005)
        assert torch.allclose(out[member][kept], torch.tensor(1 / k))
    # folded into channels (B, M*C, H, W): the rate follows the member's block of channels
    gens = [torch.Generator().manual_seed(i) for i in range(3)]
    image = stacked_dropout(torch.ones(64, 3 * 4, 8, 8), "image", keep, gens)
    blocks = (image != 0).float().mean(dim=(0, 2, 3)).view(3, 4).mean(1)
    assert blocks.tolist() == pytest.approx([1.0, 0.5, 0.1], abs=0.02)


def test_a_members_mask_is_its_own_whatever_its_neighbours():
    keep = torch.tensor([0.5, 0.3, 0.8])
    x = torch.ones(3, 16, 2, 5, 5)  # member layout (M, B, C, H, W)

    def masks(members, layout):
        gens = [torch.Generator().manual_seed(seed) for seed in members]
        k = keep[list(members)]
        if layout == "image":  # the same members folded into channels: (B, M*C, H, W)
            xi = x[list(members)].transpose(0, 1).reshape(16, -1, 5, 5)
            out = stacked_dropout(xi, "image", k, gens)
            return out.reshape(16, len(members), 2, 5, 5).transpose(0, 1)
        return stacked_dropout(x[list(members)], "member", k, gens)

    alone = masks((1,), "member")[0]
    assert torch.equal(masks((0, 1, 2), "member")[1], alone)
    assert torch.equal(masks((2, 1), "member")[1], alone)
    assert torch.equal(masks((0, 1, 2), "image")[1], alone)  # the same draws in either layout
    with pytest.raises(ValueError, match="one generator per member"):
        stacked_dropout(x, "member", keep, [None])


def test_a_run_trains_the_same_in_any_stack(digits, float64):
    runs = [make_run(seed, dropout={"input": 0.2 * seed, "hidden1": 0.5}) for seed in range(4)]
    data = prepared(digits, runs[0])
    together = train_stack(runs, data, CPU)
    apart = train_stack(runs[2:], data, CPU) + train_stack(runs[:2], data, CPU)
    for got, want in zip(apart[2:] + apart[:2], together, strict=True):  # same masks, same numbers
        assert_same_history(got, want)


def test_runs_with_different_parameter_free_kinds_share_a_stack_and_train_as_they_would_apart(
    digits, float64
):
    kinds = ["standard", "scaled", "gaussian", "spatial", "dropblock"]
    runs = [
        make_run(i, model="cnn", epochs=2, dropout={"conv": {"rate": 0.2, "kind": kind}, "dense1": 0.3})
        for i, kind in enumerate(kinds)
    ]
    runs.append(make_run(9, model="cnn", epochs=2, dropout={"conv": 0.0, "dense1": 0.3}))
    assert len({stack_key(run) for run in runs}) == 1
    concrete = make_run(0, model="cnn", dropout={"conv": {"rate": 0.2, "kind": "concrete"}})
    assert stack_key(concrete) != stack_key(make_run(0, model="cnn", dropout={"conv": 0.2}))
    data = prepared(digits, runs[0])
    net, _ = build_stack(runs, data, CPU)
    assert "StackedMixed" in repr(net) and "StackedGaussianDropout" in repr(net)
    together = train_stack(runs, data, CPU)
    for run, got in zip(runs, together, strict=True):  # each run's masks are its own: same numbers
        assert_same_history(got, train_stack([run], data, CPU)[0])
    assert len({round(r.history[-1].train_loss, 6) for r in together}) == len(runs)


def test_runs_with_one_seed_share_their_batches_and_train_as_they_would_apart(digits, monkeypatch, float64):
    runs = [
        make_run(seed, dropout={"hidden1": rate})
        for seed, rate in [(0, 0.0), (0, 0.5), (0, 0.2), (1, 0.5), (1, 0.0)]
    ]
    data = prepared(digits, runs[0])
    seen = []
    forward = StackedNet.forward

    def spy(self, x, layout="shared", group_sizes=None):
        if self.training:
            seen.append((layout, tuple(group_sizes or ()), x.shape[0]))
        return forward(self, x, layout, group_sizes)

    monkeypatch.setattr(StackedNet, "forward", spy)
    together = train_stack(runs, data, CPU)
    assert set(seen) == {("grouped", (3, 2), 2)}  # two batches gathered per step, not five
    for run, got in zip(runs, together, strict=True):
        assert_same_history(got, train_stack([run], data, CPU)[0])


def test_order_groups_finds_consecutive_equal_orders():
    a, b = torch.randperm(50, generator=torch.Generator().manual_seed(0)), torch.arange(50)
    distinct, sizes = order_groups(torch.stack([a, a, b, b, b, a]))
    assert sizes == [2, 3, 1]
    assert torch.equal(distinct, torch.stack([a, b, a]))
    assert order_groups(a.unsqueeze(0))[1] == [1]


@pytest.mark.parametrize("in_out", [False, True])
def test_a_grouped_input_is_each_members_input_forward_and_backward(digits, monkeypatch, in_out, float64):
    """The grouped dense product (one input read by a group of members) gives the logits and
    gradients of the same network fed one copy of the input per member."""
    monkeypatch.setattr(standard, "IN_OUT_ABOVE", 0 if in_out else 1 << 30)
    runs = [make_run(seed, dropout={"hidden1": rate}) for seed, rate in [(0, 0.5), (1, 0.2), (2, 0.0)]]
    data = prepared(digits, runs[0])
    grouped = data.train.x[:32].reshape(2, 16, -1).clone().requires_grad_(True)
    per_member = ungroup(grouped, [2, 1])  # members 0 and 1 read group 0, member 2 group 1
    outputs = {}
    for layout, x, sizes in [("grouped", grouped, [2, 1]), ("member", per_member, None)]:
        net, _ = build_stack(runs, data, CPU)  # the same weights and mask generators each time
        assert net.layers.dense_1.in_out == in_out
        logits = net(x, layout, sizes)
        grads = torch.autograd.grad(logits.square().sum(), [grouped, *net.parameters()])
        outputs[layout] = (logits, *grads)
    for got, want in zip(outputs["grouped"], outputs["member"], strict=True):
        torch.testing.assert_close(got, want, rtol=F64_RTOL, atol=1e-12)


def test_high_rate_member_trains_worse_than_its_rate_zero_twin(digits, float64):
    runs = [make_run(0, dropout={"hidden1": rate, "input": rate}) for rate in (0.0, 0.9)]
    data = prepared(digits, runs[0])
    low, high = train_stack(runs, data, CPU)
    assert_same_history(low, train_run(runs[0], data, CPU))  # the rate-0 member is untouched by its twin
    assert high.history[-1].train_loss > low.history[-1].train_loss + 0.3
    assert high.history[0].train_acc < low.history[0].train_acc - 0.1


def test_early_stopping_is_per_member_and_keeps_the_best_weights(digits, float64):
    es = {"monitor": "val_loss"}
    runs = [
        make_run(0, epochs=25, optimizer={"name": "adam", "lr": 0.02}, early_stopping={**es, "patience": 1}),
        make_run(
            1, epochs=25, optimizer={"name": "adam", "lr": 0.001}, early_stopping={**es, "patience": 30}
        ),
        make_run(2, epochs=25, optimizer={"name": "adam", "lr": 0.02}, early_stopping={**es, "patience": 2}),
    ]
    data = prepared(digits, runs[0])
    results = train_stack(runs, data, CPU)
    early, late, middle = results
    assert early.stopped_epoch < 25 and late.stopped_epoch == 25
    assert early.stopped_epoch == early.best_epoch + 1
    assert middle.stopped_epoch == middle.best_epoch + 2
    for result, run in zip(results, runs, strict=True):  # each member is its own train_run
        assert_same_history(result, train_run(run, data, CPU))
    # the kept weights are the best epoch's: the same run trained for best_epoch epochs scores the same
    plain = make_run(0, epochs=early.best_epoch, optimizer={"name": "adam", "lr": 0.02})
    assert train_run(plain, data, CPU).test_loss == pytest.approx(early.test_loss, rel=F64_RTOL)


def test_a_diverging_member_does_not_poison_the_others(digits, float64):
    runs = [make_run(seed, optimizer={"name": "sgd", "lr": lr}, epochs=3)
            for seed, lr in ((0, 0.05), (1, 1e12), (2, 0.05))]  # fmt: skip
    data = prepared(digits, runs[0])
    ok_a, bad, ok_b = train_stack(runs, data, CPU)
    assert bad.status == "diverged" and (bad.test_loss, bad.test_acc) == (None, None)
    assert bad.history[-1].train_loss is None and bad.stopped_epoch == len(bad.history) <= 3
    assert_same_history(ok_a, train_run(runs[0], data, CPU))
    assert_same_history(ok_b, train_run(runs[2], data, CPU))


def test_stacked_and_one_by_one_agree_in_distribution(digits):
    """Per configuration, mean results over 6 seeds agree within 4 standard errors.

    With dropout the masks of a stack differ from train_run's, so runs differ seed by seed;
    what must agree is the distribution. The tolerance is 4 standard errors of the difference
    of two means (two-sided p < 1e-4 under the same distribution) plus a floor for splits
    where every seed scores alike. The runs are seeded, so the test cannot flake; the last
    assertion shows it has power: a wrong rate (0 instead of 0.6) would be far outside it.
    """
    seeds = range(6)
    configs = [{"input": 0.2, "hidden1": 0.6}, {"hidden1": 0.0}]
    runs = {i: [make_run(seed, epochs=6, dropout=rates) for seed in seeds] for i, rates in enumerate(configs)}
    data = prepared(digits, runs[0][0])
    one_by_one = {i: [train_run(run, data, CPU) for run in group] for i, group in runs.items()}
    together = train_stack(
        runs[1] + runs[0], data, CPU
    )  # both configurations in one stack, as the runner does
    in_stack = {1: together[: len(seeds)], 0: together[len(seeds) :]}

    def mean_and_se(results, metric):
        values = [metric(r) for r in results]
        return statistics.mean(values), statistics.stdev(values) / math.sqrt(len(values))

    metrics = {
        "test_acc": (lambda r: r.test_acc, 0.01),
        "train_loss": (lambda r: r.history[-1].train_loss, 0.01),  # dropout on: sensitive to the rate
    }
    for i in runs:
        for name, (metric, floor) in metrics.items():
            m_ref, se_ref = mean_and_se(one_by_one[i], metric)
            m_stk, se_stk = mean_and_se(in_stack[i], metric)
            tolerance = 4 * math.hypot(se_ref, se_stk) + floor
            assert abs(m_stk - m_ref) <= tolerance, (configs[i], name, m_stk, m_ref, tolerance)
    dropout_loss = mean_and_se(in_stack[0], metrics["train_loss"][0])[0]
    plain_loss = mean_and_se(one_by_one[1], metrics["train_loss"][0])[0]
    assert dropout_loss - plain_loss > 0.1


def test_stack_key_separates_what_cannot_share_a_stack():
    base = make_run(0)
    same = [
        make_run(5),
        make_run(0, dropout={"hidden1": 0.5}),
        make_run(0, optimizer={"name": "adam", "lr": 0.01, "weight_decay": 0.1}),
    ]
    different = [
        make_run(0, batch_size=32),
        make_run(0, epochs=4),
        make_run(0, optimizer={"name": "sgd"}),
        make_run(0, model="cnn"),
        make_run(0, normalize="symmetric"),
        make_run(0, eval_train=False),
    ]
    assert all(stack_key(run) == stack_key(base) for run in same)
    assert all(stack_key(run) != stack_key(base) for run in different)
    assert make_run(0, early_stopping={"patience": 2}).settings.early_stopping
    assert stack_key(make_run(0, early_stopping={"patience": 2})) == stack_key(
        make_run(1, early_stopping={"patience": 9})
    )


def test_plan_stacks_groups_by_key_and_splits_evenly(digits, monkeypatch):
    a = [make_run(seed, dropout={"hidden1": 0.1 * seed}) for seed in range(7)]
    b = [make_run(seed, batch_size=32) for seed in range(3)]
    data = prepared(digits, a[0])
    stacks = plan_stacks(a + b, data, CPU, 3)
    assert [len(s) for s in stacks] == [3, 3, 2, 2]  # largest first
    assert sorted(run.id for s in stacks for run in s) == sorted(run.id for run in a + b)
    rate_major = [make_run(seed, dropout={"hidden1": rate}) for rate in (0.0, 0.5) for seed in (0, 1)]
    by_seed = plan_stacks(rate_major, data, CPU, 2)  # runs of one seed, which share batches, together
    assert by_seed == [[rate_major[0], rate_major[2]], [rate_major[1], rate_major[3]]]
    assert all(len({stack_key(r) for r in s}) == 1 for s in stacks)
    assert [len(s) for s in plan_stacks(a + b, data, CPU, "auto")] == [7, 3]
    many = [make_run(seed) for seed in range(25)]  # a CPU stack holds at most AUTO_MAX["cpu"] runs
    assert [len(s) for s in plan_stacks(many, data, CPU, "auto")] == [9, 8, 8]
    # auto is bounded by the memory budget: room for two members -> stacks of at most two
    per_member, _ = plan.member_bytes(a[0], data)
    monkeypatch.setattr(plan, "CPU_BUDGET", 2 * per_member + 1)
    assert [len(s) for s in plan_stacks(a, data, CPU, "auto")] == [2, 2, 2, 1]
    with pytest.raises(
        DropoutlabError,
        match=re.escape("--stack: 0 is not allowed; allowed: auto, off or a whole number >= 1"),
    ):
        plan_stacks(a, data, CPU, 0)


def test_auto_plans_keep_every_worker_busy_to_the_end(digits):
    runs = [make_run(seed) for seed in range(10)]
    data = prepared(digits, runs[0])
    assert [len(s) for s in plan_stacks(runs, data, CPU, "auto", workers=1)] == [10]
    assert [len(s) for s in plan_stacks(runs, data, CPU, "auto", workers=2)] == [5, 5]
    assert [len(s) for s in plan_stacks(runs[:3], data, CPU, "auto", workers=4)] == [1, 1, 1]
    many = [make_run(seed) for seed in range(25)]  # 3 stacks by size, rounded up to 4 for 2 workers
    assert [len(s) for s in plan_stacks(many, data, CPU, "auto", workers=2)] == [7, 6, 6, 6]
    # stacks come largest first, whatever their group
    mixed = plan_stacks(runs[:2] + [make_run(seed, batch_size=32) for seed in range(5)], data, CPU, 3)
    assert [len(s) for s in mixed] == [3, 2, 2]


def test_on_epoch_is_called_once_per_stack_epoch_and_wall_time_is_shared(digits):
    runs = [make_run(seed, epochs=2) for seed in (0, 1)]
    calls = []
    results = train_stack(runs, prepared(digits, runs[0]), CPU, on_epoch=lambda *args: calls.append(args))
    assert calls == [(1, 2), (2, 2)]
    assert results[0].wall_s == results[1].wall_s > 0
    assert [r.env["stack"]["position"] for r in results] == [0, 1]
    assert results[0].env["stack"]["size"] == 2 and results[0].env["engine"] == "stacked"
    assert results[0].env["dtype"] == "float32" and results[0].env["threads"] == torch.get_num_threads()
    assert results[0].env["stack"]["wall_s"] == pytest.approx(2 * results[0].wall_s)


def test_runner_stack_auto_stores_what_stack_off_stores(tiny_study, tmp_path, float64):
    study = load_study(tiny_study)
    with Store(tmp_path / "auto.db") as auto, Store(tmp_path / "off.db") as off:
        outcome = run_study(study, auto, device="cpu", progress=False, stack="auto", workers=1)
        assert outcome.statuses == {"completed": 4}
        run_study(study, off, device="cpu", progress=False, stack="off")
        got, want = auto.runs().set_index("id"), off.runs().set_index("id")
        assert sorted(got.index) == sorted(want.index)
        plain = want.index[want["dropout.hidden1"] == 0.0]  # rate 0: the same numbers
        for column in ("test_loss", "final_val_loss", "final_train_loss"):
            assert got.loc[plain, column].tolist() == pytest.approx(
                want.loc[plain, column].tolist(), rel=F64_RTOL
            )
        assert len(auto.history()) == len(off.history()) == 8
        assert {r["env"]["stack"]["size"] for r in auto.records()} == {4}


def test_a_renamed_study_draws_the_same_masks_and_gives_the_same_numbers(write_study, tmp_path):
    """The study's name is no seed: masks follow from each run's settings and seed alone, so a
    renamed copy of a study with dropout stores exactly the same numbers (same CPU, same plan)."""
    body = TINY_STUDY.replace('name = "tiny"', "")
    got = {}
    with Store(tmp_path / "s.db") as store:
        for name in ("sweep", "sweep-copy"):
            run_study(load_study(write_study(f'name = "{name}"' + body, f"{name}.toml")), store,
                      device="cpu", progress=False, workers=1)  # fmt: skip
            got[name] = store.runs(name).sort_values(["config", "seed"]).reset_index(drop=True)
    columns = ["config", "seed", "test_loss", "test_acc", "final_train_loss", "final_val_loss"]
    assert (got["sweep"]["dropout.hidden1"] > 0).sum() == 2  # the masks are really drawn
    pd.testing.assert_frame_equal(got["sweep"][columns], got["sweep-copy"][columns], check_exact=True)


@pytest.mark.parametrize(("stack", "workers"), [(3, 1), (3, 2), (1, 2), ("off", 1)])
def test_a_study_gives_the_same_numbers_however_it_is_planned(tiny_study, tmp_path, float64, stack, workers):
    """Stacks of any size, one or two worker processes, a lone stack in the parent with every
    thread: each run's numbers are the same (exactly for accuracies, to float64 rounding for
    losses). ``--stack off`` trains with the single engine, whose masks differ: its runs without
    dropout are the same, the others agree only in distribution (tested above)."""
    study = load_study(tiny_study)
    with Store(tmp_path / "ref.db") as ref, Store(tmp_path / "other.db") as other:
        run_study(study, ref, device="cpu", progress=False, stack="auto", workers=1)
        run_study(study, other, device="cpu", progress=False, stack=stack, workers=workers)
        want, got = ref.runs().set_index("id"), other.runs().set_index("id").loc[ref.runs()["id"]]
    same = want.index if stack != "off" else want.index[want["dropout.hidden1"] == 0.0]
    assert len(same) >= 2
    assert got.loc[same, "test_acc"].tolist() == want.loc[same, "test_acc"].tolist()
    for column in ("test_loss", "final_train_loss", "final_val_loss"):
        assert got.loc[same, column].tolist() == pytest.approx(want.loc[same, column].tolist(), rel=F64_RTOL)


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
        ),
    ],
)
def test_bf16_autocast_reaches_the_float32_accuracy_of_the_same_runs(digits, device, monkeypatch):
    """bf16 autocast (the CUDA default; on the CPU only on request) against float32 on the same
    runs: final test accuracy within 2 points per run (bf16 keeps 8 bits of mantissa; 2 points
    is 7 of 360 digits)."""
    from dropoutlab.train.stacked import StackedEngine

    runs = [make_run(seed, model=SMALL_CNN, dropout={"conv": 0.1}, epochs=5) for seed in (0, 1, 2)]
    s = runs[0].settings
    dev = torch.device(device)
    data = prepare_data(digits, s.validation, s.split_seed, s.normalize, dev)
    default = "bf16-autocast" if device == "cuda" else "float32"
    assert StackedEngine(runs, data, dev).dtype == default
    results = {}
    for autocast in (True, False):
        monkeypatch.setitem(
            train.ENGINES, "stacked", lambda r, d, v, a=autocast: StackedEngine(r, d, v, autocast=a)
        )
        results[autocast] = train_stack(runs, data, dev)
    assert {r.env["dtype"] for r in results[True]} == {"bf16-autocast"}
    assert {r.env["dtype"] for r in results[False]} == {"float32"}
    for a, b in zip(results[True], results[False], strict=True):
        assert a.status == b.status == "completed" and b.test_acc > 0.7
        assert abs(a.test_acc - b.test_acc) <= 0.02


def test_every_layout_of_the_stack_computes_the_members_own_networks(digits, float64):
    """Grouped or per-member convolutions, channels-last (the CUDA layout), shared or per-member input:
    all give what each member's own nn.Sequential gives."""
    from dropoutlab.models import build_model

    runs = [make_run(seed, model=SMALL_CNN) for seed in (0, 1, 2)]
    data = prepared(digits, runs[0])
    x = data.train.x[:16]
    _, template = build_stack(runs, data, CPU)
    models = []
    for run in runs:
        torch.manual_seed(run.seed)
        models.append(
            build_model(run.settings.layers, run.settings.dropout, data.input_shape, data.num_classes)
        )
    for training in (False, True):  # batch norm: running statistics, then batch statistics
        for model in models:
            model.train(training)
        want = torch.stack([model(x) for model in models])
        for channels_last in (False, True):
            for conv_loop in (False, True):
                variant = StackedNet.from_members(template, models, CPU, channels_last, conv_loop)
                for i, model in enumerate(models):  # a member's weights come back as its own state_dict
                    got = variant.member_state(i)
                    assert got.keys() == model.state_dict().keys()
                    assert all(torch.equal(got[k], v) for k, v in model.state_dict().items())
                variant.train(training)
                member = variant(torch.stack([x] * 3), "member")
                torch.testing.assert_close(member, want, rtol=F64_RTOL, atol=1e-12)
                grouped = variant(x.unsqueeze(0), "grouped", group_sizes=[3])
                torch.testing.assert_close(grouped, want, rtol=F64_RTOL, atol=1e-12)
                if not training:
                    torch.testing.assert_close(variant(x, "shared"), want, rtol=F64_RTOL, atol=1e-12)


PARITY_STUDY = """
name = "parity"
dataset = "digits"
model = "mlp"
epochs = 12
batch_size = 64
seeds = [0, 1, 2]

[early_stopping]
monitor = "val_loss"
patience = 2

[[grid]]
optimizer = [{name = "adam", lr = 0.005}, {name = "sgd", lr = 0.05, momentum = 0.9, weight_decay = 0.001}]

[[grid]]  # diverges at once in float32 and float64 alike: the second product overflows
optimizer = [{name = "sgd", lr = 1e200}]
"""


def test_one_study_with_stack_off_and_auto_gives_every_run_the_same_lifecycle(write_study, tmp_path, float64):
    """The one loop, with K = 1 (single engine) or K runs (stacked): same status, epochs,
    early-stopping epoch and restored epoch for every run; histories equal within rounding.

    In float64 and with fates far from their thresholds (checked below), no last-digit difference
    between the engines can change when a run stops."""
    study = load_study(write_study(PARITY_STUDY))
    results = {}
    for stack in ("off", "auto"):
        with Store(tmp_path / f"{stack}.db") as store:
            run_study(study, store, device="cpu", progress=False, stack=stack, workers=1)
            results[stack] = {r["id"]: r for r in store.records()}
    off, auto = results["off"], results["auto"]
    assert off.keys() == auto.keys() and len(off) == 9
    assert {r["status"] for r in off.values()} == {"completed", "diverged"}
    assert any(r["stopped_epoch"] < 12 for r in off.values() if r["status"] == "completed")  # early stops
    for run_id, want in off.items():
        got = auto[run_id]
        for key in ("status", "best_epoch", "stopped_epoch"):
            assert got[key] == want[key], (key, want["params"], want["seed"])
        assert [h["epoch"] for h in got["history"]] == [h["epoch"] for h in want["history"]]
        for g, w in zip(got["history"], want["history"], strict=True):
            for metric, value in w.items():
                assert g[metric] == (value if value is None else pytest.approx(value, rel=F64_RTOL)), metric
        assert got["test"]["acc"] == want["test"]["acc"]
        if want["status"] == "completed":  # each epoch's val_loss far from the best before it
            losses = [h["val_loss"] for h in want["history"]]
            margins = [abs(loss - min(losses[:i])) / min(losses[:i]) for i, loss in enumerate(losses) if i]
            assert min(margins) > 1e-6, (want["params"], want["seed"])
        assert (got["env"]["engine"], want["env"]["engine"]) == ("stacked", "single")
    runs_off = Store(tmp_path / "off.db").runs().set_index("id")
    runs_auto = Store(tmp_path / "auto.db").runs().set_index("id")
    assert runs_auto["kept_epoch"].equals(runs_off.loc[runs_auto.index, "kept_epoch"])


def test_dropout_of_a_grouped_input_equals_dropout_of_its_copies():
    keep = torch.tensor([1.0, 0.5, 0.2])
    x = torch.randn(2, 16, 30)  # two groups: members 0-1 read group 0, member 2 group 1

    def gens():
        return [torch.Generator().manual_seed(seed) for seed in (7, 8, 9)]

    grouped = stacked_dropout(x, "grouped", keep, gens(), group_sizes=[2, 1])
    copied = stacked_dropout(ungroup(x, [2, 1]), "flat", keep, gens())
    assert torch.equal(grouped, copied)
    assert torch.equal(grouped[0], x[0])  # keep 1: untouched


def test_a_fixed_rate_dropout_keeps_its_rate_whatever_the_slots_before_it(digits):
    layers = {"layers": [{"type": "flatten"}, {"type": "dropout", "slot": "inp"},
                         {"type": "dense", "units": 32, "activation": "relu"}, {"type": "dropout", "rate": 0.5},
                         {"type": "dense", "units": "classes"}]}  # fmt: skip
    runs = [make_run(0, model=layers, dropout={"inp": rate}) for rate in (0.0, 0.2)]
    net, _ = build_stack(runs, prepared(digits, runs[0]), CPU)
    fixed = [layer for layer in net.layers if "rates=[0.5, 0.5]" in repr(layer)]
    assert len(fixed) == 1, net  # both members keep their 0.5, the member at inp = 0 too
