"""Stack planning: stacks with a checkpoint are kept as they were planned, within the limits."""

import torch
from conftest import make_run, prepared

from dropoutlab.train.plan import plan_stacks

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
