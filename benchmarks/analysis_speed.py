"""How long `grscale fit` + `grscale report` take on a 200-trial sweep (target: under 30 s).

2 families x 5 sizes x 5 budgets x 4 seeds, Chinchilla-form laws with 1% noise, 1000
bootstrap resamples, W&B offline. Prints a table and writes benchmarks/analysis_speed.md.

    .venv/bin/python benchmarks/analysis_speed.py
"""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analysis.report import report_tables, write_report  # noqa: E402
from analysis.results import load_results  # noqa: E402
from analysis.study import analyze  # noqa: E402
from analysis.wandb_log import log_report  # noqa: E402
from tests.analysis.synth import chinchilla, results_table  # noqa: E402

RESAMPLES = 1000
LAWS = {"hstu": chinchilla(1.69, 406.4, 0.34, 410.7, 0.28), "dlrm": chinchilla(2.5, 300.0, 0.3, 300.0, 0.2)}


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def sweep_table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    budgets, sizes = np.logspace(15, 19, 5), np.logspace(6, 9, 5)
    return pd.concat([
        results_table(law, family=family, sizes={f"{family}-{i}": n for i, n in enumerate(sizes)}, budgets=budgets,
                      seeds=4, noise=0.01, rng=rng, sweep="bench")
        for family, law in LAWS.items()
    ])


def main() -> int:
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    with tempfile.TemporaryDirectory() as tmp:
        sweep = Path(tmp) / "bench"
        sweep.mkdir()
        sweep_table().to_parquet(sweep / "results.parquet")
        timings = {}
        start = time.perf_counter()
        frame = load_results(sweep)
        timings["load results"] = time.perf_counter() - start
        t = time.perf_counter()
        result = analyze(frame, n_resamples=RESAMPLES)
        timings[f"fits + {RESAMPLES} bootstrap resamples"] = time.perf_counter() - t
        t = time.perf_counter()
        paths = write_report(result, sweep / "report")
        timings["figures + report.md/html"] = time.perf_counter() - t
        t = time.perf_counter()
        log_report(result, paths, report_tables(result), "grscale-bench", sweep / "report")
        timings["W&B offline summary run"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - start
    n_trials = frame["trial_id"].nunique()
    rows = "\n".join(f"| {name} | {seconds:.2f} |" for name, seconds in timings.items())
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    text = f"""# Analysis speed

`benchmarks/analysis_speed.py`: fits and report for a generated sweep of {n_trials} trials
(2 families x 5 sizes x 5 budgets x 4 seeds; saturating, power and log-linear laws per family,
IsoFLOP profiles and frontier, L(N, D), comparison; {RESAMPLES} bootstrap resamples, 90% intervals).
Target: under 30 s.

| stage | seconds |
|---|---|
{rows}

Machine: {os.cpu_count()}-core CPU ({cpu_name()}, {platform.machine()}), Python {platform.python_version()},
numpy {np.__version__}, pandas {pd.__version__}. Date: {datetime.date.today().isoformat()}. Commit: {sha or 'unknown'}.
"""
    (REPO / "benchmarks" / "analysis_speed.md").write_text(text)
    print(f"{n_trials} trials, {RESAMPLES} resamples")
    for name, seconds in timings.items():
        print(f"{name:<40} {seconds:8.2f} s")
    return 0 if timings["total"] < 30 else 1


if __name__ == "__main__":
    sys.exit(main())
