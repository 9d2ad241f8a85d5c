"""How much a study's float32 numbers move with the way it is planned, on one machine.

A run's masks, initial weights and batch order follow from its settings and seed alone, so
its numbers do not depend on which runs share its stack, nor on the study's name. What can
still move them is float rounding: a stacked product over 3 members adds in another order
than one over 6, one thread adds in another order than two, and the single engine
(``--stack off``) uses other masks altogether. This script runs one study under several
plans, each in its own store, and compares every run with the reference plan
(``--stack auto --workers 1``): how many runs are bit-identical, and the largest
differences of test accuracy (percentage points) and of test loss (relative).

Command (from the repository root; about a minute on 2 cores)::

    python benchmarks/plan_differences.py [examples/digits_dropout_comparison_mlp.toml]

The figures quoted in docs/study-files.md ("Which runs share a stack") come from it.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

import torch

from dropoutlab.store import Store
from dropoutlab.study import load_study, run_study

HERE = Path(__file__).resolve().parent
PLANS = [("auto", 1), ("auto", 2), (3, 1), (3, 2), (1, 1), ("off", 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "study", nargs="?", default=str(HERE.parent / "examples/digits_dropout_comparison_mlp.toml")
    )
    args = parser.parse_args()
    study = load_study(args.study)
    frames = {}
    with tempfile.TemporaryDirectory() as tmp:
        for stack, workers in PLANS:
            with Store(Path(tmp) / f"{stack}-{workers}.db") as store:
                run_study(study, store, device="cpu", progress=False, stack=stack, workers=workers)
                frames[(stack, workers)] = store.runs().set_index("id").sort_index()
    print(f"{study.name}: {len(frames[PLANS[0]])} runs; {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads")  # fmt: skip
    reference = frames[PLANS[0]]
    no_dropout = reference.index[
        (reference[[c for c in reference if c.startswith("dropout.")]] == 0).all(axis=1)
    ]
    print("plan (vs --stack auto --workers 1)   identical runs   max |d test acc|   max rel d test loss")
    for (stack, workers), frame in frames.items():
        if (stack, workers) == PLANS[0]:
            continue
        rows = reference.index if stack != "off" else no_dropout  # other masks: only rate 0 compares
        a, b = frame.loc[rows], reference.loc[rows]
        same = int(((a["test_loss"] == b["test_loss"]) & (a["test_acc"] == b["test_acc"])).sum())
        d_acc = 100 * (a["test_acc"] - b["test_acc"]).abs().max()
        d_loss = ((a["test_loss"] - b["test_loss"]).abs() / b["test_loss"]).max()
        label = f"--stack {stack} --workers {workers}" + (" (rate-0 runs)" if stack == "off" else "")
        print(f"{label:<38} {same:>4} of {len(rows):<4}   {d_acc:>10.2f} pp   {d_loss:>16.1e}")


if __name__ == "__main__":
    sys.exit(main())
