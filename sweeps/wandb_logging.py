"""One W&B run per trial, opened inside the trial (so it works on any node of a cluster).

Runs are named by trial id and grouped by sweep; tags and flat config keys slice them (family,
size, budget bucket, learning rate, variant, seed, resolved kernel, and the trial a run branches
from where a row names one). Every evaluation row is logged whole against FLOPs
(`define_metric("*", step_metric="flops")`), with the trial's average tokens/s beside it, so a
workspace shows quality vs compute per family directly and `row_from_history` gives the rows back
(analysis/from_wandb.py). The summary holds planned and achieved FLOPs, their ratio and, once the
trial ends, whether it missed its budget. Offline unless the user is logged in. An interrupted
trial keeps its run: the resumed trial continues it (WandbReporter).
"""
from __future__ import annotations

import json
import os
import secrets
import string
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from analysis.budget import flops_ratio, missed_budget
from scaling.files import atomic_write_text
from scaling.reporting import read_rows
from scaling.schema import FINISHED, INTERRUPTED, METRICS_FILE, WANDB_RUN_FILE, short_number

if TYPE_CHECKING:
    from scaling.config import TrialConfig

DEFAULT_HOST = "https://api.wandb.ai"
# In every row and constant per trial (base rows and failure rows both carry them): config, not history.
CONFIG_KEYS = ("seed", "budget")
DERIVED_PREFIX = "throughput/"  # history keys computed here from a row, not columns of the results table
# Row fields the summary states for the whole run (an interrupted run's status is "interrupted", its
# last row's "running"): in the history under ROW_PREFIX, since W&B fills a summary key from the
# history's latest value of the same name when the run closes.
SUMMARY_KEYS = ("status", "error", "eval_kind")
ROW_PREFIX = "row/"
TOKENS_PER_S = f"{DERIVED_PREFIX}tokens_per_s"
T = TypeVar("T")
LINEAGE_KEY = "trunk"  # a branch's rows name the trunk its run continues (carried into config and tags)


@dataclass(frozen=True, kw_only=True)
class WandbSettings:
    mode: str  # "online" | "offline"
    project: str
    group: str  # the sweep's name
    entity: str | None = None
    select_on: str = "validation"  # the spec's, a column of the results table the runs give back


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


def bounded(call: Callable[[], T], timeout_s: float) -> T:
    """call() in a daemon thread, waiting at most timeout_s: W&B's client retries a server it cannot
    reach for minutes; a command must not hang on it. Raises what call raised, or TimeoutError."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError(f"no answer from W&B within {timeout_s:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _new_run_id() -> str:
    """8 characters of [a-z0-9], as W&B's own ids."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


def run_tags(cfg: TrialConfig) -> list[str]:
    """Family and size bare (as before), then `key:value` tags a workspace filter can slice on."""
    return [cfg.model.family, cfg.model.size, f"budget:{short_number(cfg.budget)}", f"lr:{short_number(cfg.optim.lr)}",
            f"variant:{cfg.model.variant}", f"seed:{cfg.seed}"]


def run_config(trial_id: str, cfg: TrialConfig, settings: WandbSettings) -> dict[str, Any]:
    """The trial's whole config, plus flat keys to group and filter by (the budget bucket is the
    budget as trial ids name it: 1e8, 3.16e9)."""
    return {**cfg.to_dict(), "trial_id": trial_id, "sweep": settings.group, "select_on": settings.select_on,
            "family": cfg.model.family, "size": cfg.model.size, "budget_bucket": short_number(cfg.budget),
            "peak_lr": cfg.optim.lr, "variant": cfg.model.variant}


def history_entry(row: dict[str, Any]) -> dict[str, Any]:
    """What one row logs to the run's history: every field but CONFIG_KEYS (SUMMARY_KEYS renamed), and
    the tokens/s so far."""
    entry = {ROW_PREFIX + k if k in SUMMARY_KEYS else k: v for k, v in row.items() if k not in CONFIG_KEYS}
    tokens, wall_s = row.get("tokens"), row.get("wall_s")
    if isinstance(tokens, (int, float)) and isinstance(wall_s, (int, float)) and wall_s > 0:
        entry[TOKENS_PER_S] = tokens / wall_s
    return entry


def row_from_history(entry: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The results-table row (sweeps/results.py) that a history entry of a trial's run was logged from."""
    row = {k.removeprefix(ROW_PREFIX): v for k, v in entry.items() if not k.startswith(("_", DERIVED_PREFIX))}
    return {"sweep": config["sweep"], "trial_id": config["trial_id"], "select_on": config.get("select_on", "validation"),
            **row, **{k: config[k] for k in CONFIG_KEYS}}


def flops_summary(planned: float, achieved: float) -> dict[str, float]:
    return {"flops_planned": planned, "flops_achieved": achieved, "flops_ratio": flops_ratio(achieved, planned)}


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
        self.budget = cfg.budget
        self.run = wandb.init(
            project=settings.project, entity=settings.entity, group=settings.group, name=trial_id,
            id=self.run_id, resume="allow", job_type="trial", tags=run_tags(cfg),
            mode=settings.mode, dir=str(trial_dir), config=run_config(trial_id, cfg, settings),
            settings=wandb.Settings(silent=True, console="off"),
        )
        self.run.define_metric("flops")
        self.run.define_metric("*", step_metric="flops")

    def _save(self) -> None:
        payload = json.dumps({"run_id": self.run_id, "rows_logged": self.logged})
        atomic_write_text(self.state_path, payload)

    def _tag(self, row: dict[str, Any]) -> None:
        """The resolved kernel, parameter counts and lineage, known from the trial's first row (each
        part of a resumed run is tagged again: an offline part carries its own tags)."""
        tags = [f"kernel:{row['kernel']}"] if row.get("kernel") else []
        if row.get(LINEAGE_KEY):
            tags.append(f"trunk:{row[LINEAGE_KEY]}")
        self.run.tags = (*self.run.tags, *tags)
        keys = ("kernel", "params_embedding", "params_nonembedding", *([LINEAGE_KEY] if row.get(LINEAGE_KEY) else []))
        self.run.config.update({k: row.get(k) for k in keys}, allow_val_change=True)
        self.tagged = True

    def _log(self, index: int, row: dict[str, Any]) -> None:
        self.run.log(history_entry(row), step=index)
        self.run.summary.update({k: row.get(k) for k in SUMMARY_KEYS})
        self.logged = index + 1

    def _catch_up(self) -> list[dict[str, Any]]:
        """Log the rows of metrics.jsonl this run does not hold yet (metrics.jsonl is written before
        reporters see a row; a resumed trial re-emits rows past its checkpoint, which the run holds).
        Returns every row of the trial."""
        rows = read_rows(self.metrics_path)
        if rows and not self.tagged:
            self._tag(rows[0])
        for index in range(self.logged, len(rows)):
            self._log(index, rows[index])
        if rows:
            self.run.summary.update(flops_summary(self.budget, rows[-1].get("flops") or 0.0))
            self.run.summary["mfu"] = rows[-1].get("mfu")  # the trial's, over all its training steps so far
        return rows

    def report(self, row: dict[str, Any]) -> None:
        self._catch_up()

    def finish(self, status: str, error: str | None) -> None:
        """Close the run: `status` is the trial's (done, diverged, failed or interrupted). A trial
        that ended is flagged `budget_missed` when its FLOPs are off its budget by more than 1%."""
        rows = self._catch_up()
        if status in FINISHED:
            achieved = (rows[-1].get("flops") if rows else None) or 0.0
            self.run.summary["budget_missed"] = bool(missed_budget(flops_ratio(achieved, self.budget)))
        if status == INTERRUPTED:
            self.run.summary.update({"status": status, "error": error})
            self.run.mark_preempting()  # W&B's state for a run that stops to be resumed
        self.run.finish(exit_code=0 if status == "done" else 1)
        self._save()
