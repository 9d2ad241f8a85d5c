"""What `dropoutlab report` costs as a study grows: 10, 30, 100 and 300 configurations.

    python benchmarks/bench_report.py [--store PATH] [--sizes 10 30 100 300] [--repeat 1]
        [--plan-points 1000] [--src DIR] [--json out.json]

Four digits MLP studies, each a grid that adds one axis to the last (2 seeds, 1 epoch, so
training is quick: about 20 s for all four on 2 cores): 10 rates of ``dropout.hidden1`` (a
rate sweep), times 3 of ``dropout.input`` (a two-parameter grid: 30), or times 10 of
``dropout.hidden2`` (a 10 x 10 grid: 100), and all three (300, the factors section). They are
trained into ``--store`` (default: a temporary folder; an existing store is reused, its
finished runs kept). Then ``dropoutlab report --study NAME --out DIR`` is timed as one whole
process, from its start to its exit (imports, reading the store, analysis, figures, files),
with its peak resident memory (``wait4``), the size of the HTML page, the PNG count and any
warning on stderr. ``--src`` times the ``dropoutlab`` of another checkout's ``src/`` (say
``git archive 8c7bc46 src | tar -x -C /tmp/base``, the commit before the report scaled).

First, ``--plan-points`` times ``dropoutlab run STUDY --dry-run`` (whole process) on a ResNet
grid of that many points (dropout rate x learning rate x weight decay, 1 seed): the plan's
checks of every point, which count a family's network once per architecture.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import NEW_SRC, load_average, machine

RATES = [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]

#: configurations -> the study's grid
GRIDS = {
    10: {"dropout.hidden1": RATES},
    30: {"dropout.hidden1": RATES, "dropout.input": [0.0, 0.1, 0.2]},
    100: {"dropout.hidden1": RATES, "dropout.hidden2": RATES},
    300: {"dropout.hidden1": RATES, "dropout.hidden2": RATES, "dropout.input": [0.0, 0.1, 0.2]},
}


def study_file(folder: Path, size: int) -> Path:
    """The study of ``size`` configurations as a TOML file in ``folder``."""
    grid = "\n".join(f'"{key}" = {values}' for key, values in GRIDS[size].items())
    path = folder / f"scale-{size}.toml"
    path.write_text(f"""name = "scale-{size}"
dataset = "digits"
model = "mlp"
epochs = 1
batch_size = 64
seeds = 2
normalize = "symmetric"

[optimizer]
name = "adam"
lr = 0.001

[grid]
{grid}
""")
    return path


def dropoutlab(*args: str) -> list[str]:
    """``python -m dropoutlab.cli ARGS``; PYTHONPATH (set by ``run``) picks the checkout."""
    return [sys.executable, "-m", "dropoutlab.cli", *args]


def run(argv: list[str], src: Path) -> tuple[float, float, str]:
    """Wall seconds, peak resident memory (MiB) and stderr of one process run to its end with
    ``src`` first on its path."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak, not the largest child's so far
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({proc.returncode}):\n{stdout[-2000:]}\n{stderr[-2000:]}"
        )
    return wall, usage.ru_maxrss / 1024, stderr


def plan_file(folder: Path, points: int) -> Path:
    """A ResNet study of ``points`` grid points on digits (1 seed): rates x learning rates x
    weight decays, for timing ``--dry-run``."""
    side = round(points ** (1 / 3))
    if side**3 != points:
        raise SystemExit(f"--plan-points: {points} is not a cube (1000, 8000...)")
    values = {"dropout.head": [round(i / side, 4) for i in range(side)],
              "optimizer.lr": [round(1e-4 * 1.5**i, 8) for i in range(side)],
              "optimizer.weight_decay": [round(1e-5 * i, 8) for i in range(side)]}  # fmt: skip
    grid = "\n".join(f'"{key}" = {v}' for key, v in values.items())
    path = folder / f"plan-{points}.toml"
    path.write_text(f'name = "plan-{points}"\ndataset = "digits"\nmodel = "resnet"\nepochs = 1\nseeds = 1\n'
                    f"[grid]\n{grid}\n")  # fmt: skip
    return path


def time_plan(points: int, src: Path, out: Path) -> dict:
    """One timing of ``dropoutlab run --dry-run`` on a ResNet grid of ``points`` points."""
    wall, mib, _ = run(dropoutlab("run", str(plan_file(out, points)), "--store", str(out / "plan.db"),
                                  "--dry-run"), src)  # fmt: skip
    return {"points": points, "wall_s": wall, "peak_mib": mib, "load": load_average()}


def time_report(store: Path, size: int, src: Path, out: Path) -> dict:
    """One timing of ``dropoutlab report`` on the study of ``size`` configurations."""
    folder = out / f"report-{size}"
    wall, mib, stderr = run(dropoutlab("report", "--store", str(store), "--study", f"scale-{size}",
                                          "--out", str(folder)), src)  # fmt: skip
    warnings = [line for line in stderr.splitlines() if "Warning" in line]
    return {"configs": size, "wall_s": wall, "peak_mib": mib, "load": load_average(),
            "html_mb": (folder / "report.html").stat().st_size / 1e6, "pngs": len(list(folder.glob("*.png"))),
            "warnings": len(warnings), "first_warning": warnings[0] if warnings else ""}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--store", type=Path, help="the store to train into and report from (default: a temp dir)"
    )
    parser.add_argument("--sizes", type=int, nargs="*", default=list(GRIDS), choices=list(GRIDS))
    parser.add_argument("--repeat", type=int, default=1, help="time each report this many times; the median")
    parser.add_argument("--src", type=Path, default=NEW_SRC, help="the src/ folder whose dropoutlab is timed")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--plan-points", type=int, default=1000, metavar="N",
                        help="also time --dry-run of a ResNet grid of N points (a cube; 0: skip)")  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        tmp = Path(tmp)
        plan = time_plan(args.plan_points, args.src, tmp) if args.plan_points else None
        if plan is not None:
            print(f"--dry-run of {plan['points']} ResNet grid points: {plan['wall_s']:.1f} s, "
                  f"{plan['peak_mib']:.0f} MiB peak RSS, load {plan['load']}", flush=True)  # fmt: skip
        store = args.store or tmp / "scale.db"
        for size in args.sizes:  # trained with this checkout's code, whichever is timed
            wall, _, _ = run(dropoutlab("run", str(study_file(tmp, size)), "--store", str(store),
                                           "--no-progress"), NEW_SRC)  # fmt: skip
            print(f"trained scale-{size} ({2 * size} runs) in {wall:.1f} s", flush=True)
        results = []
        for size in args.sizes:
            rounds = [time_report(store, size, args.src, tmp) for _ in range(args.repeat)]
            median = statistics.median_low(r["wall_s"] for r in rounds)
            result = dict(
                next(r for r in rounds if r["wall_s"] == median), walls=[r["wall_s"] for r in rounds]
            )
            results.append(result)
            print(f"{size:4d} configurations: {result['wall_s']:6.1f} s, {result['peak_mib']:6.0f} MiB peak RSS, "
                  f"page {result['html_mb']:.2f} MB, {result['pngs']} PNGs, {result['warnings']} warning lines, "
                  f"load {result['load']}", flush=True)  # fmt: skip
            if result["first_warning"]:
                print(f"     first warning: {result['first_warning']}")
    print(machine())
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {"machine": machine(), "src": str(args.src), "plan": plan, "results": results}, indent=1
            )
        )


if __name__ == "__main__":
    main()
