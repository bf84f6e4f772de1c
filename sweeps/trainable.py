"""The Ray Tune trainable: one `scaling.train` trial, its rows reported to Tune and W&B.

It lives in the package (Ray workers cannot import test modules). A trial that raises is
closed as `failed` in its folder, with its error, and returns normally: the sweep goes on and
Tune's console stays quiet (the traceback goes to the trial folder's error.txt).

A sweep that is told to stop (SIGINT or SIGTERM to `grscale sweep run`) writes a stop file into
the sweep folder: a running trial sees it after its current step, checkpoints and returns as
"interrupted"; a trial that had not started yet returns without touching its folder. A file,
not a Ray message: workers on other nodes see the sweep folder, which every node shares.
"""
from __future__ import annotations

import gc
import socket
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaling.allocator import return_freed_memory
from scaling.files import atomic_write_text
from sweeps.spec import Resources
from sweeps.wandb_logging import WandbSettings


class StopFile:
    """The sweep's stop request, as a trial's `should_stop`: the signal's name once requested."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def request(self, reason: str) -> None:
        # Atomic: a trial polling between a plain write's create and its write would read an empty
        # file and report "a stop request" instead of the signal's name (seen once in CI).
        atomic_write_text(self.path, reason)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def __call__(self) -> str | None:
        # Asked after every step: a failed open is microseconds against a step's milliseconds, and
        # asking every step is what makes a stop land within one step of the signal.
        try:
            return self.path.read_text().strip() or "a stop request"
        except FileNotFoundError:
            return None


@dataclass(frozen=True, kw_only=True)
class TrialPayload:
    """Everything a worker needs for one trial; plain data, shipped once through Ray's object store."""

    trial_id: str
    config: dict[str, Any]  # TrialConfig.to_dict()
    trial_dir: str  # absolute: workers may run elsewhere (the sweep folder is on a shared file system)
    stop_file: str
    resume: bool
    wandb: WandbSettings | None
    resources: Resources = Resources()  # workers > 1: a Ray Train job (sweeps/train_workers.py)


class TuneReporter:
    def report(self, row: dict[str, Any]) -> None:
        from ray import tune

        tune.report(dict(row))


def run_trial(config: dict[str, Any], payloads: dict[str, TrialPayload]) -> None:
    """Tune's function trainable: `config` holds only the grid coordinate, `trial_id`."""
    from scaling.config import TrialConfig
    from scaling.train import train_to_budget
    from sweeps.outcome import error_line, record_failure
    from sweeps.wandb_logging import WandbReporter

    payload = payloads[config["trial_id"]]
    stop = StopFile(Path(payload.stop_file))
    if stop():
        # The sweep is stopping: this trial does not start. Tune wants a result from every trial
        # (without one it warns and prints a line of its own).
        TuneReporter().report({"started": False})
        return
    cfg = TrialConfig.from_dict(payload.config)
    trial_dir = Path(payload.trial_dir)
    trial_dir.mkdir(parents=True, exist_ok=True)
    if payload.resources.workers > 1:
        from sweeps.train_workers import run_worker_group

        # Ray Train's own files go beside the trials, in the sweep folder (which holds the stop file).
        run_worker_group(payload, cfg.runtime.device, Path(payload.stop_file).parent / "train")
        return
    reporters: list[Any] = [TuneReporter()]
    wandb_run = WandbReporter(payload.wandb, payload.trial_id, cfg, trial_dir) if payload.wandb else None
    if wandb_run is not None:
        reporters.append(wandb_run)
    status, error = "failed", None
    try:
        result = train_to_budget(cfg, trial_dir, reporters, resume=payload.resume, should_stop=stop)
        status, error = result.status, result.error
    except Exception as exc:  # noqa: BLE001 - any trial error is recorded, the sweep goes on
        (trial_dir / "error.txt").write_text(traceback.format_exc())
        error = error_line(exc)
        record_failure(trial_dir, cfg, error, reporters, node=socket.gethostname())
    finally:
        if wandb_run is not None:
            wandb_run.finish(status, error)
        # The actor runs the sweep's next trial: what this one's allocator kept goes back first.
        gc.collect()
        return_freed_memory()
