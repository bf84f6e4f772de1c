"""One trial: a model family at one size, trained on one dataset until it has spent a FLOPs budget.

Steps: build data and model -> per batch, count its training FLOPs, set the learning rate from
the fraction of the budget spent, step (checkpoint every runtime.checkpoint_every_s) -> at log-spaced
fractions of the budget, evaluate the validation split, write a row, checkpoint -> at the end,
test at the end and at the best validation point. A resumed trial replays the same batches and
random draws, so it ends with the same result as an uninterrupted one.

In a branched WSD sweep (config section `branch`) a trunk also saves a snapshot, a checkpoint with
its rows so far, at the first step past each branch point, and a branch starts from its snapshot
(the trunk's folder lies beside its own) instead of from scratch.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from models.base import Recommender, param_counts
from models.presets import build_model, model_config
from scaling import schema, typed
from scaling.allocator import keep_freed_memory
from scaling.compile import training_step
from scaling.config import TrialConfig
from scaling.files import atomic_write, atomic_write_text
from scaling.data.dataset import load_dataset
from scaling.data.loader import trial_batches
from scaling.data.log import DataSource
from scaling.data.splits import Split, make_split, sample_users
from scaling.distributed import Ranks
from scaling.errors import GrscaleError
from scaling.flops import training_flops
from scaling.peak import device_peak
from scaling.precision import check_precision, training_precision
from scaling.progress import TrainProgress
from scaling.reporting import JsonlReporter, Reporter, read_rows, write_status
from scaling.schedule import eval_fractions, lr_at
from scaling.sharded_eval import evaluate_on_ranks

@dataclass
class TrialResult:
    status: str  # "done" | "diverged" | "interrupted" (checkpointed: resume continues it)
    rows: list[dict[str, Any]]
    out_dir: Path
    error: str | None = None

    @property
    def final(self) -> dict[str, Any]:
        return self.rows[-1]


@dataclass
class TrialState:
    """Everything a checkpoint must restore besides the model and optimizer."""

    flops: float = 0.0
    executed_flops: float = 0.0
    tokens: int = 0
    examples: int = 0
    step: int = 0
    epoch: int = 0
    batch_index: int = 0  # next batch of `epoch`
    next_eval: int = 0  # index into the eval fractions
    wall_s: float = 0.0
    train_s: float = 0.0  # of wall_s, in training steps (what MFU is measured over)
    eval_s: float = 0.0  # of wall_s, spent evaluating (validation and test)
    rows_written: int = 0
    loss_sum: float = 0.0  # training loss since the last evaluation
    loss_count: int = 0
    best_value: float = math.inf
    best_step: int = -1
    next_snapshot: int = 0  # a trunk's: index into branch.snapshots
    branch_flops: float = 0.0  # a branch's: the FLOPs its trunk had spent where it branched


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise GrscaleError("device 'cuda' requested but no CUDA device is available")
    return torch.device(name)


def build_trial_model(cfg: TrialConfig, split: Split) -> Recommender:
    """The preset in the trial's variant, with its loss, dropout and kernel where the family has them."""
    model = cfg.model
    preset = model_config(model.family, model.size, num_items=split.num_items, num_users=split.num_users,
                          max_seq_len=cfg.data.max_seq_len, variant=model.variant)
    fields = {f.name for f in dataclasses.fields(preset)}
    own = {"loss": model.loss, "dropout": model.dropout, "kernel": model.kernel}
    overrides = {name: value for name, value in own.items() if name in fields}
    return build_model(model.family, model.size, split.num_items, split.num_users, cfg.data.max_seq_len,
                       variant=model.variant, **overrides, **model.overrides)


def has_validation(cfg: TrialConfig) -> bool:
    """Whether the split validates on examples other than the test ones (else nothing is selected on it)."""
    return cfg.data.split not in schema.SPLITS_WITHOUT_VALIDATION


def _git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class Trainer:
    """One trial's data, model, optimizer and counters, with the steps of the loop as methods.

    `should_stop` is asked after every training step; a reason it returns (a signal's name) stops
    the trial at that step with a checkpoint and status "interrupted", from which `resume` continues.
    `ranks`: this process's place in a data-parallel trial (scaling.distributed); rank 0 alone
    writes files and reports rows.
    """

    def __init__(self, cfg: TrialConfig, out_dir: Path, reporters: Iterable[Reporter] = (),
                 should_stop: Callable[[], str | None] | None = None, ranks: Ranks | None = None) -> None:
        cfg.validate()
        self.cfg, self.out_dir = cfg, Path(out_dir)
        self.ranks = ranks or Ranks()
        if cfg.runtime.workers != self.ranks.world_size:
            raise GrscaleError(f"runtime.workers is {cfg.runtime.workers} but this trial runs on {self.ranks.world_size} "
                               f"process(es): a trial of several workers runs in a sweep (resources.workers)")
        self.should_stop = should_stop or (lambda: None)
        self.checkpointed_at = time.perf_counter()
        self.device = resolve_device(cfg.runtime.device)
        check_precision(cfg.runtime.precision, self.device)
        if self.device.type == "cpu":
            keep_freed_memory()
        torch.manual_seed(cfg.seed)
        data_dir = Path(cfg.runtime.data_dir) if cfg.runtime.data_dir else None
        log = load_dataset(cfg.data.dataset, data_dir, cfg.data.synthetic, cfg.data.ties,
                           allow_modified=cfg.data.allow_modified)
        if cfg.task == "ranking" and not log.has_labels:
            raise GrscaleError(f"dataset {cfg.data.dataset_name!r} carries no engagement labels: "
                               f"the ranking task needs them")
        self.source: DataSource | None = log.source
        self.split = make_split(log, cfg.data.split)
        self.val_set = sample_users(self.split.val, cfg.data.val_users) if cfg.data.val_users else self.split.val
        self.model = build_trial_model(cfg, self.split).to(self.device)
        self.ranks.broadcast_parameters(self.model)
        if not self.ranks.is_chief:  # its own dropout; rank 0 continues the one-process stream
            torch.manual_seed(self.ranks.seed(cfg.seed))
        try:
            self.kernel = self.model.resolved_kernel(self.device)
        except (RuntimeError, ValueError) as error:  # e.g. kernel="triton" without CUDA
            raise GrscaleError(str(error)) from None
        self.params_embedding, self.params_nonembedding = param_counts(self.model, cfg.task)
        self.training_loss = training_step(self.model, cfg.runtime.compile)
        self.batches = trial_batches(self.split.train, cfg, shard=self.ranks.shard)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas,
                                           weight_decay=cfg.optim.weight_decay)
        self.generator = torch.Generator(device=self.device).manual_seed(self.ranks.seed(cfg.seed + 1))
        self.fractions = eval_fractions(cfg.eval.num_evals, cfg.eval.first_eval_fraction)
        self.state = TrialState()
        self.best_model_state: dict[str, torch.Tensor] | None = None
        self.jsonl = JsonlReporter(self.out_dir / schema.METRICS_FILE)
        self.reporters = [self.jsonl, *reporters] if self.ranks.is_chief else []
        self.peak = device_peak(self.device, cfg.runtime.precision)
        self.peak_total = self.ranks.sum([self.peak.flops_per_s])[0]
        first = next(self.batches.epoch(0))
        step_flops = self.ranks.sum([training_flops(self.model.config, cfg.task, first.lengths()).useful])[0]
        if step_flops > cfg.budget:
            raise GrscaleError(
                f"budget {cfg.budget:.3g} FLOPs is smaller than one training step of {cfg.model.preset} "
                f"on {cfg.data.dataset_name} ({step_flops:.3g} FLOPs at batch size {cfg.optim.batch_size})"
            )

    # --- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self, name: str = schema.CHECKPOINT_FILE, rows: list[dict[str, Any]] | None = None) -> None:
        """Every rank calls it (the ranks' random states are gathered); rank 0 writes the file.
        A trunk's snapshot is a checkpoint under another name, with the rows its branches begin with."""
        rng = self.ranks.gather_rng(self.generator, self.device)
        self.checkpointed_at = time.perf_counter()
        if not self.ranks.is_chief:
            return
        payload = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            **rng[0],  # generator, torch_rng, cuda_rng: rank 0's, as a one-process checkpoint holds them
            "rank_rng": rng if self.ranks.parallel else None,
            "workers": self.ranks.world_size,
            "state": dataclasses.asdict(self.state),
            "best_model": self.best_model_state,
            "config": self.cfg.to_dict(),
            "rows": rows,
        }
        path = self.out_dir / name
        path.parent.mkdir(exist_ok=True)
        atomic_write(path, lambda handle: torch.save(payload, handle))

    def save_due_snapshots(self) -> None:
        """A trunk saves a snapshot at the first step past each of its branch points."""
        points, s = self.cfg.branch.snapshots, self.state
        while s.next_snapshot < len(points) and s.flops >= points[s.next_snapshot]:
            rows = read_rows(self.out_dir / schema.METRICS_FILE) if self.ranks.is_chief else None
            self.save_checkpoint(schema.snapshot_name(points[s.next_snapshot]), rows)
            s.next_snapshot += 1

    def branch_from_trunk(self) -> list[dict[str, Any]]:
        """A branch's start: its trunk's state at the snapshot, and the trunk's rows up to it (as this trial's)."""
        branch = self.cfg.branch
        path = self.out_dir.parent / branch.trunk / schema.snapshot_name(branch.start)
        if not path.exists():
            raise GrscaleError(f"the trunk {branch.trunk} has no snapshot at {branch.start:.3g} FLOPs ({path}): it "
                               f"ended before that point, or has not reached it yet (a sweep starts a branch once "
                               f"its snapshot exists)")
        payload = torch.load(path, map_location=self.device, weights_only=False)
        trunk = TrialConfig.from_dict(payload["config"], f"{path}: trial")
        changed = typed.differences(trunk.shared_with_trunk(), self.cfg.shared_with_trunk())
        if changed:
            raise GrscaleError(f"{path} is the snapshot of a different trunk ({'; '.join(changed)}): a branch "
                               f"continues its own trunk, which differs from it in budget and schedule only")
        self.restore(payload, path)
        s = self.state
        s.branch_flops, s.rows_written, s.next_snapshot = s.flops, 0, 0
        # The evaluations still ahead; the final one always is (a snapshot past the budget still cools down a step).
        passed = sum(1 for fraction in self.fractions if fraction * self.cfg.budget <= s.flops)
        s.next_eval = min(passed, len(self.fractions) - 1)
        own = {**self.cfg.setting, "budget": self.cfg.budget, "status": "running", **self.lineage()}
        return [{**row, **own} for row in payload["rows"] or []]

    def load_checkpoint(self) -> bool:
        path = self.out_dir / schema.CHECKPOINT_FILE
        if not path.exists():
            return False
        payload = torch.load(path, map_location=self.device, weights_only=False)
        saved = TrialConfig.from_dict(payload["config"], f"{path}: trial")  # an old layout names its fields
        changed = typed.differences(saved.identity(), self.cfg.identity())
        if changed:
            raise GrscaleError(f"{path} was written by a different trial ({'; '.join(changed)}); "
                               f"use a fresh --out to start anew")
        self.restore(payload, path)
        if self.ranks.is_chief:
            self.jsonl.keep_first(self.state.rows_written)
        return True

    def restore(self, payload: dict[str, Any], path: Path) -> None:
        """Model, optimizer, random states and counters from the checkpoint at `path`."""
        workers = payload.get("workers", 1)
        if workers != self.ranks.world_size:
            raise GrscaleError(f"{path} was written by a trial on {workers} worker(s) and this one runs on "
                               f"{self.ranks.world_size}: resume it with resources.workers: {workers}")
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.ranks.restore_rng(payload["rank_rng"] or [payload], self.generator)
        self.state = TrialState(**payload["state"])
        self.best_model_state = payload["best_model"]

    # --- rows ----------------------------------------------------------------------------------
    def base_row(self, status: str, eval_kind: str) -> dict[str, Any]:
        c, s = self.cfg, self.state
        return {
            "family": c.model.family, "size": c.model.size, "task": c.task, "dataset": c.data.dataset_name,
            "split": c.data.split, "seed": c.seed, "budget": c.budget, **c.setting,
            "flops": s.flops, "executed_flops": s.executed_flops, "tokens": s.tokens, "examples": s.examples,
            "epochs": self.epochs(),
            "params_embedding": self.params_embedding, "params_nonembedding": self.params_nonembedding,
            "step": s.step, "wall_s": round(s.wall_s, 3), "eval_s": round(s.eval_s, 3),
            "val_users": self.val_set.num_examples, "status": status, "error": None, "eval_kind": eval_kind,
            "kernel": self.kernel, "node": socket.gethostname(), "eval_protocol": c.eval.protocol if c.task == "retrieval" else None,
            "data_sha256": self.source.sha256 if self.source else None,
            "data_modified": self.source.modified if self.source else None,
            "lr": self.optimizer.param_groups[0]["lr"],
            "train_loss": s.loss_sum / s.loss_count if s.loss_count else float("nan"),
            "workers": self.ranks.world_size, "precision": c.runtime.precision, "train_s": round(s.train_s, 3),
            "mfu": s.flops / s.train_s / self.peak_total if s.train_s > 0 else float("nan"),
            "mfu_basis": self.peak.basis, **self.lineage(),
        }

    def lineage(self) -> dict[str, Any]:
        branch = self.cfg.branch
        return {"branch_role": None if branch.role == "none" else branch.role, "trunk": branch.trunk or None,
                "branch_flops": self.state.branch_flops}

    def epochs(self) -> float:
        """Passes over the training sequences so far: whole epochs plus the share of this one drawn."""
        s, per_pass = self.state, self.batches.rows.size
        return s.epoch + min(s.batch_index * self.cfg.optim.batch_size, per_pass) / per_pass

    def emit(self, row: dict[str, Any]) -> None:
        for reporter in self.reporters:
            reporter.report(row)
        self.state.rows_written += 1

    # --- the loop ------------------------------------------------------------------------------
    def evaluate_split(self, which: str) -> dict[str, float]:
        data = self.val_set if which == "val" else self.split.test
        started = time.perf_counter()
        metrics = evaluate_on_ranks(self.model, data, self.cfg, self.device, self.ranks)
        self.state.eval_s += time.perf_counter() - started
        return metrics

    def validation_point(self, is_final: bool) -> dict[str, Any] | None:
        """The evaluation row, or None where the model's validation metric is not finite."""
        metrics = self.evaluate_split("val")
        value = self.cfg.selection_loss(metrics)
        if not math.isfinite(value):
            return None
        # Without a validation split (its "validation" is the test set) nothing is selected: the
        # latest point stands, so test figures come from the end of training.
        better = value < self.state.best_value or not has_validation(self.cfg)
        if better or self.best_model_state is None:
            self.state.best_value, self.state.best_step = value, self.state.step
            self.best_model_state = copy.deepcopy(self.model.state_dict())
        row = self.base_row("done" if is_final else "running", "final" if is_final else "val")
        row.update({f"val/{k}": v for k, v in metrics.items()})
        if is_final and self.cfg.branch.role != "trunk":  # a trunk is no point of the grid: not tested
            last = best = self.evaluate_split("test")  # where the best point is this one, tested once
            if self.state.best_step != self.state.step:
                current = copy.deepcopy(self.model.state_dict())
                self.model.load_state_dict(self.best_model_state)
                best = self.evaluate_split("test")
                self.model.load_state_dict(current)
            row.update({f"test_last/{k}": v for k, v in last.items()})
            row.update({f"test/{k}": v for k, v in best.items()})
            row["best_step"] = self.state.best_step
        self.state.loss_sum, self.state.loss_count = 0.0, 0
        return row

    def train_step(self, batch) -> float:
        """One step on the global batch (this rank's share of it: `batch`); its mean loss over all ranks."""
        cfg, s = self.cfg, self.state
        started = time.perf_counter()
        count = training_flops(self.model.config, cfg.task, batch.lengths())
        lr = lr_at(s.flops / cfg.budget, cfg.optim, step=s.step, flops=s.flops)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss, examples = None, 0
        if batch.batch_size:  # a rank's share of the epoch's last, smaller batch may be empty
            with training_precision(cfg.runtime.precision, self.device):
                loss, examples = self.training_loss(batch.to(self.device), cfg.task, self.generator)
        step = self.ranks.step_totals(loss, examples, count, batch.num_tokens)
        if not math.isfinite(step.loss):
            return step.loss
        self.optimizer.zero_grad(set_to_none=True)
        if loss is not None:
            (loss * step.weight if self.ranks.parallel else loss).backward()
        self.ranks.sum_gradients(list(self.model.parameters()))
        if cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
        self.optimizer.step()
        s.flops += step.useful
        s.executed_flops += step.executed
        s.tokens += step.tokens
        s.examples += step.examples
        s.step += 1
        s.loss_sum += step.loss
        s.loss_count += 1
        s.train_s += time.perf_counter() - started
        return step.loss

    def start(self, resume: bool) -> bool:
        """Claim the run folder: a fresh run refuses a folder holding another run; True if resumed."""
        if not resume and holds_run(self.out_dir):
            raise GrscaleError(f"{self.out_dir} already holds a run: pass --resume to continue it, "
                               f"or choose another --out")
        resumed = resume and self.load_checkpoint()
        trunk_rows = self.branch_from_trunk() if not resumed and self.cfg.branch.role == "branch" else []
        self.ranks.barrier()  # every rank has read the folder before rank 0 changes it
        if not self.ranks.is_chief:
            return resumed
        # It runs again: no status until it stops (`sweep status` shows it running, not interrupted).
        (self.out_dir / schema.STATUS_FILE).unlink(missing_ok=True)
        if not resumed:
            # A resume without a checkpoint starts over.
            (self.out_dir / schema.METRICS_FILE).unlink(missing_ok=True)
            info = {"config": self.cfg.to_dict(), "git_sha": _git_sha(), "kernel": self.kernel,
                    "params_embedding": self.params_embedding, "params_nonembedding": self.params_nonembedding,
                    "device": str(self.device), "node": socket.gethostname(),
                    "data": dataclasses.asdict(self.source) if self.source else None}
            atomic_write_text(self.out_dir / schema.RUN_INFO_FILE, json.dumps(info, indent=2))
        for row in trunk_rows:
            self.emit(row)
        return resumed

    def run(self, resume: bool = False) -> TrialResult:
        """Train to the budget (from the checkpoint where `resume` finds one); rows go to the reporters."""
        self.start(resume)
        return self.train()

    def train(self) -> TrialResult:
        """The loop, from the state `start` left: to the budget, a divergence or a stop request."""
        cfg, s = self.cfg, self.state
        progress = TrainProgress(cfg, enabled=cfg.runtime.progress and self.ranks.is_chief, initial_flops=s.flops)
        status, error = "done", None
        started = time.perf_counter() - s.wall_s
        try:
            while s.next_eval < len(self.fractions):
                for batch in self.batches.epoch(s.epoch, s.batch_index):
                    s.batch_index += 1
                    loss = self.train_step(batch)
                    s.wall_s = time.perf_counter() - started
                    if not math.isfinite(loss):
                        status, error = "diverged", f"non-finite training loss ({loss}) at step {s.step}"
                        break
                    self.save_due_snapshots()
                    progress.update(s.flops, batch.num_tokens, loss)
                    if s.flops >= self.fractions[s.next_eval] * cfg.budget:
                        break
                    reason = self.ranks.agree(self.should_stop, "a stop request on another worker")
                    if reason:
                        status, error = schema.INTERRUPTED, f"interrupted by {reason} at step {s.step}"
                        break
                    if self.ranks.agree(self.checkpoint_due, "checkpoint"):
                        self.save_checkpoint()
                else:
                    s.epoch, s.batch_index = s.epoch + 1, 0
                    continue
                if status != "done":
                    break
                while s.next_eval < len(self.fractions) and s.flops >= self.fractions[s.next_eval] * cfg.budget:
                    s.next_eval += 1
                is_final = s.next_eval == len(self.fractions)
                row = self.validation_point(is_final)
                if row is None:
                    status = "diverged"
                    error = f"non-finite validation {cfg.selection_metric} at step {s.step}"
                    break
                s.wall_s = time.perf_counter() - started
                row["wall_s"], row["eval_s"] = round(s.wall_s, 3), round(s.eval_s, 3)  # with the test
                self.emit(row)
                progress.validation(row, cfg.selection_metric)
                self.save_checkpoint()
        finally:
            progress.close()
        if status == schema.INTERRUPTED:
            self.save_checkpoint()
        elif status == "diverged":
            row = self.base_row("diverged", "final")
            row["error"] = error
            self.emit(row)
        if not self.ranks.is_chief:
            return TrialResult(status=status, rows=[], out_dir=self.out_dir, error=error)
        write_status(self.out_dir, status, error, self.state.flops, self.state.step)
        rows = read_rows(self.out_dir / schema.METRICS_FILE)
        return TrialResult(status=status, rows=rows, out_dir=self.out_dir, error=error)

    def checkpoint_due(self) -> str | None:
        """"checkpoint" once runtime.checkpoint_every_s has passed since the last checkpoint."""
        due = time.perf_counter() - self.checkpointed_at >= self.cfg.runtime.checkpoint_every_s
        return "checkpoint" if due else None


def holds_run(out_dir: Path) -> bool:
    """Whether a folder holds (part of) a run: its config, rows, checkpoint or status."""
    names = (schema.RUN_INFO_FILE, schema.METRICS_FILE, schema.CHECKPOINT_FILE, schema.STATUS_FILE)
    return any((Path(out_dir) / name).exists() for name in names)


def prepare_out_dir(out_dir: Path) -> Path:
    """Create the run folder, or say in one line why it cannot hold a run."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise GrscaleError(f"{out_dir} is a file, not a folder: choose another --out")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise GrscaleError(f"cannot create {out_dir}: {error.strerror}") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise GrscaleError(f"{out_dir} is not writable: choose another --out")
    return out_dir


def trial_trainer(cfg: TrialConfig, out_dir: Path, reporters: Iterable[Reporter] = (),
                  should_stop: Callable[[], str | None] | None = None, ranks: Ranks | None = None) -> Trainer:
    """The trainer of `cfg` in `out_dir` (created, or refused in one line), on the runtime's threads."""
    if cfg.runtime.threads:
        torch.set_num_threads(cfg.runtime.threads)
    prepare_out_dir(out_dir)
    return Trainer(cfg, out_dir, reporters, should_stop, ranks)


def train_to_budget(cfg: TrialConfig, out_dir: Path, reporters: Iterable[Reporter] = (), resume: bool = False,
                    should_stop: Callable[[], str | None] | None = None) -> TrialResult:
    """Train `cfg` until its FLOPs budget is spent; rows go to out_dir/metrics.jsonl and `reporters`."""
    return trial_trainer(cfg, out_dir, reporters, should_stop).run(resume=resume)
