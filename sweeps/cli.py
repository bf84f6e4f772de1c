"""`grscale sweep run SPEC`, `grscale sweep status DIR` and `grscale dashboard DIR`. Heavy imports stay in the
handlers."""
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
    run.add_argument("--dashboard", action="store_true",
                     help="first build the sweep's W&B workspace, as `grscale dashboard` does")
    run.set_defaults(func=_run)

    status = commands.add_parser(
        "status", help="trials done/running/interrupted/pending/diverged/failed and FLOPs spent",
        description="Read a sweep folder (OUT/<name>) and print its progress table. A started, unfinished trial "
                    "is running while a `sweep run` holds the folder, else interrupted (continue it with --resume).")
    status.add_argument("dir", type=Path, metavar="DIR", help="the sweep folder, e.g. runs/synthetic-small")
    status.set_defaults(func=_status)

    dashboard = subparsers.add_parser(
        "dashboard", help="a saved W&B workspace for a sweep (its spec in the sweep folder offline)",
        description="Build the sweep's W&B workspace (FLOPs on a log x-axis, a section per task metric, learning "
                    "rate and throughput, the fitted laws) and save it; its spec goes to DIR/dashboard.json. Offline "
                    "(WANDB_MODE=offline, no API key, or W&B unreachable) it prints the command that saves that spec "
                    "later: `grscale dashboard --spec DIR/dashboard.json`.")
    source = dashboard.add_mutually_exclusive_group(required=True)
    source.add_argument("dir", type=Path, nargs="?", metavar="DIR", help="the sweep folder, e.g. runs/synthetic-small")
    source.add_argument("--spec", type=Path, metavar="FILE", help="save a workspace spec written before")
    dashboard.add_argument("--entity", help="W&B entity (default: the spec's, else your default entity)")
    dashboard.add_argument("--timeout", type=float, default=20.0, metavar="S",
                           help="seconds to wait for W&B before leaving the spec to save later (default 20)")
    dashboard.set_defaults(func=_dashboard)


def _run(args: argparse.Namespace) -> int:
    from sweeps.launcher import LaunchOptions, run_sweep

    if args.dashboard:
        from sweeps.dashboard import describe, publish
        from sweeps.spec import load_spec

        spec = load_spec(args.spec)
        sweep_dir = args.out.resolve() / spec.name
        sweep_dir.mkdir(parents=True, exist_ok=True)
        print(describe(publish(spec, sweep_dir)), flush=True)
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


def _dashboard(args: argparse.Namespace) -> int:
    from sweeps.dashboard import describe, load_sweep_spec, publish, save_spec_file

    if args.spec is not None:
        outcome = save_spec_file(args.spec, entity=args.entity, timeout_s=args.timeout)
    else:
        outcome = publish(load_sweep_spec(args.dir), args.dir, entity=args.entity, timeout_s=args.timeout)
    print(describe(outcome))
    return 0
