"""A dropout-kinds sweep and a model-families sweep, timed: stacked against one run at a time.

Workloads, on 10,000 + 2,000 Fashion-MNIST-shaped images (28x28x1 uint8, *synthesized*:
no download is possible on the benchmark machine, see ``common.synthetic_images``), batch
64, Adam 1e-3, no validation split, ``eval_train = false``, one seed:

* kinds: the ``cnn`` preset (two 3x3 convolutions of 32 filters, dense 300, dense 300)
  with dropout 0.2 between the convolutions, one run per kind: standard, scaled, gaussian,
  spatial, dropblock, concrete (6 runs, 2 epochs). Every kind has a stacked form, so
  ``--stack auto`` trains them together where memory allows;
* families: resnet, gru, lstm and transformer, each without and with dropout 0.1 at its
  slots (8 runs, 1 epoch). Families train one run at a time whatever ``--stack`` says
  (``dropoutlab run`` prints why), so ``--stack auto`` and ``--stack off`` do the same work:
  the rows show that nothing is lost, not a gain.

Every contender is one whole process, ``dropoutlab run STUDY --stack auto|off`` (default
``--workers``), timed from the outside, the matmul peak measured right before it; GFLOP/s
counts FlopCounterMode's matrix products and convolutions of the training and test passes
(recurrent layers' fused kernels are not counted, so the GRU and LSTM rows leave it out).

Commands (from the repository root)::

    python benchmarks/bench_sweeps.py --quick                 # smoke test, ~1 min
    python benchmarks/bench_sweeps.py --repeat 2 --json sweeps.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    CACHE,
    Contender,
    dropoutlab_cli,
    flops_per_sample,
    load_average,
    machine,
    parse_common,
    peaks_line,
    rounds_table,
    run_contenders,
    synthetic_images,
    write_json,
)

KINDS = ["standard", "scaled", "gaussian", "spatial", "dropblock", "concrete"]
FAMILY_SLOTS = {
    "resnet": ("head", "block"),
    "gru": ("input", "recurrent", "head"),
    "lstm": ("input", "recurrent", "head"),
    "transformer": ("attention", "residual", "mlp"),
}
FULL = {"n_train": 10_000, "n_test": 2_000, "kind_epochs": 2, "family_epochs": 1}
QUICK = {"n_train": 1_000, "n_test": 500, "kind_epochs": 1, "family_epochs": 1}

HEADER = """\
# Written by benchmarks/bench_sweeps.py.
name = "{name}"
dataset = "npz:{data}"
epochs = {epochs}
batch_size = 64
seeds = [0]
validation = 0.0
eval_train = false
"""


def write_studies(size: dict) -> dict[str, Path]:
    """The kinds study and the families study (and their synthetic data) for sizes ``size``."""
    data = synthetic_images(CACHE / f"fmnist_synth_{size['n_train']}_{size['n_test']}.npz",
                            size["n_train"], size["n_test"], (28, 28))  # fmt: skip
    kinds = CACHE / f"bench_kinds_{size['n_train']}.toml"
    kinds.write_text(
        HEADER.format(name="bench-kinds", data=data, epochs=size["kind_epochs"])
        + 'model = "cnn"\n\n[dropout]\nconv = 0.2\n\n[grid]\n"dropout.conv.kind" = '
        + str(KINDS).replace("'", '"')
        + "\n"
    )
    families = CACHE / f"bench_families_{size['n_train']}.toml"
    tables = []
    for family, slots in FAMILY_SLOTS.items():
        for rate in (0.0, 0.1):
            keys = "\n".join(f'"dropout.{slot}" = [{rate}]' for slot in slots)
            tables.append(f'[[grid]]\nmodel = ["{family}"]\n{keys}\n')
    families.write_text(
        HEADER.format(name="bench-families", data=data, epochs=size["family_epochs"])
        + "\n"
        + "\n".join(tables)
    )
    return {"kinds": kinds, "families": families}


def run_flops(sweep: str, size: dict) -> float:
    """Model FLOPs of the sweep's runs, summed over its runs (matrix products and convolutions)."""
    from dropoutlab.models import FAMILIES, PRESETS, build_model

    if sweep == "kinds":
        train, test = flops_per_sample(build_model(PRESETS["cnn"], {}, (1, 28, 28), 10), (1, 28, 28))
        return len(KINDS) * (size["kind_epochs"] * size["n_train"] * train + size["n_test"] * test)
    total = 0.0
    for family in ("resnet", "transformer"):  # the recurrent families' fused kernels are not counted
        train, test = flops_per_sample(FAMILIES[family].build((1, 28, 28), 10, {}), (1, 28, 28))
        total += 2 * (size["family_epochs"] * size["n_train"] * train + size["n_test"] * test)
    return total


def contenders(args, size: dict, studies: dict[str, Path]) -> list[Contender]:
    every = []
    for sweep, study in studies.items():
        runs = len(KINDS) if sweep == "kinds" else 2 * len(FAMILY_SLOTS)
        flops = run_flops(sweep, size) / runs
        epochs = size["kind_epochs"] if sweep == "kinds" else size["family_epochs"]
        for stack in ("auto", "off"):
            store = CACHE / f"bench_{sweep}_{stack}.db"
            argv, env = dropoutlab_cli(args.new_src, study, store, "--stack", stack)
            every.append(Contender(f"{sweep}-{stack}", f"{sweep} sweep, --stack {stack}", argv, flops, epochs,
                                   env, store))  # fmt: skip
    return [c for c in every if c.key not in args.skip]


def table(results: dict[str, dict]) -> str:
    lines = ["| sweep | --stack auto | --stack off | auto vs off | model-epochs/s (auto) | GFLOP/s (auto) | "
             "of matmul peak (auto) | peak memory (auto) | mean test acc (auto) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for sweep in ("kinds", "families"):
        auto, off = results.get(f"{sweep}-auto"), results.get(f"{sweep}-off")
        if auto is None or off is None:
            continue
        note = " (resnet, transformer only)" if sweep == "families" else ""
        lines.append(
            f"| {sweep} | {auto['wall_s']:.1f} s | {off['wall_s']:.1f} s | {off['wall_s'] / auto['wall_s']:.2f}x | "
            f"{auto['me_per_s']:.3f} | {auto['gflops']:.1f}{note} | {auto['of_peak']:.0%}{note} | "
            f"{auto['peak_mib']:.0f} MiB | {auto['mean_test_acc']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: 1,000 + 500 images, 1 epoch")
    parse_common(parser, "kinds-auto, kinds-off, families-auto, families-off")
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    studies = write_studies(size)
    load_before = load_average()
    results = run_contenders(contenders(args, size, studies), args.repeat)
    print(f"\nmachine: {machine()}; load average before: {load_before}")
    print(peaks_line(results))
    print(table(results))
    print("\nEvery round (wall time, fraction of the matmul peak measured just before):")
    print(rounds_table(results))
    write_json(args.json, results, size=size)


if __name__ == "__main__":
    main()
