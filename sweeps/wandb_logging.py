"""One W&B run per trial, opened inside the trial (so it works on any node of a cluster).

Runs are grouped by sweep, tagged by family, size and resolved kernel, and every evaluation row
is logged against FLOPs (`define_metric("*", step_metric="flops")`), so a workspace shows
quality vs compute per family directly. Offline unless the user is logged in. An interrupted
trial keeps its run: the resumed trial continues it (WandbReporter).
"""
from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaling.files import atomic_write_text
from scaling.reporting import read_rows
from scaling.schema import INTERRUPTED, METRICS_FILE, WANDB_RUN_FILE

if TYPE_CHECKING:
    from scaling.config import TrialConfig

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


def _new_run_id() -> str:
    """8 characters of [a-z0-9], as W&B's own ids."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


class WandbReporter:
    """A Reporter that logs the trial's rows to its W&B run (numbers to the history, strings to the summary).

    A trial keeps one W&B run across interruptions: the run's id and how many of the trial's rows
    it holds are kept in the trial folder (WANDB_RUN_FILE), and a resumed trial reopens that run
    (`resume="allow"`) and logs only the rows it does not hold yet. Each row is logged at W&B step
    = its index in metrics.jsonl, so the parts of an interrupted run continue one history (an
    offline run's parts are separate folders with one run id, which `wandb sync` joins). The id is
    stored, not derived from the sweep and trial names: a sweep deleted and run again gets new runs
    instead of appending to the old ones. The count is stored when a part finishes, once W&B has
    flushed it: a part that was killed (W&B buffers its file; measured: nothing of it was written)
    holds none of its rows for sure, so the next part logs them again.
    """

    def __init__(self, settings: WandbSettings, trial_id: str, cfg: TrialConfig, trial_dir: Path) -> None:
        import wandb

        self.metrics_path = trial_dir / METRICS_FILE
        self.state_path = trial_dir / WANDB_RUN_FILE
        state = json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
        self.run_id: str = state.get("run_id") or _new_run_id()
        self.logged: int = state.get("rows_logged", 0)
        self._save()  # the id, before the run exists: a part killed before it finishes still continues it
        self.tagged = False
        self.run = wandb.init(
            project=settings.project, entity=settings.entity, group=settings.group, name=trial_id,
            id=self.run_id, resume="allow", job_type="trial", tags=[cfg.model.family, cfg.model.size],
            mode=settings.mode, dir=str(trial_dir),
            config={**cfg.to_dict(), "trial_id": trial_id, "sweep": settings.group},
            settings=wandb.Settings(silent=True, console="off"),
        )
        self.run.define_metric("flops")
        self.run.define_metric("*", step_metric="flops")

    def _save(self) -> None:
        payload = json.dumps({"run_id": self.run_id, "rows_logged": self.logged})
        atomic_write_text(self.state_path, payload)

    def _tag(self, row: dict[str, Any]) -> None:
        """The resolved kernel and parameter counts, known from the trial's first row (each part of a
        resumed run is tagged again: an offline part carries its own tags)."""
        if row.get("kernel"):
            self.run.tags = (*self.run.tags, f"kernel:{row['kernel']}")
        self.run.config.update({k: row.get(k) for k in ("kernel", "params_embedding", "params_nonembedding")},
                               allow_val_change=True)
        self.tagged = True

    def _log(self, index: int, row: dict[str, Any]) -> None:
        numbers = {k: v for k, v in row.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in CONFIG_KEYS}
        self.run.log(numbers, step=index)
        self.run.summary.update({k: row.get(k) for k in ("status", "error", "eval_kind")})
        self.logged = index + 1

    def _catch_up(self) -> None:
        """Log the rows of metrics.jsonl this run does not hold yet (metrics.jsonl is written before
        reporters see a row; a resumed trial re-emits rows past its checkpoint, which the run holds)."""
        rows = read_rows(self.metrics_path)
        if rows and not self.tagged:
            self._tag(rows[0])
        for index in range(self.logged, len(rows)):
            self._log(index, rows[index])

    def report(self, row: dict[str, Any]) -> None:
        self._catch_up()

    def finish(self, status: str, error: str | None) -> None:
        """Close the run: `status` is the trial's (done, diverged, failed or interrupted)."""
        self._catch_up()
        if status == INTERRUPTED:
            self.run.summary.update({"status": status, "error": error})
            self.run.mark_preempting()  # W&B's state for a run that stops to be resumed
        self.run.finish(exit_code=0 if status == "done" else 1)
        self._save()
