"""Shared pieces of the benchmarks: synthetic data, the matmul peak, FLOP counts, child processes.

Nothing here is part of the dropoutlab package; the benchmarks import it as a sibling module.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("DROPOUTLAB_BENCH_DIR", "/tmp/dropoutlab-bench"))
NEW_SRC = HERE.parent / "src"  # this checkout's package, timed as "new"
EVAL_CHUNK = 2000  # images per evaluation forward pass of the plain loops (and bench_mlp's vmap)


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


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """The plain loops' evaluation: mean loss and accuracy of ``model`` on ``(x, y)``, in eval mode, in chunks."""
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(y), EVAL_CHUNK):
            logits = model(x[i : i + EVAL_CHUNK])
            loss += F.cross_entropy(logits, y[i : i + EVAL_CHUNK], reduction="sum").item()
            correct += (logits.argmax(1) == y[i : i + EVAL_CHUNK]).sum().item()
    return loss / len(y), correct / len(y)


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
    from torch.utils.flop_counter import FlopCounterMode  # here: the timed children need not import it

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


@dataclass(frozen=True)
class Contender:
    """One way of doing a benchmark's work: one whole process, timed from the outside.

    ``argv`` is the complete command line; its wall time runs from starting the process to
    its exit, so Python's start-up, imports, reading the study and preparing the data all
    count. The process either prints a JSON line ``{"runs": ..., "mean_test_acc": ...}`` last
    (the scripts' own ``--part`` children) or writes a dropoutlab ``store``, which is deleted
    before each timing and read afterwards. ``run_flops`` is the model FLOPs of one run and
    ``epochs`` the epochs of one run (for model-epochs per second).
    """

    key: str
    label: str
    argv: tuple[str, ...]
    run_flops: float
    epochs: int
    env: tuple[tuple[str, str], ...] = ()
    store: Path | None = None


def dropoutlab_cli(src: Path, study: Path, store: Path, *options: str) -> tuple[tuple[str, ...], tuple]:
    """``(argv, env)`` of ``dropoutlab run STUDY --store STORE OPTIONS`` with the package found in ``src``.

    ``python -m dropoutlab.cli`` is what the ``dropoutlab`` console script runs; ``PYTHONPATH``
    puts ``src`` ahead of the installed (editable) copy, so the old and the new code can be
    timed side by side from one checkout.
    """
    argv = (
        sys.executable,
        "-m",
        "dropoutlab.cli",
        "run",
        str(study),
        "--store",
        str(store),
        "--no-progress",
        *options,
    )
    return argv, (("PYTHONPATH", str(src)),)


def time_process(argv: tuple[str, ...], env: tuple = ()) -> tuple[float, float, str]:
    """Wall seconds, peak memory (MiB) and stdout of one process run to its end.

    The peak is the largest proportional set size (PSS) of the process and its children,
    sampled every 0.5 s: memory that forked workers share with their parent counts once,
    not once per worker (as summing their resident sizes would). Linux only (0 elsewhere).
    """
    peak = [0.0]
    done = threading.Event()
    start = time.perf_counter()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, **dict(env)}) as proc:  # fmt: skip

        def sample() -> None:
            while not done.wait(0.5):
                peak[0] = max(peak[0], _tree_pss_mib(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    return wall, peak[0], stdout


def read_store(path: Path) -> dict:
    """Completed runs and their mean test accuracy, read with plain SQL (any version of the store)."""
    with sqlite3.connect(path) as db:
        runs, acc = db.execute(
            "SELECT COUNT(*), AVG(test_acc) FROM runs WHERE status = 'completed'"
        ).fetchone()
    return {"runs": runs, "mean_test_acc": acc}


def report(result: dict) -> None:
    """Print a ``--part`` child's result as the one JSON line its parent reads."""
    print(json.dumps(result), flush=True)


def run_contenders(contenders: list[Contender], repeat: int = 1) -> dict[str, dict]:
    """Time every contender ``repeat`` times, interleaved, each right after its own matmul peak.

    The rounds are interleaved (every contender once, then again) and the matmul peak is
    measured again right before each timing: the machine's speed drifts by 10% or more
    within minutes, so a timing is only compared with a peak taken next to it. Each result
    holds the median round by wall time (``statistics.median_low``: a real round) with
    ``wall_s``, ``runs``, ``mean_test_acc``, ``me_per_s`` (model-epochs per second) and
    ``gflops``; ``of_peak`` is the median over rounds of each round's GFLOP/s divided by the
    peak measured just before it; ``walls``, ``peaks``, ``loads`` list every round and
    ``peak_mib`` is the largest peak memory over the rounds.
    """
    rounds: dict[str, list[dict]] = {c.key: [] for c in contenders}
    for _ in range(repeat):
        for c in contenders:
            if c.store is not None:
                for path in c.store.parent.glob(c.store.name + "*"):  # the store and its -wal/-shm files
                    path.unlink()
            peak = matmul_peak()
            wall, mib, stdout = time_process(c.argv, c.env)
            out = read_store(c.store) if c.store is not None else json.loads(stdout.strip().splitlines()[-1])
            out.update(wall_s=wall, peak_mib=mib, peak_gflops=peak, load=load_average())
            out["gflops"] = out["runs"] * c.run_flops / wall / 1e9
            rounds[c.key].append(out)
            print(f"{c.label}: {wall:.1f} s, {out['runs']} runs, mean test acc {out['mean_test_acc']:.3f}, "
                  f"{out['gflops'] / peak:.0%} of the matmul peak ({peak:.0f} GFLOP/s just before), "
                  f"{mib:.0f} MiB, load {out['load']}", flush=True)  # fmt: skip
    results = {}
    for c in contenders:
        outs = rounds[c.key]
        median_wall = statistics.median_low(o["wall_s"] for o in outs)
        out = dict(next(o for o in outs if o["wall_s"] == median_wall))
        out.update(
            key=c.key,
            label=c.label,
            walls=[o["wall_s"] for o in outs],
            peaks=[o["peak_gflops"] for o in outs],
            loads=[o["load"] for o in outs],
            peak_mib=max(o["peak_mib"] for o in outs),
            me_per_s=out["runs"] * c.epochs / out["wall_s"],
            of_peak=statistics.median_low(o["gflops"] / o["peak_gflops"] for o in outs),
        )
        results[c.key] = out
    return results


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


def peaks_line(results: dict[str, dict]) -> str:
    """The range of the matmul peaks measured before the timings."""
    peaks = [p for out in results.values() for p in out["peaks"]]
    return (f"float32 matmul peak (2048x2048, best of 10), measured right before each timing: "
            f"{min(peaks):.1f}-{max(peaks):.1f} GFLOP/s")  # fmt: skip


def rounds_table(results: dict[str, dict]) -> str:
    """Every round's wall time and fraction of the peak, as a Markdown table."""
    n = max(len(out["walls"]) for out in results.values())
    lines = ["| contender | " + " | ".join(f"round {i + 1}" for i in range(n)) + " |",
             "|---|" + "---:|" * n]  # fmt: skip
    for out in results.values():
        gflop = out["gflops"] * out["wall_s"]  # the whole workload
        cells = [f"{w:.1f} s, {gflop / w / p:.0%}" for w, p in zip(out["walls"], out["peaks"], strict=True)]
        lines.append(f"| {out['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_common(parser: argparse.ArgumentParser, keys: str) -> None:
    """The options every benchmark has: ``--repeat``, ``--skip``, ``--old-src``, ``--new-src``, ``--json``."""
    parser.add_argument("--repeat", type=int, default=1,
                        help="time each contender this many times, interleaved; report the median")  # fmt: skip
    parser.add_argument(
        "--skip", nargs="*", default=[], metavar="KEY", help=f"contenders to leave out: {keys}"
    )
    parser.add_argument("--old-src", type=Path, metavar="DIR",
                        help="the src/ folder of an older checkout (e.g. a `git worktree` of the commit "
                        "before a change): its dropoutlab is timed beside this checkout's")  # fmt: skip
    parser.add_argument("--new-src", type=Path, default=NEW_SRC, metavar="DIR",
                        help="the src/ folder whose dropoutlab is timed as the new code (default: this checkout's)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the results here")


def write_json(path: Path | None, results: dict[str, dict], **extra) -> None:
    if path is not None:
        path.write_text(json.dumps({"machine": machine(), **extra, "results": results}, indent=1))
