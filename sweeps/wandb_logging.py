"""One W&B run per trial, opened inside the trial (so it works on any node of a cluster).

Runs are grouped by sweep, tagged by family, size and resolved kernel, and every evaluation row
is logged against FLOPs (`define_metric("*", step_metric="flops")`), so a workspace shows
quality vs compute per family directly. Offline unless the user is logged in.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaling.config import TrialConfig
from scaling.reporting import read_rows
from scaling.train import METRICS

DEFAULT_HOST = "https://api.wandb.ai"
CONFIG_KEYS = ("seed", "budget", "params_embedding", "params_nonembedding")  # constant per trial: config, not history


@dataclass(frozen=True, kw_only=True)
class WandbSettings:
    mode: str  # "online" | "offline"
    project: str
    group: str  # the sweep's name
    entity: str | None = None


def _logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:  # the netrc entry `wandb login` writes; an internal module, so any failure means "not logged in"
        from wandb.sdk.lib.wbauth.wbnetrc import read_netrc_auth

        return bool(read_netrc_auth(host=os.environ.get("WANDB_BASE_URL", DEFAULT_HOST)))
    except Exception:
        return False


def resolve_mode(enabled: bool) -> str | None:
    """None (no W&B at all), "offline" or "online": online only with an API key and WANDB_MODE not offline."""
    if not enabled:
        return None
    env = os.environ.get("WANDB_MODE", "").lower()
    if env == "disabled":
        return None
    if env in ("offline", "dryrun"):
        return "offline"
    return "online" if _logged_in() else "offline"


class WandbReporter:
    """A Reporter that logs each row's numbers to the trial's W&B run (strings go to the summary)."""

    def __init__(self, settings: WandbSettings, trial_id: str, cfg: TrialConfig, trial_dir: Path) -> None:
        import wandb

        self.metrics_path = trial_dir / METRICS
        self.logged = 0
        self.run = wandb.init(
            project=settings.project, entity=settings.entity, group=settings.group, name=trial_id,
            job_type="trial", tags=[cfg.family, cfg.size], mode=settings.mode, dir=str(trial_dir),
            config={**cfg.to_dict(), "trial_id": trial_id, "sweep": settings.group},
            settings=wandb.Settings(silent=True, console="off"),
        )
        self.run.define_metric("flops")
        self.run.define_metric("*", step_metric="flops")

    def _log(self, row: dict[str, Any]) -> None:
        if self.logged == 0 and row.get("kernel"):
            self.run.tags = (*self.run.tags, f"kernel:{row['kernel']}")
            self.run.config.update({k: row.get(k) for k in ("kernel", "params_embedding", "params_nonembedding")},
                                   allow_val_change=True)
        numbers = {k: v for k, v in row.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in CONFIG_KEYS}
        self.run.log(numbers)
        self.run.summary.update({k: row.get(k) for k in ("status", "error", "eval_kind")})
        self.logged += 1

    def report(self, row: dict[str, Any]) -> None:
        if self.logged == 0:
            # A resumed trial starts after the rows it checkpointed: log those first, so this run
            # holds the whole curve. (metrics.jsonl is written before reporters see `row`.)
            for earlier in read_rows(self.metrics_path)[:-1]:
                self._log(earlier)
        self._log(row)

    def finish(self, exit_code: int) -> None:
        if self.logged == 0 and self.metrics_path.exists():  # resumed after its last row: nothing new came
            for row in read_rows(self.metrics_path):
                self._log(row)
        self.run.finish(exit_code=exit_code)
