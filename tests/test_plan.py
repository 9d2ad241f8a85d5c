"""Stack planning: stacks with a checkpoint kept as planned; the peak memory a plan budgets."""

import torch
from conftest import make_run, prepared

from dropoutlab.cli import main
from dropoutlab.models import family_outputs
from dropoutlab.study import expand_runs, load_study
from dropoutlab.train.plan import attention_values, peak_memory, plan_stacks

CPU = torch.device("cpu")


def ids(stacks):
    return [[run.id for run in stack] for stack in stacks]


def test_a_checkpointed_stack_is_kept_where_a_fresh_plan_would_cut_it(digits):
    runs = [make_run(seed) for seed in range(5)]
    data = prepared(digits, runs[0])
    assert ids(plan_stacks(runs, data, CPU, "auto", workers=2)) == ids([runs[:3], runs[3:]])
    saved = [runs[4], runs[0], runs[2]]  # in its own order: a checkpoint's state is by position
    planned = plan_stacks(runs, data, CPU, "auto", workers=2, resume=[saved])
    assert ids(planned) == ids([saved, [runs[1]], [runs[3]]])


def test_a_checkpointed_stack_is_not_kept_beyond_the_limits_or_the_runs_to_train(digits):
    runs = [make_run(seed) for seed in range(4)]
    data = prepared(digits, runs[0])
    fresh = ids(plan_stacks(runs, data, CPU, 2))
    assert ids(plan_stacks(runs, data, CPU, 2, resume=[runs[:3]])) == fresh  # --stack 2 now
    one_stored = plan_stacks(runs[1:], data, CPU, "auto", resume=[runs[:3]])
    assert ids(one_stored) == ids([runs[1:]])
    other = make_run(0, batch_size=32)
    mixed = plan_stacks([*runs, other], data, CPU, "auto", resume=[[runs[0], other]])  # not one stack key
    assert ids(mixed) == ids([runs, [other]])


# --- the peak memory --dry-run budgets ------------------------------------------------------

WIDE_1X1 = """
name = "wide"
dataset = "digits"
batch_size = 1
epochs = 1
seeds = 2
[[model.layers]]
type = "conv2d"
filters = 4096
kernel = 1
activation = "relu"
[[model.layers]]
type = "flatten"
[[model.layers]]
type = "dense"
units = "classes"
"""


def test_the_peak_counts_the_evaluation_batch_not_only_batch_size(write_study):
    run = expand_runs(load_study(write_study(WIDE_1X1)))[0]
    peak = peak_memory(run, (1, 8, 8), 10)
    widest = 4096 * 8 * 8  # the convolution's output per sample
    assert peak.eval_rows == 2048 and peak.evaluate >= 4 * 2048 * widest
    assert peak.evaluate > 100 * peak.train  # batches of 1: the training step is tiny
    assert peak.total >= peak.state + peak.evaluate
    assert "evaluation batch (2048 rows)" in peak.setting
    stacked = peak_memory(run, (1, 8, 8), 10, members=4)  # a stacked pass: at least 64 rows per member
    assert (
        stacked.eval_rows >= 64 and stacked.evaluate >= 4 * 64 * widest * 4 and "--stack" in stacked.setting
    )


def test_the_peak_counts_attention_matrices_by_the_square_of_the_tokens():
    small, large = (3, 32, 32), (3, 64, 64)  # 8x8 + 1 and 16x16 + 1 tokens
    assert attention_values("transformer", small) == 2 * 4 * 65**2 * 3
    assert attention_values("transformer", large) == 2 * 4 * 257**2 * 3
    assert attention_values("mlp", large) == 0
    run = make_run(0, model="transformer", batch_size=64)
    a, b = peak_memory(run, small, 10), peak_memory(run, large, 10)
    assert b.train - a.train >= 4 * 3 * 64 * (attention_values("transformer", large) - attention_values(
        "transformer", small))  # fmt: skip


def test_the_peak_counts_a_recurrent_state_at_every_time_step():
    params, outputs = family_outputs("gru", (1, 8, 8), 10)
    hidden = 64
    assert outputs.count(hidden) >= 8  # one state per row of the image, kept for the backward pass
    assert peak_memory(make_run(0, model="gru"), (1, 8, 8), 10).train >= 4 * 3 * 64 * 8 * hidden


def test_the_dry_run_prints_the_peak_per_worker_and_in_total(capsys, write_study, tmp_path):
    path = write_study('name = "small"\ndataset = "digits"\nmodel = "mlp"\nseeds = 4\n')
    code = main(["run", str(path), "--dry-run", "--store", str(tmp_path / "s.db"), "--device", "cpu",
                 "--workers", "1", "--stack", "2"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith("memory:"))
    assert "per worker (a stack of 2 runs)" in line and "for 1 worker at once" in line and "available" in line


def test_the_dry_run_refuses_a_plan_that_does_not_fit_naming_the_setting(
    capsys, write_study, tmp_path, monkeypatch
):
    import dropoutlab.train.plan as plan

    monkeypatch.setattr(plan, "available_memory", lambda device: 20 << 20)  # a machine with 20 MiB free
    path = write_study(WIDE_1X1)
    code = main(["run", str(path), "--dry-run", "--store", str(tmp_path / "s.db"), "--device", "cpu",
                 "--stack", "off", "--workers", "1"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "more than the 20.0 MiB available" in err
    assert "the evaluation batch (2048 rows) dominates" in err


# --- plan checks counted once per architecture; stacks sized by the same peak ------------------


def test_a_grid_counts_each_family_network_once_however_many_points_share_it(write_study, monkeypatch):
    import dataclasses

    from dropoutlab.models import builder
    from dropoutlab.models.families import FAMILIES
    from dropoutlab.train import plan

    built = []
    family = FAMILIES["resnet"]

    def build(*args):
        built.append(args[0])
        return family.build(*args)

    monkeypatch.setitem(FAMILIES, "resnet", dataclasses.replace(family, build=build))
    builder._family_outputs.cache_clear()
    plan._network_footprint.cache_clear()
    path = write_study('name = "g"\ndataset = "digits"\nmodel = "resnet"\nseeds = 1\n[grid]\n'
                       '"dropout.head" = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]\n"optimizer.lr" = [0.001, 0.01]\n')  # fmt: skip
    runs = expand_runs(load_study(path))  # each point's size is checked when the study is read
    assert len(runs) == 12 and built == [(1, 8, 8)]
    memory, _ = plan.study_memory(runs, CPU, "off", 2)
    assert built == [(1, 8, 8)] and memory.largest.members == 1
    builder._family_outputs.cache_clear()  # the next test counts with the real family
    plan._network_footprint.cache_clear()


def test_auto_stacks_are_sized_by_the_peak_the_dry_run_budgets(write_study, monkeypatch, digits):
    from dropoutlab.train import plan

    monkeypatch.setattr(plan, "CPU_CACHE_BUDGET", 1 << 40)  # memory alone decides here
    wide = expand_runs(load_study(write_study(WIDE_1X1.replace("seeds = 2", "seeds = 7"))))
    data = prepared(digits, wide[0])
    shape = (data.input_shape, data.num_classes)
    # counting a training batch alone, 12 of these fit the budget; with their evaluation pass, not 2
    assert plan.CPU_BUDGET // plan.member_bytes(wide[0], data)[0] >= plan.AUTO_MAX["cpu"]
    assert peak_memory(wide[0], *shape, members=2).total > plan.CPU_BUDGET
    assert [len(s) for s in plan_stacks(wide, data, CPU, "auto", workers=1)] == [1] * 7
    mlp = make_run(0)
    for budget in (4 << 20, 8 << 20, 16 << 20, 32 << 20):
        monkeypatch.setattr(plan, "CPU_BUDGET", budget)
        limit = plan.stack_limit(mlp, data, CPU, "auto")
        assert 2 <= limit <= plan.AUTO_MAX["cpu"], budget
        assert peak_memory(mlp, *shape, members=limit).total <= budget
        assert limit == plan.AUTO_MAX["cpu"] or peak_memory(mlp, *shape, members=limit + 1).total > budget
