"""The Ray Tune trainable: one `scaling.train` trial, its rows reported to Tune and W&B.

It lives in the package (Ray workers cannot import test modules). A trial that raises is
closed as `failed` in its folder, with its error, and returns normally: the sweep goes on and
Tune's console stays quiet (the traceback goes to the trial folder's error.txt).
"""
from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweeps.wandb_logging import WandbSettings


@dataclass(frozen=True, kw_only=True)
class TrialPayload:
    """Everything a worker needs for one trial; plain data, shipped once through Ray's object store."""

    trial_id: str
    config: dict[str, Any]  # TrialConfig.to_dict()
    trial_dir: str  # absolute: workers may run elsewhere (a shared filesystem is assumed)
    resume: bool
    threads: int  # torch threads: the trial's CPU share
    wandb: WandbSettings | None


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
    os.environ["GRSCALE_TORCH_THREADS"] = str(payload.threads)  # read by train_to_budget
    cfg = TrialConfig.from_dict(payload.config)
    trial_dir = Path(payload.trial_dir)
    trial_dir.mkdir(parents=True, exist_ok=True)
    reporters: list[Any] = [TuneReporter()]
    wandb_run = WandbReporter(payload.wandb, payload.trial_id, cfg, trial_dir) if payload.wandb else None
    if wandb_run is not None:
        reporters.append(wandb_run)
    exit_code = 1
    try:
        result = train_to_budget(cfg, trial_dir, reporters, resume=payload.resume)
        exit_code = 0 if result.status == "done" else 1
    except Exception as error:  # noqa: BLE001 - any trial error is recorded, the sweep goes on
        (trial_dir / "error.txt").write_text(traceback.format_exc())
        record_failure(trial_dir, cfg, error_line(error), reporters)
    finally:
        if wandb_run is not None:
            wandb_run.finish(exit_code)
