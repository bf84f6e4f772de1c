"""`grscale sweep run SPEC` and `grscale sweep status DIR`. Heavy imports stay in the handlers."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    sweep = subparsers.add_parser("sweep", help="run a sweep spec under Ray Tune; show a sweep's status",
                                  description="Sweeps: many trials from one YAML spec (see sweeps/specs/).")
    commands = sweep.add_subparsers(dest="sweep_command", required=True, metavar="SUBCOMMAND")

    run = commands.add_parser(
        "run", help="run the spec's trials (one scaling.train trial each) under Ray Tune",
        description="Expand SPEC into trials and run them under Ray Tune. Results go to OUT/<name>/: trials/, "
                    "tune/ and results.parquet (a row per trial per evaluation).")
    run.add_argument("spec", type=Path, metavar="SPEC", help="sweep spec (YAML)")
    run.add_argument("--out", type=Path, default=Path("runs"), help="parent folder of the sweep folder (default runs)")
    run.add_argument("--address", help="address of an existing Ray cluster (default: start a local Ray)")
    run.add_argument("--resume", action="store_true",
                     help="continue the sweep in OUT/<name>: skip finished trials, resume the others from checkpoints "
                          "(SIGINT or SIGTERM checkpoints the running trials and prints this command)")
    run.add_argument("--no-wandb", action="store_true", help="no W&B runs (default: offline unless logged in)")
    run.set_defaults(func=_run)

    status = commands.add_parser(
        "status", help="trials done/running/interrupted/pending/diverged/failed and FLOPs spent",
        description="Read a sweep folder (OUT/<name>) and print its progress table. A started, unfinished trial "
                    "is running while a `sweep run` holds the folder, else interrupted (continue it with --resume).")
    status.add_argument("dir", type=Path, metavar="DIR", help="the sweep folder, e.g. runs/synthetic-small")
    status.set_defaults(func=_status)


def _run(args: argparse.Namespace) -> int:
    from sweeps.launcher import LaunchOptions, run_sweep

    return run_sweep(args.spec, LaunchOptions(out=args.out, address=args.address, resume=args.resume,
                                              wandb=not args.no_wandb))


def _status(args: argparse.Namespace) -> int:
    # sweeps.status reads the folder only: no torch, no Ray, no data (a test holds it to that).
    from sweeps.status import format_status, load_sweep, sweep_holder, sweep_status, unlisted_finished

    name, trials = load_sweep(args.dir)
    holder = sweep_holder(args.dir)
    if holder:
        print(f"running: a `grscale sweep run` holds this folder ({holder})")
    print(format_status(name, sweep_status(args.dir, trials, live=holder is not None),
                        unlisted_finished(args.dir, trials)))
    return 0
