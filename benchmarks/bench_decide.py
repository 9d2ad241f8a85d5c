"""Seeds spent by the sequential decision (``dropoutlab.report.decide``) against a fixed design
with the same power, simulated through ``decide`` alone (nothing trains).

    python benchmarks/bench_decide.py [--studies 1000] [--fixtures /work/fixtures] [--json out.json]

The spread of the paired differences in test accuracy is measured from real digits MLP
studies when their stores are at hand (``--fixtures``: ``digits_dropout_comparison_mlp.db``
and ``demo/dropoutlab.db``, made by running ``examples/digits_dropout_comparison_mlp.toml``
and the demo), else ``--sd``. Each simulated study draws every configuration's accuracy for
every possible seed (normal, the measured spread), starts with 3 seeds, and trains exactly the
seeds each ``Decision`` asks for until it says done. The fixed design trains the seeds that give
the same power (a true difference of 0 called equivalent in 80 % of studies) in one look at
the same alpha (``recommend_max_seeds(..., sequential=False)``).

Two grids: the with/without dropout comparison (2 configurations) and the Fashion-MNIST
comparison's MLP rate sweep of ``bench_mlp.py`` (6 configurations: ``dropout.hidden1`` = 0,
0.1, 0.2, 0.3, 0.5, 0.7), each with no effect, one rate better than the others by ``min_effect``,
and by 2 x ``min_effect`` (the others equal to the baseline). The simulated error rates are printed beside the
seeds. The CPU time saved uses the per-run time of ``bench_mlp.py`` in RESULTS.md (``--run-s``).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dropoutlab.report.decide import Design, decide, recommend_max_seeds
from dropoutlab.report.stats import default_baseline
from dropoutlab.store import Store

# bench_mlp.py in RESULTS.md: 24 runs (6 rates x 4 seeds, 2 epochs) in 17.4 s with --stack auto
# on 2 cores, the median of two rounds.
MLP_SWEEP_RUN_S = 17.4 / 24
MLP_SWEEP_CORES = 2


def measured_spread(folder: Path) -> tuple[float, int, list[str]]:
    """Pooled SD of the paired differences (each configuration minus the study's no-dropout
    baseline, by seed) over the digits MLP stores in ``folder``; its degrees of freedom and
    what it was pooled from."""
    sum_sq, dof, used = 0.0, 0, []
    for name in ("digits_dropout_comparison_mlp.db", "demo/dropoutlab.db"):
        path = folder / name
        if not path.exists():
            continue
        runs = Store(path).runs()
        runs = runs[runs["status"] == "completed"]
        wide = runs.pivot_table(index="seed", columns="config", values="test_acc")
        base = default_baseline(runs)
        for config in wide.columns.drop(base):
            diff = (wide[config] - wide[base]).dropna()
            if len(diff) >= 2:
                sum_sq += float(diff.var(ddof=1)) * (len(diff) - 1)
                dof += len(diff) - 1
        used.append(f"{name} ({wide.shape[1]} configurations x {wide.shape[0]} seeds)")
    if not dof:
        return math.nan, 0, used
    return math.sqrt(sum_sq / dof), dof, used


def one_study(means: np.ndarray, sd: float, design: Design, rng: np.random.Generator) -> tuple[int, object]:
    """Runs one sequential study; the runs it trained and its last decision."""
    k = len(means)
    names = [design.baseline, *(f"c{i}" for i in range(1, k))]
    # each configuration gets half the paired variance: differences have SD sd
    acc = rng.normal(means[:, None], sd / math.sqrt(2), (k, design.max_seeds))
    count = dict.fromkeys(names, design.start)
    while True:
        config = [c for c in names for _ in range(count[c])]
        seeds = [s for c in names for s in range(count[c])]
        values = acc[[names.index(c) for c in config], seeds]
        runs = pd.DataFrame({"config": config, "seed": seeds, "status": "completed", "test_acc": values})
        d = decide(runs, design)
        if d.done:
            return sum(count.values()), d
        for c, new in d.next_seeds.items():
            count[c] += len(new)


def scenario(k: int, effect: float, sd: float, me: float, alpha: float, studies: int, seed: int) -> dict:
    """Seeds spent and error rates of ``studies`` sequential studies against the fixed design."""
    max_seeds = int(recommend_max_seeds(sd, me, alpha, k - 1, start=3, step=2))
    fixed = int(recommend_max_seeds(sd, me, alpha, k - 1, sequential=False))
    design = Design("base", me, alpha, start=3, step=2, max_seeds=max_seeds)
    means = np.array([0.9, 0.9 + effect] + [0.9] * (k - 2))  # one rate better by ``effect``
    truth = means[1:] - means[0]
    rng = np.random.default_rng(seed)
    spent, verdicts, best_held, false_claim = [], [], 0, 0
    for _ in range(studies):
        runs, d = one_study(means, sd, design, rng)
        spent.append(runs / k)
        verdicts.extend(c.verdict for c in d.comparisons)
        best_held += "c1" in d.could_be_best if effect > 0 else bool(d.could_be_best)
        false_claim += any(
            (c.verdict == "better" and t <= 0) or (c.verdict == "worse" and t >= 0)
            or (c.verdict == "equivalent" and abs(t) >= me)
            for c, t in zip(d.comparisons, truth, strict=True)
        )  # fmt: skip
    spent = np.array(spent)
    share = {v: verdicts.count(v) / len(verdicts) for v in ("better", "worse", "equivalent", "undecided")}
    return {
        "configurations": k, "effect": effect, "sd": sd, "min_effect": me, "alpha": alpha, "studies": studies,
        "max_seeds": max_seeds, "fixed_seeds": fixed, "mean_seeds": float(spent.mean()),
        "p90_seeds": float(np.percentile(spent, 90)), "runs_mean": float(spent.mean() * k),
        "runs_fixed": fixed * k, "verdicts": share, "studies_with_a_false_claim": false_claim / studies,
        "best_in_set": best_held / studies,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=1000, help="simulated studies per scenario")
    parser.add_argument(
        "--fixtures", type=Path, default=Path("/work/fixtures"), help="folder of digits MLP stores"
    )
    parser.add_argument(
        "--sd", type=float, default=None, help="SD of paired differences (overrides the measured)"
    )
    parser.add_argument("--min-effect", type=float, default=0.01)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument(
        "--run-s", type=float, default=MLP_SWEEP_RUN_S, help="wall seconds per run of the sweep"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    sd, dof, used = measured_spread(args.fixtures)
    if args.sd is not None:
        sd, dof, used = args.sd, 0, ["--sd"]
    if not math.isfinite(sd):
        parser.error("no digits MLP store found under --fixtures; give --sd")
    print(f"spread of paired differences: SD {sd * 100:.2f} pp ({dof} degrees of freedom; {'; '.join(used)})")
    me, alpha = args.min_effect, args.alpha
    print(f"min_effect {me * 100:.1f} pp, alpha {alpha}, start 3 seeds, step 2\n")
    header = (
        "| grid | effect | max seeds | fixed design | seeds/config: mean | p90 | runs: sequential / fixed "
        "| verdicts (better/worse/equiv/undecided) | studies with a false claim | best in set |"
    )
    print(header)
    print("|---|---|---:|---:|---:|---:|---:|---|---:|---:|")
    results = []
    start = time.perf_counter()
    for k, grid in ((2, "comparison (2 configs)"), (6, "MLP rate sweep (6 configs)")):
        for i, effect in enumerate((0.0, me, 2 * me)):
            r = scenario(k, effect, sd, me, alpha, args.studies, seed=100 * k + i)
            results.append(r)
            v = r["verdicts"]
            print(
                f"| {grid} | {effect * 100:.0f} pp | {r['max_seeds']} | {r['fixed_seeds']} | {r['mean_seeds']:.1f} "
                f"| {r['p90_seeds']:.0f} | {r['runs_mean']:.1f} / {r['runs_fixed']} | {v['better']:.0%} / "
                f"{v['worse']:.0%} / {v['equivalent']:.0%} / {v['undecided']:.0%} | "
                f"{r['studies_with_a_false_claim']:.1%} | {r['best_in_set']:.1%} |"
            )
    print(f"\n{len(results) * args.studies} simulated studies in {time.perf_counter() - start:.0f} s")
    print(
        f"\nCPU time on the Fashion-MNIST comparison's MLP sweep at {args.run_s:.3f} s a run on {MLP_SWEEP_CORES} cores:"
    )
    for r in results:
        if r["configurations"] != 6:
            continue
        saved = r["runs_fixed"] - r["runs_mean"]
        print(
            f"  effect {r['effect'] * 100:.0f} pp: {r['runs_mean']:.1f} runs instead of {r['runs_fixed']}: "
            f"{saved:+.1f} runs, {saved * args.run_s:+.1f} s wall, {saved * args.run_s * MLP_SWEEP_CORES:+.1f} core-s "
            f"({saved / r['runs_fixed']:+.0%})"
        )
    if args.json:
        args.json.write_text(json.dumps({"sd": sd, "dof": dof, "from": used, "results": results}, indent=1))


if __name__ == "__main__":
    main()
