"""Shared pieces of the benchmarks: synthetic data, the matmul peak, FLOP counts, child processes.

Nothing here is part of the dropoutlab package; the benchmarks import it as a sibling module.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("DROPOUTLAB_BENCH_DIR", "/tmp/dropoutlab-bench"))


def synthetic_images(path: Path, n_train: int, n_test: int, shape: tuple[int, ...], seed: int = 0) -> Path:
    """Write a Keras-layout ``.npz`` of uint8 images and int labels shaped like a real dataset.

    No download is possible on the benchmark machine, so images are made up: ten smooth
    class templates plus per-image noise and a random brightness, so that a network can
    learn them (accuracy well above chance) without being trivial. ``shape`` is
    ``(H, W)`` or channels-last ``(H, W, C)`` as Keras stores it.
    """
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    grid = (*[max(s // 4, 1) for s in shape[:2]], *shape[2:])
    common = rng.uniform(60, 200, size=grid)  # what all classes share, as clothes share a silhouette
    coarse = common + rng.normal(0, 12, size=(10, *grid))
    templates = coarse.repeat(4, axis=1).repeat(4, axis=2)[:, : shape[0], : shape[1]]

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 10, size=n)
        x = np.empty((n, *shape), dtype=np.uint8)
        for start in range(0, n, 5000):  # chunks keep the float64 temporaries small
            sl = slice(start, min(start + 5000, n))
            t = templates[y[sl]] * rng.uniform(0.4, 1.0, size=(sl.stop - sl.start,) + (1,) * len(shape))
            t = t + rng.normal(0, 70, size=t.shape)
            x[sl] = np.clip(t, 0, 255).astype(np.uint8)
        flip = rng.random(n) < 0.1  # some labels wrong, as in any real dataset: no 100% accuracy
        y[flip] = rng.integers(0, 10, size=int(flip.sum()))
        return x, y.astype(np.int64)

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    tmp.rename(path)
    return path


def matmul_peak(size: int = 2048, repeats: int = 10) -> float:
    """Measured float32 matrix-multiply throughput of this machine in GFLOP/s (best of ``repeats``)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best / 1e9


def flops_per_sample(
    model: torch.nn.Module, input_shape: tuple[int, ...], batch: int = 64
) -> tuple[float, float]:
    """(training step, evaluation) FLOPs per sample of ``model``, counted by PyTorch's FlopCounterMode.

    The training step is forward + backward of the cross-entropy loss (what autograd
    really computes: no input gradient for the first layer); only matrix products and
    convolutions are counted, as usual for model FLOPs.
    """
    x = torch.randn(batch, *input_shape)
    y = torch.randint(0, 10, (batch,))
    model.train()
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    train = counter.get_total_flops() / batch
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return train, counter.get_total_flops() / batch


def run_child(args: list[str], python: str | None = None, env: dict | None = None) -> dict:
    """Run ``python args`` (a benchmark part), return the JSON it prints last, plus its peak memory.

    ``peak_mib`` is the peak, over samples every 0.5 s, of the proportional set size (PSS)
    summed over the child and its worker processes: memory shared by forked workers counts
    once, not once per worker (as summing their resident sizes would). Linux only; elsewhere
    the child's own peak resident size.
    """
    cmd = [python or sys.executable, *args]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, **(env or {})}) as proc:  # fmt: skip
        peak = [0.0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.5):
                peak[0] = max(peak[0], _tree_pss_mib(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stdout, stderr = proc.communicate()
        done.set()
        sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    if peak[0]:
        result["peak_mib"] = peak[0]
    return result


def _tree_pss_mib(root: int) -> float:
    """PSS in MiB of process ``root`` and all its descendants (0 where /proc cannot tell)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid and child not in tree]
        tree.update(children)
        frontier.extend(children)
    total_kib = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kib += int(line.split()[1])
                    break
        except (OSError, ValueError):
            continue
    return total_kib / 1024


def report(result: dict) -> None:
    """Print a child's result as one JSON line, with its peak resident memory (MiB)."""
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result), flush=True)


def machine() -> str:
    """A one-line description of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"


def load_average() -> str:
    """The 1-minute load average: other processes on the machine skew timings."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "?"


def table(rows: list[dict]) -> str:
    """The results as a Markdown table (``of_peak``: see :func:`run_contenders`)."""
    head = ("| workload | runs | model-epochs/s | vs reference | GFLOP/s | of matmul peak | peak memory |\n"
            "|---|---:|---:|---:|---:|---:|---:|")  # fmt: skip
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['runs']} | {r['me_per_s']:.3f} | {r['ratio']:.2f}x | {r['gflops']:.1f} | "
            f"{r['of_peak']:.0%} | {r['peak_mib']:.0f} MiB |"
        )
    return "\n".join(lines)


def peaks_line(results: dict[str, dict]) -> str:
    """The range of the matmul peaks measured before the contenders ran."""
    peaks = [p for out in results.values() for p in out["peaks"]]
    return (f"float32 matmul peak (2048x2048, best of 10), measured before each contender run: "
            f"{min(peaks):.1f}-{max(peaks):.1f} GFLOP/s")  # fmt: skip


def add_run_options(parser) -> None:
    """``--repeat``, and the hidden ``--stack`` and ``--workers`` options a contender's child
    process receives."""
    parser.add_argument("--repeat", type=int, default=1,
                        help="time each contender this many times (interleaved); report the median")  # fmt: skip
    parser.add_argument("--stack", default="auto", type=_word_or_int, help=argparse.SUPPRESS)
    parser.add_argument("--workers", default="auto", type=_word_or_int, help=argparse.SUPPRESS)


def _word_or_int(text: str) -> str | int:
    return text if text in ("auto", "off") else int(text)


def time_study(spec, device: str, stack, workers="auto") -> dict:
    """Run a study into a throw-away store; its wall time, completed runs and mean test accuracy."""
    import tempfile

    from dropoutlab.store import Store
    from dropoutlab.study import run_study

    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "bench.db") as store:
        start = time.perf_counter()
        outcome = run_study(spec, store, device=device, progress=False, stack=stack, workers=workers)
        wall = time.perf_counter() - start
        runs = store.runs()
    return {
        "wall_s": wall,
        "runs": int(outcome.statuses["completed"]),
        "mean_test_acc": float(runs["test_acc"].mean()),
    }


def run_contenders(
    script: str,
    contenders: dict[str, tuple],
    skip: list[str],
    shared_args: list[str],
    workload: str,
    epochs: int,
    run_flops: float,
    loads: list[str],
    env: dict | None = None,
    repeat: int = 1,
) -> dict[str, dict]:
    """Time each contender ``repeat`` times in child processes of ``script``; add its rates.

    ``contenders`` maps a key to ``(label, extra_args)`` or ``(label, extra_args, python)``.
    The rounds are interleaved (every contender once, then again), and the matmul peak is
    measured again right before each timing: the machine is shared and its speed drifts by
    10% or more within minutes, so a timing is only compared with a peak taken next to it.
    Each result holds the median round (by wall time) plus ``walls`` and ``peaks`` of all
    rounds, and ``name``, ``me_per_s`` (model-epochs per second), ``gflops``, ``of_peak`` (the
    median over rounds of GFLOP/s divided by that round's peak) and ``ratio`` (to the
    ``reference`` contender's model-epochs per second; NaN without one). ``loads`` receives
    the load average after each timing.
    """
    rounds: dict[str, list[dict]] = {key: [] for key in contenders if key not in skip}
    for _ in range(repeat):
        for key in rounds:
            label, extra, *python = contenders[key]
            peak = matmul_peak()
            out = run_child([script, *extra, *shared_args], python=python[0] if python else None, env=env)
            loads.append(load_average())
            out["peak_gflops"] = peak
            rounds[key].append(out)
            print(f"{label}: {out['wall_s']:.1f} s (peak just before: {peak:.1f} GFLOP/s), "
                  f"mean test acc {out['mean_test_acc']:.3f}", flush=True)  # fmt: skip

    def gflops(out: dict) -> float:
        return out["runs"] * run_flops / out["wall_s"] / 1e9

    results = {}
    for key, outs in rounds.items():
        median_wall = statistics.median_low(o["wall_s"] for o in outs)
        out = dict(next(o for o in outs if o["wall_s"] == median_wall))
        out["walls"] = [o["wall_s"] for o in outs]
        out["peaks"] = [o["peak_gflops"] for o in outs]
        out["name"] = f"{workload}, {contenders[key][0]}"
        out["me_per_s"] = out["runs"] * epochs / out["wall_s"]
        out["gflops"] = gflops(out)
        out["of_peak"] = statistics.median_low(gflops(o) / o["peak_gflops"] for o in outs)
        results[key] = out
    base = results.get("reference", {}).get("me_per_s", float("nan"))
    for out in results.values():
        out["ratio"] = out["me_per_s"] / base
    return results
