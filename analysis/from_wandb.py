"""`grscale fit|report --from-wandb ENTITY/PROJECT --group SWEEP`: a sweep's results table read back
from its W&B runs, so the analysis runs from the dashboard's data alone.

Each trial's run holds its rows whole in its history (sweeps/wandb_logging.py); they are turned
back into the rows of `results.parquet` (sweeps/results.py): the finished trials' (done, diverged,
failed), one run per trial (the latest, where a sweep was run again from scratch). The table is
kept as a snapshot, `results.parquet` in a folder of its own (--out, default runs/SWEEP-wandb)
with `wandb_snapshot.json` saying where and when it came from, and the analysis reads it from
there as it reads a sweep folder. Runs come through a RunsSource, so tests put a local one in
place of W&B; W&B itself is read only when online, each request bounded by a timeout.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from scaling import files
from scaling.errors import GrscaleError
from scaling.schema import FINISHED, RESULTS_FILE
from sweeps.wandb_logging import bounded, resolve_mode, row_from_history

if TYPE_CHECKING:
    import pandas as pd

SNAPSHOT_INFO = "wandb_snapshot.json"
CONNECT_TIMEOUT_S = 30.0  # logging in and listing the group's runs
HISTORY_TIMEOUT_S = 120.0  # one run's history


@dataclass(frozen=True)
class LoggedRun:
    """What the read-back needs of one W&B run."""

    name: str
    config: dict[str, Any]
    summary: dict[str, Any]
    history: list[dict[str, Any]] = field(repr=False)  # every logged row, with W&B's `_step`
    created_at: str = ""  # ISO time: the latest of a trial's runs wins


class RunsSource(Protocol):
    def trial_runs(self, path: str, group: str) -> Iterable[LoggedRun]:
        """The trial runs of W&B group `group` in project `path` (ENTITY/PROJECT)."""
        ...


class WandbRuns:
    """wandb.Api, each network step bounded (W&B's client retries an unreachable server for minutes)."""

    def trial_runs(self, path: str, group: str) -> Iterable[LoggedRun]:
        import wandb

        def listing():
            api = wandb.Api(timeout=int(CONNECT_TIMEOUT_S))
            return list(api.runs(path, filters={"group": group, "jobType": "trial"}))

        for run in bounded(listing, CONNECT_TIMEOUT_S):
            history = bounded(lambda run=run: list(run.scan_history()), HISTORY_TIMEOUT_S)
            yield LoggedRun(name=run.name, config=dict(run.config), summary=dict(run.summary), history=history,
                            created_at=str(run.created_at or ""))


def results_frame(runs: Iterable[LoggedRun]) -> pd.DataFrame:
    """The results table of the finished trials' runs: rows in trial then step order."""
    import pandas as pd

    latest: dict[str, LoggedRun] = {}
    for run in sorted(runs, key=lambda r: r.created_at):
        if "trial_id" in run.config and run.summary.get("status") in FINISHED:
            latest[run.config["trial_id"]] = run
    rows = [row_from_history(entry, run.config)
            for _, run in sorted(latest.items())
            for entry in sorted(run.history, key=lambda e: e.get("_step", 0))]
    return pd.DataFrame(rows)


def _project_path(path: str) -> str:
    parts = path.split("/")
    if len(parts) != 2 or not all(parts):
        raise GrscaleError(f"--from-wandb: expected ENTITY/PROJECT, got {path!r}")
    return path


def default_folder(group: str) -> Path:
    return Path("runs") / f"{group}-wandb"


def snapshot_from_wandb(path: str, group: str | None, folder: Path | None = None,
                        source: RunsSource | None = None) -> Path:
    """Read the sweep's runs, write the snapshot (results.parquet and SNAPSHOT_INFO) into `folder`
    (default runs/GROUP-wandb) and return that folder; one clear error where there is nothing to read."""
    if not group:
        raise GrscaleError("--from-wandb needs --group SWEEP: the sweep's W&B group (its name)")
    path = _project_path(path)
    folder = Path(folder) if folder is not None else default_folder(group)
    earlier = folder / RESULTS_FILE
    kept = f"; the snapshot read earlier is {earlier}" if earlier.exists() else ""
    if resolve_mode(True) != "online":
        raise GrscaleError(f"cannot read {path} from W&B: W&B is offline (WANDB_MODE=offline, or no API key){kept}")
    try:
        runs = list((source or WandbRuns()).trial_runs(path, group))
    except Exception as error:  # noqa: BLE001 - unreachable, refused, a missing project: one line
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise GrscaleError(f"cannot read {path} from W&B: {first}{kept}") from None
    frame = results_frame(runs)
    if frame.empty:
        found = f"{len(runs)} trial run(s), none finished" if runs else "no trial runs"
        raise GrscaleError(f"W&B project {path} has {found} in group {group!r}")
    files.atomic_write(folder / RESULTS_FILE, lambda handle: frame.to_parquet(handle, index=False))
    info = {"source": path, "group": group, "trials": int(frame["trial_id"].nunique()), "rows": len(frame),
            "read_at": datetime.now(UTC).isoformat(timespec="seconds")}
    files.atomic_write_text(folder / SNAPSHOT_INFO, json.dumps(info, indent=1) + "\n")
    print(f"read {info['trials']} trials ({info['rows']} rows) of {path}, group {group}, from W&B: "
          f"snapshot {folder / RESULTS_FILE}")
    return folder


def source_folder(given: Path | None, from_wandb: str | None, group: str | None, out: Path | None) -> Path:
    """The results the analysis reads: `given` (a table or sweep folder), or a snapshot read from W&B
    into `out` (default runs/GROUP-wandb)."""
    if (given is None) == (from_wandb is None):
        raise GrscaleError("give either a results table / sweep folder or --from-wandb ENTITY/PROJECT, not both")
    if from_wandb is None:
        if group is not None:
            raise GrscaleError("--group goes with --from-wandb")
        return given
    return snapshot_from_wandb(from_wandb, group, out)
