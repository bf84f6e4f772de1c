"""`grscale demo`: the main job end to end on this machine's CPU.

A sweep of HSTU and DLRM sizes over FLOPs budgets on the synthetic data (sweeps/specs/demo.yaml)
under a local Ray with W&B offline, then the fits and the report. Finished trials are kept:
running it again resumes where it stopped, and a completed demo only redoes the analysis.
"""
from __future__ import annotations

import argparse
import sys
import time
from importlib import resources
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo", help="run the demo study: a small HSTU-vs-DLRM sweep on synthetic data, fits and report",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("--out", type=Path, default=Path("runs"), help="parent of the sweep folder (default runs)")
    demo.add_argument("--spec", type=Path, help="another sweep spec to run the same way")
    demo.add_argument("--no-wandb", action="store_true", help="no W&B runs (default: offline)")
    demo.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals")
    demo.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from analysis.cli import report_sweep
    from sweeps.launcher import LaunchOptions, run_sweep
    from sweeps.spec import load_spec

    spec_path = args.spec or Path(str(resources.files("sweeps") / "specs" / "demo.yaml"))
    started = time.perf_counter()
    status = run_sweep(spec_path, LaunchOptions(out=args.out, resume=True, wandb=not args.no_wandb))
    if status in (130, 143):  # stopped by SIGINT / SIGTERM: its trials checkpointed, nothing to fit yet
        print("demo interrupted: `grscale demo` again resumes it", file=sys.stderr)
        return status
    sweep_dir = args.out.resolve() / load_spec(spec_path).name
    result, report_dir = report_sweep(sweep_dir, n_resamples=args.bootstrap, wandb=not args.no_wandb)
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s; report: {report_dir / 'report.md'} "
          f"(and report.html)")
    pct = round(100 * result.level)
    print(f"fitted exponents ({result.metric.fitted} vs training FLOPs, {pct}% bootstrap intervals):")
    for family, fit in result.fits.items():
        sat = fit.intervals["saturating.alpha"]
        power = fit.exponent_interval("power")
        print(f"  {family:7s} saturating alpha = {fit.saturating.alpha:.3f} [{sat.low:.3f}, {sat.high:.3f}]  "
              f"pure power-law alpha = {fit.power.alpha:.3f} [{power.low:.3f}, {power.high:.3f}]")
    for refusal in result.refusals:
        print(f"  not fitted: {refusal.family} {refusal.analysis}: {refusal.message}")
    return status
