"""The sweep's results table: `<sweep>/results.parquet`, one row per finished trial per evaluation
point (the trial's metrics rows plus `sweep`, `trial_id` and the grid's `peak_lr`).

It is rebuilt from the trial folders and replaced atomically (temp file + rename) each time a
trial finishes, so a reader never sees half a file and the table survives a crash of the sweep.
Unfinished trials are left out: their rows may still be rolled back by a resume.
"""
from __future__ import annotations

import os
from pathlib import Path

from sweeps.grid import TrialPlan
from sweeps.outcome import FINISHED, read_outcome

RESULTS_FILE = "results.parquet"
TRIALS_DIR = "trials"


def collect_rows(sweep_dir: Path, sweep: str, plans: list[TrialPlan]) -> list[dict]:
    from scaling.reporting import read_rows
    from scaling.train import METRICS

    rows = []
    for plan in plans:
        trial_dir = sweep_dir / TRIALS_DIR / plan.trial_id
        if read_outcome(trial_dir).state not in FINISHED:
            continue
        for row in read_rows(trial_dir / METRICS):
            rows.append({"sweep": sweep, "trial_id": plan.trial_id, "peak_lr": plan.config.optim.lr, **row})
    return rows


def write_results(sweep_dir: Path, sweep: str, plans: list[TrialPlan]) -> Path:
    import pandas as pd

    path = sweep_dir / RESULTS_FILE
    frame = pd.DataFrame(collect_rows(sweep_dir, sweep, plans))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path
