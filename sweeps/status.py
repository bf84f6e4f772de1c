"""A sweep folder's state: its plan, who holds it, and `grscale sweep status`.

`sweep run` writes plan.json (every planned trial's id and coordinates) when it launches and holds
the folder's lock while it works there. `sweep status` reads spec.yaml's name, plan.json and the
trial folders, nothing else: it needs neither the data nor torch nor Ray, and works while the
sweep runs, after it ends and after a crash. A started, unfinished trial is "running" only while
a sweep holds the lock; otherwise it is "interrupted" (stopped by a signal, or its sweep was killed).
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from scaling.errors import GrscaleError
from scaling.schema import (
    FINISHED, INTERRUPTED, LOCK_FILE, PLAN_FILE, SPEC_FILE, STATES, TRIALS_DIR, short_number,
)
from sweeps.outcome import STARTED, read_outcome

if TYPE_CHECKING:
    from sweeps.grid import TrialPlan


# --- the plan -------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class PlannedTrial:
    """A trial as plan.json records it: its id and coordinates."""

    trial_id: str
    family: str
    size: str
    budget: float
    seed: int
    setting: dict[str, Any]
    # A branch's start: the FLOPs its trunk spends before it (the branch spends budget - start); 0 otherwise
    start: float = 0.0

    @property
    def preset(self) -> str:
        return f"{self.family}-{self.size}"


def planned(plan: TrialPlan) -> PlannedTrial:
    cfg = plan.config
    start = cfg.branch.start if cfg.branch.role == "branch" else 0.0
    return PlannedTrial(trial_id=plan.trial_id, family=cfg.model.family, size=cfg.model.size, budget=cfg.budget,
                        seed=cfg.seed, setting=cfg.setting, start=start)


def write_plan(sweep_dir: Path, trials: list[PlannedTrial]) -> None:
    from scaling.files import atomic_write_text

    atomic_write_text(sweep_dir / PLAN_FILE, json.dumps({"trials": [vars(t) for t in trials]}, indent=1))


def load_sweep(sweep_dir: Path) -> tuple[str, list[PlannedTrial]]:
    """The sweep's name (from its spec.yaml) and planned trials (from plan.json)."""
    import yaml

    if not (sweep_dir / SPEC_FILE).exists():
        raise GrscaleError(f"{sweep_dir} is not a sweep folder: it has no {SPEC_FILE} (expected runs/<sweep>)")
    if not (sweep_dir / PLAN_FILE).exists():
        raise GrscaleError(f"{sweep_dir} has no {PLAN_FILE} (a sweep launched by an older grscale): "
                           f"`grscale sweep run SPEC --resume` writes it")
    name = yaml.safe_load((sweep_dir / SPEC_FILE).read_text())["name"]
    trials = json.loads((sweep_dir / PLAN_FILE).read_text())["trials"]
    return name, [PlannedTrial(**t) for t in trials]


def trial_folders(sweep_dir: Path) -> list[Path]:
    trials = sweep_dir / TRIALS_DIR
    return sorted(d for d in trials.iterdir() if d.is_dir()) if trials.is_dir() else []


def unlisted_finished(sweep_dir: Path, trials: list[PlannedTrial]) -> list[str]:
    """Finished trials the plan no longer lists (a spec that dropped a family or a size): their rows stay."""
    listed = {t.trial_id for t in trials}
    return [d.name for d in trial_folders(sweep_dir)
            if d.name not in listed and read_outcome(d).state in FINISHED]


# --- the lock: one `sweep run` per folder -----------------------------------------------------------
# flock: the kernel releases it when its holder dies, however it dies, so a killed sweep never
# leaves its folder locked (on NFS, Linux maps it onto the server's byte-range locks).
class SweepLock:
    """The folder's lock, held by this process until `release` (or its death)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def release(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> SweepLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        info = {}
    if not info:
        return "details not written yet"
    return f"pid {info['pid']} on host {info['host']}, since {info['started']}"


def hold_sweep(sweep_dir: Path, wait_s: float = 1.0) -> SweepLock:
    """Take the folder's lock, or raise naming its holder. `wait_s`: how long a lock held for a
    moment (a `sweep status` looking) is waited for."""
    fd = os.open(sweep_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            holder = _holder(fd)
            os.close(fd)
            raise GrscaleError(f"{sweep_dir} is in use by another `grscale sweep run` ({holder}): one sweep "
                               f"runs in a folder at a time; wait for it, or stop it and pass --resume") from None
    details = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(details).encode(), 0)
    return SweepLock(fd)


def sweep_holder(sweep_dir: Path) -> str | None:
    """Who holds the folder's lock ("pid N on host H, since T"), None when no sweep runs there."""
    try:
        fd = os.open(sweep_dir / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None  # free (released when fd closes)
    except BlockingIOError:
        return _holder(fd)
    finally:
        os.close(fd)


# --- the table --------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class StatusCounts:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    flops_spent: float = 0.0
    flops_total: float = 0.0

    def add(self, state: str, spent: float, budget: float) -> None:
        self.counts[state] += 1
        self.flops_spent += spent
        self.flops_total += budget


def shown_state(state: str, live: bool) -> str:
    """A trial folder's state as the table shows it: started and unfinished is running while a sweep
    holds the folder (`live`), else interrupted."""
    if state == STARTED:
        return "running" if live else INTERRUPTED
    return state


def sweep_status(sweep_dir: Path, trials: list[PlannedTrial], live: bool) -> dict[str, StatusCounts]:
    """Counts per preset (`hstu-xs`, ...) and under "total". The FLOPs are what each trial computes
    itself: a branch's rows begin with its trunk's, whose compute the trunk's row counts."""
    table: dict[str, StatusCounts] = {}
    for trial in trials:
        outcome = read_outcome(sweep_dir / TRIALS_DIR / trial.trial_id)
        # A finished trial spent its budget (it may overshoot by part of a step): count that, capped.
        spent = max(min(outcome.flops, trial.budget) - trial.start, 0.0)
        for key in (trial.preset, "total"):
            table.setdefault(key, StatusCounts()).add(shown_state(outcome.state, live), spent,
                                                      trial.budget - trial.start)
    table["total"] = table.pop("total", StatusCounts())  # last row
    return table


def format_status(name: str, table: dict[str, StatusCounts], unlisted: Sequence[str] = ()) -> str:
    title = f"sweep {name}"
    width = max(len(title), *(len(k) for k in table))
    header = f"{title:{width}s}  " + "  ".join(f"{s:>11s}" for s in STATES) + "   FLOPs spent / total"
    lines = [header]
    for key, row in table.items():
        cells = "  ".join(f"{row.counts[s]:11d}" for s in STATES)
        share = row.flops_spent / row.flops_total if row.flops_total else 0.0
        lines.append(f"{key:{width}s}  {cells}   {short_number(row.flops_spent)} / {short_number(row.flops_total)} "
                     f"({share:.0%})")
    if unlisted:
        lines.append(f"{len(unlisted)} finished trial(s) the spec no longer lists (their rows stay in the results): "
                     f"{', '.join(unlisted)}")
    return "\n".join(lines)
