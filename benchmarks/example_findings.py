"""Run every example study that uses the bundled digits and write what each report found.

The examples' comments used to quote results ("no kind beat the CNN without dropout") that
another CPU does not reproduce to the last digit, and a borderline verdict can flip with the
last digits. This script makes those results again, on whatever machine runs it, and writes
them with the machine, the CPU's vector extensions, the torch version and the commit into
``docs/example-findings.md``, which the examples point to.

Command (from the repository root; about 10 minutes on 2 idle cores, most of it the model
families survey)::

    python benchmarks/example_findings.py [--out docs/example-findings.md] [--stores DIR] [EXAMPLE.toml ...]

With ``--stores DIR`` the stores are kept there, and a second call only analyses them again.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from dropoutlab.report import analyze
from dropoutlab.store import Store
from dropoutlab.study import load_study, run_study

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.toml") if 'dataset = "digits"' in p.read_text())
SHOWN = 4  # findings quoted per study: the report opens with its answer


def cpu_name() -> str:
    """The CPU's model name (Linux), else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def commit() -> str:
    """The checkout's commit, marked when it has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
        return head.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")
    except OSError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("examples", nargs="*", type=Path, default=EXAMPLES)
    parser.add_argument("--out", type=Path, default=ROOT / "docs/example-findings.md")
    parser.add_argument("--stores", type=Path, help="keep the stores here (default: a temporary folder)")
    args = parser.parse_args()
    lines = [
        "# What the digits examples found",
        "",
        f"Made by `python benchmarks/example_findings.py` on {datetime.date.today()}: {cpu_name()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()} kernels), "
        f"dropoutlab at commit {commit()}. Another CPU adds in another order, so its last digits differ, and a "
        "verdict near its threshold can differ too: run the script to see your machine's.",
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        stores = args.stores or Path(tmp)
        stores.mkdir(parents=True, exist_ok=True)
        for path in args.examples:
            study = load_study(path)
            with Store(stores / f"{path.stem}.db") as store:
                outcome = run_study(study, store, progress=False)
                start = time.perf_counter()
                analysis = analyze(store, study.name)
                analysed = time.perf_counter() - start
                runs = len(store.runs(study.name))
            new = outcome.planned - outcome.skipped
            trained = (
                f"{new} trained now in {outcome.wall_s:.0f} s" if new else "all stored by an earlier call"
            )
            lines += [
                f"## `examples/{path.name}`",
                "",
                f"{runs} runs ({trained}); analysed in {analysed:.1f} s.",
                "",
            ]
            lines += [f"- {finding.text}" for finding in analysis.findings[:SHOWN]]
            lines.append("")
            print(f"{path.name}: {runs} runs, analysed in {analysed:.1f} s", flush=True)
    args.out.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
