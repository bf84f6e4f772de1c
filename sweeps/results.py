"""The sweep's results table: `<sweep>/results.parquet`, one row per finished trial per evaluation
point (the trial's metrics rows, which carry its coordinates, setting and node, plus `sweep`,
`trial_id` and the spec's `select_on`; columns in scaling.schema).

It holds every finished trial folder under trials/, planned now or not: a `--resume` with a spec
that dropped a family or a size keeps what those trials measured. It is rebuilt from the trial
folders and replaced atomically (temp file + rename) each time a trial finishes, so a reader never
sees half a file and the table survives a crash of the sweep. Unfinished trials are left out: their
rows may still be rolled back by a resume.
"""
from __future__ import annotations

import os
from pathlib import Path

from scaling.schema import FINISHED, METRICS_FILE, RESULTS_FILE
from sweeps.outcome import read_outcome
from sweeps.status import trial_folders


def collect_rows(sweep_dir: Path, sweep: str, select_on: str = "validation") -> list[dict]:
    from scaling.reporting import read_rows

    rows = []
    for trial_dir in trial_folders(sweep_dir):
        if read_outcome(trial_dir).state not in FINISHED:
            continue
        for row in read_rows(trial_dir / METRICS_FILE):
            rows.append({"sweep": sweep, "trial_id": trial_dir.name, "select_on": select_on, **row})
    return rows


def write_results(sweep_dir: Path, sweep: str, select_on: str = "validation") -> Path:
    import pandas as pd

    path = sweep_dir / RESULTS_FILE
    frame = pd.DataFrame(collect_rows(sweep_dir, sweep, select_on))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path
