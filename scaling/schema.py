"""The results schema: what a trial's rows hold, the files a run and a sweep write, the tasks and
the direction of every metric. A leaf module (standard library only), so the trainer, the sweep
launcher, `sweep status` and the analysis agree on one definition and the last two never load torch.

A trial's coordinates are (family, size, budget, setting, seed): the setting is every swept
hyperparameter (SETTING_COLUMNS), so trials that differ in learning rate or variant are never
averaged as seeds. Every evaluation row carries the coordinates, the measures at that point, and
`eval_kind` ("val" during training, "final" once: test at the best validation point).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# --- files --------------------------------------------------------------------------------------
METRICS_FILE = "metrics.jsonl"  # a run's rows, one JSON object per line, appended and synced
STATUS_FILE = "status.json"  # a run's state once it stops: {"status", "error", "flops", "step"}
RUN_INFO_FILE = "run_info.json"  # a run's whole config, git commit, node, data provenance
CHECKPOINT_FILE = "checkpoint.pt"
RESULTS_FILE = "results.parquet"  # a sweep's table: every row of every finished trial
TRIALS_DIR = "trials"  # a sweep's run folders, one per trial id
SPEC_FILE = "spec.yaml"  # the spec a sweep was launched with
PLAN_FILE = "plan.json"  # the trials a sweep runs (id and coordinates), so `status` needs no data
LOCK_FILE = ".lock"  # held by the one `sweep run` working on a sweep folder
STOP_FILE = ".stop"  # in a sweep folder while it stops: its trials checkpoint at their next step
WANDB_RUN_FILE = "wandb_run.json"  # in a trial folder: its W&B run's id and the rows that run holds
DASHBOARD_FILE = "dashboard.json"  # in a sweep folder: its W&B workspace, {"url": once saved, "view": its spec}

# --- statuses -----------------------------------------------------------------------------------
# A run's status.json: a run stopped by a signal is "interrupted" and resumes; the others are final.
FINISHED = ("done", "diverged", "failed")
INTERRUPTED = "interrupted"
# What `sweep status` shows per trial: "running" only while a sweep holds the folder's lock.
STATES = ("done", "running", "interrupted", "pending", "diverged", "failed")

# --- columns ------------------------------------------------------------------------------------
# Where a trial sits in the study: with SETTING_COLUMNS and `seed`, these identify it.
COORDINATE_COLUMNS = ("sweep", "trial_id", "family", "size", "task", "dataset", "split", "budget", "seed")
# Swept hyperparameters: trials of one (family, size, budget) cell that differ here are different
# settings, selected between on validation. `overrides` is the model overrides as canonical JSON.
SETTING_COLUMNS = ("peak_lr", "schedule", "variant", "overrides")
# What was spent and measured up to a row. `train_s` is the part of `wall_s` spent in training steps,
# `eval_s` the part spent evaluating, and `mfu` the useful FLOP/s over train_s divided by the peak of the
# devices that ran them (their sum over the trial's workers): a data-sheet peak on GPUs, a *measured*
# fp32 matmul rate on CPUs, as `mfu_basis` says (scaling/peak.py). `val_users` is the validation users (a
# fixed sample, or all). `epochs` is passes over the training sequences (a float); tables written
# before it existed lack it, and the analysis reads them as NaN.
MEASURE_COLUMNS = (
    "flops", "executed_flops", "tokens", "examples", "epochs", "params_embedding", "params_nonembedding", "step",
    "wall_s", "eval_s", "val_users", "lr", "train_loss", "train_s", "mfu",
)
# Measures of time: the only columns in which two runs of one trial (an interrupted one resumed, say) differ.
TIMING_COLUMNS = ("wall_s", "train_s", "eval_s", "mfu")
STATUS_COLUMNS = ("status", "error", "eval_kind", "best_step")
# How the row came to be: the attention kernel, the machine, the data file and whether it is official,
# the retrieval protocol its metrics are measured under ("full" catalog or "sampled-<N>" negatives),
# the data-parallel workers and the training precision ("fp32" | "bf16" autocast), and MFU's peak.
PROVENANCE_COLUMNS = ("kernel", "node", "data_sha256", "data_modified", "select_on", "eval_protocol", "workers",
                      "precision", "mfu_basis")
# Where a trial of a branched WSD sweep comes from (sweeps/branching.py): `branch_role` is "trunk" or
# "branch" (empty for an independent trial), `trunk` a branch's trunk, `branch_flops` the FLOPs it
# took over from that trunk (its own spend is flops - branch_flops). A branch's rows begin with its
# trunk's, up to where it branched; a trunk is not a point of the grid and the analysis leaves it out.
LINEAGE_COLUMNS = ("branch_role", "trunk", "branch_flops")
SNAPSHOTS_DIR = "snapshots"  # in a trunk's folder: the state each branch starts from
# What the analysis cannot work without (older tables lack the setting and provenance columns).
REQUIRED_COLUMNS = (
    "sweep", "trial_id", "family", "size", "task", "seed", "budget", "flops", "tokens",
    "params_nonembedding", "status", "error", "eval_kind",
)
EVAL_KINDS = ("val", "final")
# Metric columns are "<split>/<metric>": validation during training, test at the best validation
# point, and test of the model at the end of training.
METRIC_PREFIXES = ("val", "test", "test_last")

# --- selection ----------------------------------------------------------------------------------
SELECT_ON = ("validation", "test")  # "test" only where the spec says so: the report states it
# Splits whose validation set is the test set: selecting on them selects on test.
SPLITS_WITHOUT_VALIDATION = ("leave-last-out",)


# --- tasks and metrics --------------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    name: str
    metrics: tuple[str, ...]  # what its evaluation reports
    default_metric: str  # what selects a trial's best point and what the laws are fitted to
    reported: tuple[str, ...]  # what the report shows beside the fitted metric, best size per budget

    @property
    def default_column(self) -> str:
        return f"test/{self.default_metric}"


TASKS: dict[str, Task] = {
    "retrieval": Task("retrieval", ("nll", "mrr", "hr@1", "hr@10", "hr@50", "hr@200", "ndcg@10", "ndcg@50",
                                    "ndcg@200"), "nll",
                      ("hr@10", "ndcg@10")),
    "ranking": Task("ranking", ("ne", "auc", "logloss"), "ne", ("auc", "logloss")),
}

# Every metric grscale knows, by bare name: True where higher is better. `@k` metrics take any k.
HIGHER_IS_BETTER = {
    "nll": False, "ne": False, "logloss": False, "loss": False, "train_loss": False, "mse": False,
    "rmse": False, "mae": False, "hr": True, "recall": True, "precision": True, "ndcg": True, "mrr": True,
    "map": True, "auc": True, "gauc": True, "accuracy": True,
}
_AT_K = re.compile(r"^(?P<name>[a-z_]+)@(?P<k>[1-9][0-9]*)$")


def short_number(value: float) -> str:
    """3 significant digits, no '+' or leading zeros in the exponent: 3e13, 3.16e8, 1e-3. Trial ids
    name their budget and learning rate this way, and the analysis labels settings alike."""
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def snapshot_name(flops: float) -> str:
    """A trunk's snapshot at `flops`, as a path within its folder."""
    return f"{SNAPSHOTS_DIR}/C{short_number(flops)}.pt"


def bare_metric(name: str) -> str:
    """`test/ndcg@10` -> `ndcg@10`: the metric without its split prefix."""
    return name.split("/", 1)[1] if "/" in name else name


def higher_is_better(name: str) -> bool | None:
    """The direction of a known metric (with or without its split prefix), None for an unknown one."""
    bare = bare_metric(name).lower()
    match = _AT_K.match(bare)
    if match is not None:
        key = match["name"]
        return HIGHER_IS_BETTER[key] if key in ("hr", "recall", "precision", "ndcg", "map") else None
    return HIGHER_IS_BETTER.get(bare)


def validation_column(name: str) -> str:
    """The validation counterpart of a metric column: `test/ndcg@10` -> `val/ndcg@10`."""
    return f"val/{bare_metric(name)}"
