"""What a trial folder says about its trial: its state, FLOPs spent and rows; and how a failure is
recorded there (status.json `failed`, plus a final row with the error), so that `sweep status`,
the results table and `--resume` all read one source of truth."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from scaling.config import TrialConfig
from scaling.data.cache import atomic_write
from scaling.reporting import JsonlReporter, Reporter, read_rows
from scaling.train import METRICS

FINISHED = ("done", "diverged", "failed")
STATES = ("done", "running", "pending", "diverged", "failed")
STATUS_FILE = "status.json"


@dataclass(frozen=True, kw_only=True)
class TrialOutcome:
    state: str  # one of STATES; "running" = started and unfinished (interrupted if no sweep is running)
    flops: float  # spent, as of the last finished evaluation
    error: str | None = None


def read_outcome(trial_dir: Path) -> TrialOutcome:
    status_path = trial_dir / STATUS_FILE
    if status_path.exists():
        status = json.loads(status_path.read_text())
        return TrialOutcome(state=status["status"], flops=float(status.get("flops") or 0.0), error=status.get("error"))
    metrics = trial_dir / METRICS
    if metrics.exists() or (trial_dir / "run_info.json").exists():
        rows = read_rows(metrics) if metrics.exists() else []
        return TrialOutcome(state="running", flops=float(rows[-1]["flops"]) if rows else 0.0)
    return TrialOutcome(state="pending", flops=0.0)


def error_line(error: BaseException) -> str:
    """One line: the exception's message (with its type unless it is our own input error)."""
    from scaling.errors import GrscaleError

    lines = str(error).strip().splitlines()
    message = lines[0] if lines else ""
    if isinstance(error, GrscaleError) and message:
        return message
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def record_failure(trial_dir: Path, cfg: TrialConfig, error: str, reporters: Iterable[Reporter] = ()) -> None:
    """Close a trial as failed: a final row carrying the error (also sent to `reporters`) and status.json."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    metrics = trial_dir / METRICS
    last: dict[str, Any] = read_rows(metrics)[-1] if metrics.exists() and metrics.stat().st_size else {}
    row = {"family": cfg.family, "size": cfg.size, "task": cfg.task, "dataset": cfg.dataset, "seed": cfg.seed,
           "budget": cfg.budget, "flops": last.get("flops", 0.0), "step": last.get("step", 0),
           "wall_s": last.get("wall_s", 0.0), "status": "failed", "error": error, "eval_kind": "final"}
    for reporter in (JsonlReporter(metrics), *reporters):
        reporter.report(row)
    payload = json.dumps({"status": "failed", "error": error, "flops": row["flops"], "step": row["step"]})
    atomic_write(trial_dir / STATUS_FILE, lambda handle: handle.write(payload.encode()))
