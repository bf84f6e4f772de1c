"""Sweep overhead: what Ray Tune, start-up and W&B cost around the trials' own training.

Targets (2-core CPU): overhead per trial < 3 s; a sweep of 12 small trials spends >= 80% of
its wall time inside training and evaluation. Each sweep runs as the user runs it, as
`grscale sweep run` in a fresh process (2 trials at a time, 1 CPU each, W&B offline unless
said), and is timed from process start to exit. Definitions:
- train time: the sum over trials of their final row's `wall_s` (the trainer's own clock over
  its training and evaluation loop; data loading, model building, W&B and Ray are outside it).
- efficiency = train time / (sweep wall time x concurrency).
- start-up: process start -> the first trial's run_info.json (imports, spec check, ray.init,
  worker start, the first trial's data and model). Paid once per sweep.
- overhead per trial = (concurrency x (wall - start-up) - train time) / trials: everything else
  a trial costs (Ray scheduling, W&B init/finish, data and model, results table), amortised;
  measured on trials that train for ~0.2 s so that it is most of their time.
Run: .venv/bin/python benchmarks/sweep_overhead.py   (writes benchmarks/sweep_overhead.md)
"""
from __future__ import annotations

import datetime
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
CONCURRENCY = 2
SHARED = {"families": {"hstu": ["xs"]}, "resources": {"cpus": 1}, "max_concurrent_trials": CONCURRENCY}
TINY = {**SHARED, "synthetic": {"num_users": 120, "num_items": 60, "mean_seq_len": 10, "seed": 1},
        "budgets": [1e8, 2e8, 3e8], "seeds": [0, 1, 2, 3],
        "trial": {"data": {"max_seq_len": 16}, "optim": {"batch_size": 32}, "model": {"loss": {"num_negatives": 16}}}}
# "Small" = the demo's trials: 10-20 s each on an idle 2-core CPU (the ~9 s start-up of a sweep
# process is paid once, so much shorter trials measure start-up, which the tiny sweeps already do).
SMALL = {**SHARED, "synthetic": {"num_users": 1000, "num_items": 500, "mean_seq_len": 20, "seed": 0},
         "budgets": [6e10, 9e10, 1.2e11], "seeds": [0, 1, 2, 3],
         "trial": {"data": {"max_seq_len": 32}, "optim": {"batch_size": 64}, "model": {"loss": {"num_negatives": 32}}}}


@dataclass(frozen=True, kw_only=True)
class SweepTiming:
    what: str
    trials: int
    wall_s: float
    startup_s: float
    train_s: float

    @property
    def efficiency(self) -> float:
        return self.train_s / (self.wall_s * CONCURRENCY)

    @property
    def steady_efficiency(self) -> float:
        """Efficiency once the one-time start-up is paid: what longer sweeps tend to."""
        return self.train_s / ((self.wall_s - self.startup_s) * CONCURRENCY)

    @property
    def overhead_per_trial_s(self) -> float:
        return (CONCURRENCY * (self.wall_s - self.startup_s) - self.train_s) / self.trials


def time_sweep(what: str, spec: dict, root: Path, wandb: bool) -> SweepTiming:
    name = what.split()[0]
    spec_path = root / f"{name}.yaml"
    spec_path.write_text(yaml.safe_dump({"name": name, **spec}))
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true")
    command = [sys.executable, "-m", "scaling.cli", "sweep", "run", str(spec_path), "--out", str(root)]
    launched = time.time()
    subprocess.run(command + ([] if wandb else ["--no-wandb"]), cwd=REPO, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.time() - launched
    table = pd.read_parquet(root / name / "results.parquet")
    finals = table[table["eval_kind"] == "final"]
    assert set(finals["status"]) == {"done"}, finals[["trial_id", "status", "error"]]
    first_start = min(p.stat().st_mtime for p in (root / name / "trials").glob("*/run_info.json"))
    return SweepTiming(what=what, trials=len(finals), wall_s=wall, startup_s=first_start - launched,
                       train_s=float(finals["wall_s"].sum()))


def git_sha() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def report(timings: list[SweepTiming], load: tuple[float, float]) -> str:
    lines = [
        "# Sweep overhead benchmark", "",
        f"machine: 2-core CPU ({os.cpu_count()} cores seen), no GPU; date {datetime.date.today()}; git {git_sha()}; "
        f"{CONCURRENCY} trials at a time, 1 CPU each; load average before/after: {load[0]:.1f} / {load[1]:.1f} "
        "(other engineers' tests share this machine: timings are noisy)", "",
        "| sweep | trials | wall s | start-up s | train s | overhead per trial s | efficiency | after start-up |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in timings:
        lines.append(f"| {t.what} | {t.trials} | {t.wall_s:.1f} | {t.startup_s:.1f} | {t.train_s:.1f} | "
                     f"{t.overhead_per_trial_s:.2f} | {t.efficiency:.0%} | {t.steady_efficiency:.0%} |")
    lines += ["", "Targets: overhead per trial < 3 s (tiny sweeps); efficiency >= 80% (small sweep).", "",
              "Definitions (see the benchmark's docstring): wall = `grscale sweep run` process start to exit; "
              "train s = sum of the trials' final `wall_s` (training + evaluation); efficiency = train s / "
              f"(wall x {CONCURRENCY}); after start-up = train s / ((wall - start-up) x {CONCURRENCY}); start-up = process start -> first trial's run_info.json; overhead per "
              f"trial = ({CONCURRENCY} x (wall - start-up) - train s) / trials."]
    return "\n".join(lines) + "\n"


def main() -> None:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        timings = [
            time_sweep("tiny (W&B offline)", TINY, root, wandb=True),
            time_sweep("tiny-nowandb (--no-wandb)", TINY, root, wandb=False),
            time_sweep("small (W&B offline)", SMALL, root, wandb=True),
        ]
    text = report(timings, (load_before, os.getloadavg()[0]))
    print(text)
    (Path(__file__).with_name("sweep_overhead.md")).write_text(text)


if __name__ == "__main__":
    main()
