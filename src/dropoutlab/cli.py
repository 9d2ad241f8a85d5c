"""The ``dropoutlab`` command: parses flags, calls the library, prints results.

User mistakes arrive as DropoutlabError and are printed as one line (exit status 2);
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import logging
import math
import sys
from importlib import resources
from pathlib import Path

from dropoutlab.errors import DropoutlabError
from dropoutlab.runs import DEFAULT_STORE
from dropoutlab.version import __version__

# the defaults of a sequential design (dropoutlab.report.decide), here without importing SciPy for --help
DEFAULT_STEP, DEFAULT_MAX_SEEDS = 2, 20
# minutes of a stack between checkpoints (dropoutlab.train.checkpoints), here without importing torch
DEFAULT_MINUTES = 5.0

EPILOG = """\
examples:
    dropoutlab demo                         an MLP with and without dropout on digits, offline (~35 s)
    dropoutlab run examples/digits_dropout_comparison_mlp.toml
                                            run a study (finished runs are skipped on re-runs)
    dropoutlab report --out report          curves, tables and findings as HTML, Markdown and PNG
    dropoutlab evaluate --mc 10,50          MC dropout on the models of a study run with --keep-weights
    dropoutlab export --format csv > runs.csv
    dropoutlab models cnn --dataset cifar10 layer summary with output shapes and parameters
"""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (what is wrong and what is allowed), no usage dump."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=DEFAULT_STORE, metavar="PATH|URL",
                   help=f"where the runs are kept: an SQLite file (default: ./{DEFAULT_STORE}) or a PostgreSQL "
                        "database, postgresql://USER@HOST/DB, for several machines writing at once")  # fmt: skip


def _study_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--study", metavar="NAME", help="which study of the store (needed when it holds several)")


def _word_or_count(*words: str):
    """An argparse type: one of ``words``, or a whole number >= 1 (returned as an int)."""

    def value(text: str) -> str | int:
        if text in words:
            return text
        if text.isdigit() and int(text) >= 1:
            return int(text)
        raise argparse.ArgumentTypeError(
            f"{text!r} is not allowed; allowed: {', '.join(words)} or a whole number >= 1"
        )

    return value


def _epochs(text: str) -> int:
    """An argparse type: a whole number of epochs >= 0 (0: off)."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not allowed; allowed: a whole number of epochs, 0 for off"
        )
    return int(text)


def _minutes(text: str) -> float:
    """An argparse type: a number of minutes >= 0 (0: off)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not allowed; allowed: a number of minutes >= 0, 0 for off"
        )
    return value


def _whole(text: str) -> int:
    """An argparse type: a whole number >= 0 (the design says which values it allows)."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; allowed: a whole number of seeds")
    return int(text)


def _sample_counts(text: str) -> tuple[int, ...]:
    """An argparse type: comma-separated whole numbers of passes, sorted, without repeats."""
    from dropoutlab.study.settings import MAX_MC_SAMPLES

    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() and 1 <= int(part) <= MAX_MC_SAMPLES for part in parts):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not allowed; allowed: whole numbers from 1 to {MAX_MC_SAMPLES} separated by commas"
        )
    return tuple(sorted({int(part) for part in parts}))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``dropoutlab`` command."""
    parser = _Parser(
        prog="dropoutlab",
        description="Controlled dropout and regularization studies on PyTorch, read with statistics.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"dropoutlab {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens, step by step")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="run a dropout comparison on the bundled digits data and report it",
                       description="Train an MLP (dense 120, dense 60) on scikit-learn's bundled digits without dropout, "
                       "with dropout 0.2/0.5/0.5 and with a sweep of one rate, offline, until decided: 3 seeds "
                       "each, then 4 more where something is still undecided (at most 11); then write the "
                       "report. Takes about 35 seconds on 2 CPU cores.")  # fmt: skip
    p.add_argument("--out", default="dropoutlab-demo", metavar="DIR",
                   help="folder for the demo's store and report (default: ./dropoutlab-demo)")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")

    p = sub.add_parser("run", help="run a study file; runs already in the store are skipped",
                       description="Run every run of a study (grid x seeds) that the store does not hold yet. "
                       "Each finished run is written at once, so an interrupted study resumes where it stopped.")  # fmt: skip
    p.add_argument("study", metavar="STUDY.toml", help="the study file (see examples/)")
    _store_arg(p)
    p.add_argument("--device", default="auto", help="auto (GPU when available), cpu or cuda (default: auto)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="where dataset files are looked for and downloaded (default: $DROPOUTLAB_DATA, then a cache)")  # fmt: skip
    p.add_argument("--stack", default="auto", type=_word_or_count("auto", "off"), metavar="auto|off|N",
                   help="train runs of the same network shape together as one stacked model: auto (sized by "
                   "memory), off (one by one, the reference path) or N runs per stack (default: auto)")  # fmt: skip
    p.add_argument("--workers", default="auto", type=_word_or_count("auto"), metavar="auto|N",
                   help="CPU processes training side by side, one core each: auto (one per core on Linux, "
                   "1 on a GPU) or N; 1 trains in this process with all its threads (default: auto)")  # fmt: skip
    p.add_argument(
        "--dry-run", action="store_true",
        help="check everything a run would (study, flags, store) and list the runs; train nothing",
    )  # fmt: skip
    p.add_argument("--replace", action="store_true",
                   help="the study's definition changed: keep its stored runs as NAME@archived-N and run it "
                   "afresh (nothing is deleted)")  # fmt: skip
    p.add_argument("--executor", default="local", choices=("local", "ray"),
                   help="local: this machine's worker processes (default); ray: each stack or run as a task on "
                   "a Ray cluster (--address, else $RAY_ADDRESS, else a local Ray instance); needs "
                   "pip install \"dropoutlab[ray]\"")  # fmt: skip
    p.add_argument(
        "--address", metavar="ADDR", help="the Ray cluster for --executor ray, e.g. ray://head:10001"
    )
    p.add_argument("--cpus-per-task", type=float, default=None, metavar="N",
                   help="CPUs each Ray task asks for (default: the study's [resources] cpus_per_task, else 1)")  # fmt: skip
    p.add_argument("--gpus-per-task", type=float, default=None, metavar="G",
                   help="GPUs each Ray task asks for; a fraction shares a card (default: the study's [resources] "
                        "gpus_per_task, else 1 on cuda and 0 on the cpu)")  # fmt: skip
    p.add_argument("--checkpoint-every", type=_epochs, default=0, metavar="N",
                   help="save each stack's state every N epochs (in STORE.checkpoints/ beside an SQLite "
                   "store, HOST-PORT-DB.checkpoints/ here for PostgreSQL), so that a stack tried "
                   "again after a kill resumes there instead of at epoch 1 (default: off)")  # fmt: skip
    p.add_argument("--checkpoint-minutes", type=_minutes, default=DEFAULT_MINUTES, metavar="M",
                   help="also save each stack's state at the end of the first epoch after every M minutes of "
                   "its training, so that a kill loses at most M minutes of it (same place as "
                   f"--checkpoint-every; 0: off; default: {DEFAULT_MINUTES:g})")  # fmt: skip
    p.add_argument("--keep-weights", action="store_true",
                   help="store each tested run's weights (4 bytes per parameter: 1.5 MB for the MLP on CIFAR-10, "
                   "31 MB for the CNN), so that `dropoutlab evaluate` can measure them later")  # fmt: skip
    p.add_argument("--until-decided", action="store_true",
                   help="train the study's seeds as a first look, then add seeds in steps, only to the "
                   "configurations that still matter, until every comparison with the baseline is better, worse "
                   "or equivalent (within the study's min_effect) and the best is settled, or max_seeds is "
                   "reached; every look is stored, and error rates hold over all looks (docs/decisions.md)")  # fmt: skip
    p.add_argument("--step", type=_whole, default=None, metavar="N",
                   help=f"with --until-decided: seeds added per look (default: the study's [sequential] step, "
                   f"else {DEFAULT_STEP})")  # fmt: skip
    p.add_argument("--max-seeds", type=_whole, default=None, metavar="N",
                   help=f"with --until-decided: the most seeds per configuration (default: the study's "
                   f"[sequential] max_seeds, else {DEFAULT_MAX_SEEDS})")  # fmt: skip
    p.add_argument("--min-effect", type=float, default=None, metavar="D",
                   help="with --until-decided: the smallest difference in test accuracy worth detecting, a "
                   "fraction (0.01 is one point); smaller differences count as equivalent (default: the "
                   "study's min_effect, which --until-decided needs one way or the other)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = sub.add_parser("evaluate", help="measure Monte Carlo dropout on the stored models of a study",
                       description="For every completed run whose weights the store holds (`dropoutlab run "
                       "--keep-weights`), keep dropout on at test and average the probabilities of T passes, "
                       "for each T of --mc, beside the deterministic pass; store accuracy, NLL, Brier score, "
                       "ECE, entropy and mutual information with the run. `dropoutlab report` then draws them.")  # fmt: skip
    _store_arg(p)
    _study_arg(p)
    p.add_argument("--mc", required=True, type=_sample_counts, metavar="T,...",
                   help="numbers of Monte Carlo passes, whole numbers >= 1, e.g. 10,50")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto (GPU when available), cpu or cuda (default: auto)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="where dataset files are looked for (default: $DROPOUTLAB_DATA, then a cache)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = sub.add_parser("report", help="write curves, tables and findings for a study in the store",
                       description="Read the store and write report.html (self-contained), report.md and the "
                       "PNG figures into --out; with --format json, print the numbers on stdout instead.")  # fmt: skip
    _store_arg(p)
    _study_arg(p)
    p.add_argument("--out", default="report", metavar="DIR", help="output folder (default: ./report)")
    p.add_argument("--baseline", metavar="KEY=VALUE,...",
                   help="configuration the others are compared with (default: every dropout rate 0)")  # fmt: skip
    p.add_argument("--format", choices=("files", "json"), default="files",
                   help="files: write the report into --out (default); json: print the numbers on stdout")  # fmt: skip
    p.add_argument("--alpha", type=float, default=0.05, metavar="A",
                   help="family-wise error rate of the report's tests (Holm), between 0 and 1 (default: 0.05)")  # fmt: skip
    p.add_argument("--confidence", type=float, default=0.95, metavar="C",
                   help="coverage of every interval in the report, between 0 and 1 (default: 0.95)")  # fmt: skip
    p.add_argument("--min-effect", type=float, default=None, metavar="D",
                   help="smallest difference in test accuracy worth detecting, as a fraction; 'seeds needed' "
                   "is computed for it (default: the study file's min_effect, else 0.01)")  # fmt: skip

    p = sub.add_parser("export", help="print the runs as JSON or CSV",
                       description="Print every run with its parameters, history, test score, settings and "
                       "environment: JSON as {\"runs\": [...]}, CSV as one row per run and epoch.")  # fmt: skip
    _store_arg(p)
    _study_arg(p)
    p.add_argument("--format", choices=("json", "csv"), default="json", help="output format (default: json)")

    sub.add_parser("datasets", help="list the datasets a study can name",
                   description="List the datasets a study can name, with their shapes and sources.")  # fmt: skip

    p = sub.add_parser("models", help="list the models, their dropout slots and the dropout kinds, or summarise one",
                       description="Without NAME, list the presets, the model families and their dropout slots, "
                       "and the dropout kinds a slot can use. With NAME, print the model's summary (layers, "
                       "output shapes, parameter counts) for a dataset's images.")  # fmt: skip
    p.add_argument(
        "name",
        nargs="?",
        help="a preset (mlp, cnn, lenet5), a family (resnet, gru, lstm, transformer) or a "
        "factory, module:function (a module in this folder or on PYTHONPATH: its code runs)",
    )
    p.add_argument(
        "--dataset", default="digits", help="dataset whose image shape and classes to use (default: digits)"
    )
    p.add_argument(
        "--dropout", metavar="SLOT=RATE,...", help="rates to show in a preset's summary, e.g. hidden1=0.5"
    )
    p.add_argument(
        "--batchnorm", action="store_true", help="a preset with batch norm before each hidden activation"
    )
    p.add_argument("--arg", metavar="KEY=VALUE", action="append", default=[],
                   help="a factory's keyword argument (a TOML value, e.g. width=64); repeat for more")  # fmt: skip
    for command in sub.choices.values():  # -v after the command too; SUPPRESS keeps one given before it
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="log what happens, step by step (on stderr)")  # fmt: skip
    return parser


def console() -> int:
    """The ``dropoutlab`` console script: :func:`main` on ``sys.argv``, then leave.

    Freezing the garbage collector before leaving spares the interpreter's last collection over
    every object of every imported module: measured 0.5 s of the exit of a process that
    imported torch, pandas and SciPy (2.9 s against 2.4 s in all, on a 2-core AMD EPYC).
    """
    status = main()
    gc.freeze()
    return status


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run the command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # -v: our steps only; other libraries' INFO (matplotlib's fonts...) is not the user's business
    logging.getLogger("dropoutlab").setLevel(logging.INFO if args.verbose else logging.NOTSET)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return COMMANDS[args.command](args)
    except DropoutlabError as exc:
        print(f"dropoutlab: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `dropoutlab export | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("dropoutlab: interrupted; finished runs are stored, run the same command again to resume",
              file=sys.stderr)  # fmt: skip
        return 130


def cmd_run(args) -> int:
    from dropoutlab.store import Store, check_store_file, check_writable, holds_store, is_url
    from dropoutlab.study import expand_runs, load_study, resolve_device, run_study
    from dropoutlab.study.design import check_design
    from dropoutlab.study.runner import RayOptions
    from dropoutlab.study.workers import resolve_workers

    study = load_study(args.study)
    resolve_workers(args.workers, resolve_device(args.device))  # bad flags fail before the store is touched
    ray = None
    if args.executor == "ray":
        from dropoutlab.study.ray_executor import import_ray

        import_ray()  # not installed: one line, before the store is touched
        cpus = args.cpus_per_task if args.cpus_per_task is not None else study.resources["cpus_per_task"]
        gpus = args.gpus_per_task if args.gpus_per_task is not None else study.resources.get("gpus_per_task")
        if not (0 < cpus < math.inf) or (gpus is not None and not 0 <= gpus < math.inf):
            raise DropoutlabError("--cpus-per-task must be a number > 0 and --gpus-per-task a number >= 0")
        if args.workers != "auto":
            raise DropoutlabError(
                "--workers is for the local executor; with --executor ray, Ray places the tasks"
            )
        cuda = resolve_device(args.device).type == "cuda"
        if gpus is not None and (gpus > 0) != cuda:
            where = "--gpus-per-task" if args.gpus_per_task is not None else "resources.gpus_per_task ="
            raise DropoutlabError(
                f"{where} {gpus:g} with a {'cuda' if cuda else 'cpu'} device: a task on cuda needs a GPU "
                "share above 0, one on the cpu none"
            )
        ray = RayOptions(args.address, cpus, gpus)
    elif args.address or args.cpus_per_task is not None or args.gpus_per_task is not None:
        raise DropoutlabError("--address, --cpus-per-task and --gpus-per-task are for --executor ray")
    if args.until_decided and args.min_effect is not None:
        study = dataclasses.replace(study, min_effect=args.min_effect)  # kept with the study, for the report
    design = _sequential_design(study, args.step, args.max_seeds) if args.until_decided else None
    if design is None and (
        args.step is not None or args.max_seeds is not None or args.min_effect is not None
    ):
        raise DropoutlabError("--step, --max-seeds and --min-effect are for --until-decided")
    if args.dry_run:
        runs = expand_runs(study)
        store, note = args.store, None
        if not is_url(store):
            check_store_file(Path(store))
            check_writable(Path(store), create_folder=False)
        if holds_store(store):
            with Store(store, readonly=True) as existing:
                stored = existing.count_runs(study.name)
                if args.replace:
                    note = f"{study.name}: would keep the {stored} stored runs as '{study.name}@archived-N'"
                    note = note if stored else None
                else:
                    note = check_design(existing.study_definition(study.name), study, existing.name)
                    if design is not None:
                        from dropoutlab.study.sequential import check_looks, planned_configs

                        looks = existing.looks(study.name)
                        check_looks(study.name, looks, design, list(planned_configs(study)["config"]))
                        if looks:
                            note = "\n".join(filter(None, [note, f"{study.name}: {_count(len(looks), 'look')} "
                                                            "stored; the run continues after the last"]))  # fmt: skip
        print(
            f"{study.name}: {_count(len(runs), 'run')} ({_count(len(runs) // len(study.seeds), 'configuration')} "
            f"x {_count(len(study.seeds), 'seed')})"
        )
        if note:
            print(note)
        if args.executor == "local":
            _print_memory(runs, args.device, args.stack, args.workers)
        if design is not None:
            _print_design(design, len(runs) // len(study.seeds))
        for run in runs:
            print(f"  {run.id}  seed {run.seed}  {', '.join(f'{k}={v}' for k, v in run.params.items())}")
        return 0
    options = dict(device=args.device, data_dir=args.data_dir, progress=False if args.no_progress else None,
                   stack=args.stack, workers=args.workers, replace=args.replace, keep_weights=args.keep_weights,
                   executor=args.executor, ray=ray, checkpoint_every=args.checkpoint_every,
                   checkpoint_minutes=args.checkpoint_minutes)  # fmt: skip
    with Store(args.store) as store:
        if design is not None:
            _print_sequential(_run_until_decided(study, store, design, options), store)
        else:
            _print_outcome(run_study(study, store, **options), store)
    return 0


def _sequential_design(study, step: int | None, max_seeds: int | None):
    """The design of ``--until-decided`` for ``study``: its seeds are the first look, ``step``
    and ``max_seeds`` from the flags, else its ``[sequential]`` table, else the defaults; its
    ``min_effect``; the baseline from ``[sequential] baseline``, else the configuration without
    dropout. Bad settings are one line each (DropoutlabError), before anything trains."""
    from dropoutlab.report.decide import Design
    from dropoutlab.report.stats import resolve_baseline
    from dropoutlab.study.sequential import check_size, planned_configs

    planned = planned_configs(study)
    labels = list(planned["config"])
    settings = study.sequential
    baseline = resolve_baseline(planned, settings.get("baseline")) if len(labels) > 1 else labels[0]
    if baseline is None:
        raise DropoutlabError(
            "--until-decided: no baseline: no configuration (or several) of the grid is without dropout; "
            'name one in the study file, e.g. [sequential] baseline = "optimizer.lr=0.001"'
        )
    design = Design(
        baseline,
        study.min_effect,
        start=len(study.seeds),
        step=step if step is not None else settings.get("step", DEFAULT_STEP),
        max_seeds=max_seeds if max_seeds is not None else settings.get("max_seeds", DEFAULT_MAX_SEEDS),
    )
    design.check(labels)
    check_size(len(labels), design.max_seeds)
    return design


def _run_until_decided(study, store, design, options: dict):
    from dropoutlab.report.decide import decide
    from dropoutlab.study.sequential import run_until_decided

    return run_until_decided(study, store, design, decide, **options)


def _print_design(design, configs: int) -> None:
    """The design ``--dry-run --until-decided`` shows: the looks planned and the most runs."""
    grid = design.grid()
    print(f"until decided: baseline {design.baseline}; min_effect {design.min_effect:g}, alpha {design.alpha:g}; "
          f"{_count(len(grid), 'look')} planned at {', '.join(map(str, grid))} seeds per configuration "
          f"(step {design.step}, max_seeds {design.max_seeds}): at most {configs * design.max_seeds} runs, "
          f"seeds added only where a look asks for them; the first look's runs:")  # fmt: skip


def _print_sequential(outcome, store) -> None:
    """The decision after ``--until-decided``, in a few plain lines."""
    from dropoutlab.report.summary import config_labels, summary_table

    for line in dict.fromkeys(
        line for step in outcome.steps for line in (step.note, *step.plan_notes) if line
    ):
        print(line)
    done = ", ".join(f"{n} {status}" for status, n in sorted(outcome.statuses.items())) or "nothing new"
    print(f"{outcome.study}: {_count(len(outcome.looks), 'look')} stored, {outcome.taken} taken now; "
          f"runs trained: {done} in {outcome.wall_s:.1f} s")  # fmt: skip
    runs = store.runs(outcome.study)
    print(summary_table(runs))
    if outcome.stopped:
        print(outcome.stopped)
    decision = outcome.decision
    if decision is not None:
        design = decision.design
        name = config_labels(runs, base=design.baseline).get  # the table's and the report's names
        path = "; ".join(
            f"{look['look']} at {look['seeds']} seeds: "
            + ", ".join(f"{n} {v}" for v, n in _verdict_counts(look["comparisons"]).items() if n)
            for look in outcome.looks
        )
        print(f"looks: {path}")
        counts = _verdict_counts([{"verdict": c.verdict} for c in decision.comparisons])
        print(
            f"verdicts against {name(design.baseline)}: " + ", ".join(f"{n} {v}" for v, n in counts.items())
        )
        print(f"choose: {name(decision.choice)} (rule: {decision.rule})")
        print(f"could be best: {'; '.join(map(name, decision.could_be_best))}")
        state = "done" if decision.done else "not done"
        print(f"{state}: {decision.reason}; seeds spent: {outcome.spent} runs of at most {outcome.max_runs} "
              f"({design.max_seeds} seeds x {outcome.max_runs // design.max_seeds} configurations)")  # fmt: skip
    print(f"store: {store.name}")


def _verdict_counts(comparisons) -> dict[str, int]:
    counts = dict.fromkeys(("better", "worse", "equivalent", "undecided"), 0)
    for c in comparisons:
        counts[c["verdict"]] += 1
    return counts


def cmd_evaluate(args) -> int:
    from dropoutlab.store import Store
    from dropoutlab.study.evaluate import evaluate_mc

    with Store(args.store, create=False) as store:
        study = store.resolve_study(args.study)
        outcome = evaluate_mc(store, study, args.mc, args.device, args.data_dir,
                              progress=False if args.no_progress else None)  # fmt: skip
    print(f"{study}: Monte Carlo dropout with {', '.join(map(str, args.mc))} passes measured for "
          f"{_count(outcome.evaluated, 'run')} and stored in {store.name}")  # fmt: skip
    if outcome.without_weights:
        print(f"{_count(outcome.without_weights, 'completed run')} without stored weights were left out "
              "(trained without --keep-weights)")  # fmt: skip
    return 0


def _print_outcome(outcome, store) -> None:
    from dropoutlab.report.summary import summary_table

    done = ", ".join(f"{n} {status}" for status, n in sorted(outcome.statuses.items())) or "nothing new"
    if outcome.note:
        print(outcome.note)
    for line in outcome.plan_notes:
        print(line)
    print(f"{outcome.study}: {outcome.planned} runs planned, {outcome.skipped} already stored, {done}"
          + (f" in {outcome.wall_s:.1f} s" if outcome.statuses else ""))  # fmt: skip
    print(summary_table(store.runs(outcome.study)))
    print(f"store: {store.name}")


def cmd_demo(args) -> int:
    from dropoutlab.store import Store
    from dropoutlab.study import load_study, resolve_device

    out = Path(args.out)
    resolve_device(args.device)
    with resources.as_file(resources.files("dropoutlab") / "examples" / "demo.toml") as path:
        study = load_study(path)
    design = _sequential_design(study, None, None)
    with Store(out / DEFAULT_STORE) as store:
        _print_sequential(_run_until_decided(study, store, design, {"device": args.device}), store)
        paths = _write_report(store, study.name, out / "report")
    print(f"report: {paths['html']}")
    return 0


def cmd_report(args) -> int:
    from dropoutlab.report.write import report_numbers
    from dropoutlab.store import Store

    with Store(args.store, readonly=True) as store:
        study = store.resolve_study(args.study)
        levels = {"alpha": args.alpha, "confidence": args.confidence, "min_effect": args.min_effect}
        if args.format == "json":
            print(json.dumps(report_numbers(store, study, args.baseline, **levels), indent=2))
            return 0
        paths = _write_report(store, study, Path(args.out), baseline=args.baseline, **levels)
    print(f"report: {paths['html']}")
    return 0


def _write_report(store, study: str, out: Path, **options) -> dict[str, Path]:
    """``write_study_report``, with a folder that cannot be written (or a full disk) as one line."""
    from dropoutlab.report.write import write_study_report

    try:
        return write_study_report(store, study, out, **options)
    except OSError as exc:  # the store is only read: nothing stored is at risk
        raise DropoutlabError(f"{out}: cannot write the report ({exc.strerror or exc})") from None


def cmd_export(args) -> int:
    from dropoutlab.report.export import export_csv, export_json
    from dropoutlab.store import Store

    with Store(args.store, readonly=True) as store:
        study = store.resolve_study(args.study) if args.study else None
        records = store.records(study, skip_damaged=True)  # damaged runs: named on stderr, counted
    sys.stdout.write(export_json(records) if args.format == "json" else export_csv(records))
    return 0


def cmd_datasets(args) -> int:
    from dropoutlab.data import list_datasets

    print(f"{'name':<15}{'images':<12}{'classes':>8}{'train':>8}{'test':>8}  source")
    for info in list_datasets():
        shape = "x".join(map(str, info.input_shape))
        print(
            f"{info.name:<15}{shape:<12}{info.num_classes:>8}{info.train_size:>8}{info.test_size:>8}  {info.source}"
        )
    print("npz:PATH       a Keras-layout .npz (x_train, y_train, x_test, y_test): images or (N, F) features")
    print("csv:PATH?label=COLUMN  a CSV table of features and a label column (docs/datasets.md)")
    return 0


#: One line per dropout kind whose class docstring opens with something else.
KIND_SUMMARIES = {"standard": "Bernoulli dropout with inverted scaling, as torch.nn.Dropout (the default)."}


def _print_memory(runs, device_name: str, stack, workers) -> None:
    """--dry-run's line on memory: the peak budgeted per worker and in total (train/plan.py); a
    plan that needs more than the machine has available is refused, naming the setting to lower,
    in the line a run gives (``run_study`` checks the same before anything trains)."""
    from dropoutlab.study import resolve_device
    from dropoutlab.study.workers import resolve_workers
    from dropoutlab.train.plan import check_memory, size_text, study_memory

    device = resolve_device(device_name)
    plan, free = study_memory(runs, device, stack, resolve_workers(workers, device))
    largest = plan.largest
    what = f"a stack of {largest.members} runs" if largest.members > 1 else "one run"
    print(f"memory: at most {size_text(largest.total)} per worker ({what}), {size_text(plan.total)} for "
          f"{_count(plan.workers, 'worker')} at once; {size_text(free)} available on {device.type}")  # fmt: skip
    check_memory(plan, free, device)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def cmd_models(args) -> int:
    from dropoutlab.data import dataset_info
    from dropoutlab.models import (
        DESCRIPTIONS,
        FAMILIES,
        PRESETS,
        count_parameters,
        dropout_kinds,
        dropout_slots,
        family_summary,
        summarize_model,
        with_batchnorm,
    )
    from dropoutlab.models.spec import check_rate

    if args.name is None:
        print("presets (a layer list; batchnorm = true adds batch norm before each hidden activation):")
        for name, layers in PRESETS.items():
            print(
                f"  {name:<12}{DESCRIPTIONS[name]}\n{'':14}dropout slots: {', '.join(dropout_slots(layers))}"
            )
        print("  custom      a list of layers in the study file, see docs/study-files.md")
        print("your own network (a function returning an nn.Module; its dropout modules are the slots):")
        print("  module:function, e.g. `dropoutlab models own_nets:make_cnn`; see docs/study-files.md")
        print("families (their own modules, trained one run at a time; see docs/families.md):")
        for family in FAMILIES.values():
            print(f"  {family.name:<12}{family.description}\n{'':14}dropout slots: {', '.join(family.slots)}")
        print("dropout kinds (dropout.kind, or a slot's kind; where each makes sense):")
        for kind, cls in dropout_kinds().items():
            where = ", ".join(sorted(getattr(cls, "applies_to", ()))) or "dense, image"
            summary = KIND_SUMMARIES.get(kind) or (cls.__doc__ or "").strip().splitlines()[0].replace(
                "``", ""
            )
            print(f"  {kind:<12}{summary} [{where}]")
        return 0
    info = dataset_info(args.dataset)
    shape = "x".join(map(str, info.input_shape))
    if ":" in args.name:
        return _print_user_model(args, info)
    if args.arg:
        raise DropoutlabError(f"--arg applies to a factory (module:function); {args.name} is not one")
    if args.name in FAMILIES:
        if args.dropout or args.batchnorm:
            raise DropoutlabError(
                f"--dropout and --batchnorm apply to presets; {args.name} is a model family"
            )
        rows = family_summary(args.name, info.input_shape, info.num_classes)
        print(f'Model: "{args.name}" on {info.name} ({shape}, {info.num_classes} classes)')
        print(f"{'Module (type)':<48}{'Param #':>12}")
        print("=" * 60)
        for row in rows:
            print(f"{row.name + ' (' + row.kind + ')':<48}{row.params:>12,}")
        print("=" * 60)
        print(f"Total params: {count_parameters(args.name, info.input_shape, info.num_classes):,}")
        print(f"Dropout slots: {', '.join(FAMILIES[args.name].slots)}")
        return 0
    if args.name not in PRESETS:
        raise DropoutlabError(f"unknown model {args.name!r}; allowed: {', '.join([*PRESETS, *FAMILIES])}")
    layers = with_batchnorm(PRESETS[args.name]) if args.batchnorm else PRESETS[args.name]
    slots = dropout_slots(layers)
    rates = {}
    for item in filter(None, (args.dropout or "").split(",")):
        slot, _, value = item.partition("=")
        if slot not in slots:
            raise DropoutlabError(
                f"--dropout: unknown slot {slot!r} for {args.name}; its slots: {', '.join(slots)}"
            )
        try:
            rates[slot] = check_rate(float(value), f"--dropout {slot}")
        except ValueError:
            raise DropoutlabError(f"--dropout {slot}: {value!r} is not a number in [0, 1)") from None
    rows = summarize_model(layers, rates, info.input_shape, info.num_classes)
    print(f'Model: "{args.name}" on {info.name} ({shape}, {info.num_classes} classes)')
    print(f"{'Layer (type)':<32}{'Output Shape':<20}{'Param #':>10}")
    print("=" * 62)
    for row in rows:
        print(f"{row.name + ' (' + row.kind + ')':<32}{str((None, *row.output_shape)):<20}{row.params:>10,}")
    print("=" * 62)
    print(f"Total params: {sum(r.params for r in rows):,}")
    print(
        f"Dropout slots: {', '.join(f'{s}={rates.get(s, d)}' for s, d in slots.items())} (rate 0 adds no layer)"
    )
    return 0


def _print_user_model(args, info) -> int:
    """``dropoutlab models module:function``: the factory's modules with parameters, then the
    dropout slots found (module path, class, rate, where it sits) and the parameter count."""
    from pathlib import Path

    import tomllib

    from dropoutlab.models.user import remember_folder, user_summary
    from dropoutlab.study.settings import parse_dropout, parse_factory

    factory_args = {}
    for item in args.arg:
        key, sep, text = item.partition("=")
        try:
            factory_args[key.strip()] = tomllib.loads(f"v = {text}")["v"] if sep else None
        except tomllib.TOMLDecodeError:
            factory_args[key.strip()] = text  # a bare word is text
        if not sep:
            raise DropoutlabError(f"--arg: {item!r} is not KEY=VALUE, e.g. width=64")
    remember_folder(args.name, Path.cwd())
    model = {"factory": args.name, **factory_args}
    path, factory_args, user = parse_factory(model, info)
    table = dict(item.partition("=")[::2] for item in filter(None, (args.dropout or "").split(",")))
    try:
        table = {slot: float(value) for slot, value in table.items()}
    except ValueError:
        raise DropoutlabError(f"--dropout: {args.dropout!r} is not SLOT=RATE,... with numbers") from None
    rates = parse_dropout(table, user.slots, path)[0]
    shape = "x".join(map(str, info.input_shape))
    print(f'Model: "{path}" on {info.name} ({shape}, {info.num_classes} classes)')
    print(f"{'Module (type)':<48}{'Param #':>12}")
    print("=" * 60)
    for name, kind, params in user_summary(path, factory_args):
        print(f"{name + ' (' + kind + ')':<48}{params:>12,}")
    print("=" * 60)
    print(f"Total params: {user.params:,}")
    if not user.slots:
        print(
            "Dropout slots: none (no nn.Dropout, Dropout1d/2d/3d, AlphaDropout or FeatureAlphaDropout module)"
        )
        return 0
    print("Dropout slots (grid key dropout.SLOT; rate as the factory sets it, or --dropout):")
    width = max(len(slot) for slot in user.slots) + 2
    for slot, rate in rates.items():
        print(f"  {slot:<{width}}{user.classes[slot]:<20}rate {rate:<6g}on {_SITES[user.sites[slot]]}")
    return 0


_SITES = {"image": "images (N, C, H, W)", "dense": "feature vectors (N, F)", "other": "other inputs",
          "weights": "feature vectors (N, F) that an nn.Linear reads next (dropconnect fits)"}  # fmt: skip


COMMANDS = {
    "demo": cmd_demo,
    "run": cmd_run,
    "evaluate": cmd_evaluate,
    "report": cmd_report,
    "export": cmd_export,
    "datasets": cmd_datasets,
    "models": cmd_models,
}

if __name__ == "__main__":
    sys.exit(console())
