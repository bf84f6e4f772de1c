"""What a trial folder says about its trial: its state, FLOPs spent and rows; and how a failure is
recorded there (status.json `failed`, plus a final row with the error), so that `sweep status`,
the results table and `--resume` all read one source of truth.

Reading a folder needs the standard library only (`sweep status` loads neither torch nor numpy).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from scaling.reporting import JsonlReporter, Reporter, read_rows, write_status
from scaling.schema import METRICS_FILE, RUN_INFO_FILE, STATUS_FILE

if TYPE_CHECKING:
    from scaling.config import TrialConfig

STARTED = "started"  # run_info.json or rows, no status.json: running, or killed before it could say so


@dataclass(frozen=True, kw_only=True)
class TrialOutcome:
    state: str  # a status.json status (schema.FINISHED or "interrupted"), STARTED or "pending"
    flops: float  # spent, as of the last status or finished evaluation
    error: str | None = None


def _last_row(metrics: Path) -> dict[str, Any]:
    rows = read_rows(metrics)
    return rows[-1] if rows else {}


def read_outcome(trial_dir: Path) -> TrialOutcome:
    status_path = trial_dir / STATUS_FILE
    if status_path.exists():
        status = json.loads(status_path.read_text())
        return TrialOutcome(state=status["status"], flops=float(status.get("flops") or 0.0), error=status.get("error"))
    metrics = trial_dir / METRICS_FILE
    if metrics.exists() or (trial_dir / RUN_INFO_FILE).exists():
        return TrialOutcome(state=STARTED, flops=float(_last_row(metrics).get("flops") or 0.0))
    return TrialOutcome(state="pending", flops=0.0)


def error_line(error: BaseException) -> str:
    """One line: the exception's message (with its type unless it is our own input error)."""
    from scaling.errors import GrscaleError

    lines = str(error).strip().splitlines()
    message = lines[0] if lines else ""
    if isinstance(error, GrscaleError) and message:
        return message
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def recorded_node(trial_dir: Path) -> str | None:
    """The machine that ran the trial, as its run_info.json says."""
    info = trial_dir / RUN_INFO_FILE
    return json.loads(info.read_text()).get("node") if info.exists() else None


def record_failure(trial_dir: Path, cfg: TrialConfig, error: str, reporters: Iterable[Reporter] = (),
                   node: str | None = None) -> None:
    """Close a trial as failed: a final row carrying the error (also sent to `reporters`) and status.json.

    `node` is the machine the trial failed on; the driver, recording a worker that died, passes
    none and the trial's own record (its last row, else run_info.json) names it."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    metrics = trial_dir / METRICS_FILE
    last = _last_row(metrics)
    row = {"family": cfg.model.family, "size": cfg.model.size, "task": cfg.task, "dataset": cfg.data.dataset_name,
           "split": cfg.data.split, "seed": cfg.seed, "budget": cfg.budget, **cfg.setting,
           "flops": last.get("flops", 0.0), "step": last.get("step", 0),
           "wall_s": last.get("wall_s", 0.0), "status": "failed", "error": error, "eval_kind": "final",
           "node": node or last.get("node") or recorded_node(trial_dir)}
    for reporter in (JsonlReporter(metrics), *reporters):
        reporter.report(row)
    write_status(trial_dir, "failed", error, row["flops"], row["step"])
