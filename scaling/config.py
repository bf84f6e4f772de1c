"""What one trial is: a nested, typed config with explicit defaults, in sections (data, model, optim,
eval, runtime) in the style of torchtitan.

One strict loader (scaling.typed) serves `grscale train` (flags over an optional YAML file), a sweep
spec's `trial:` block (a typed partial of this config), run_info.json and the checkpoint. A trial's
identity is everything but `runtime`: where and how fast it runs never changes what it computes, so
`grscale train --resume --no-progress` resumes a run started with a progress bar.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from models.loss_config import NEGATIVES_PER, LossConfig
from scaling import schema, typed
from scaling.data.logspec import LogSpec, check_dataset, dataset_name
from scaling.data.synthetic import SyntheticConfig
from scaling.errors import GrscaleError

SCHEDULES = ("cosine", "constant", "wsd")
DECAY_SHAPES = ("linear", "1-sqrt")  # wsd's cooldown: 1-sqrt is Hagele et al. 2024's, matching cosine
DEVICES = ("cpu", "cuda", "auto")
KERNELS = ("auto", "pytorch", "triton")
PRECISIONS = ("fp32", "bf16")  # bf16: autocast of the training forward on CUDA, fp32 master weights
# Model config fields that live in their own place in the trial config, never in model.overrides.
OWN_PLACE = {"dropout": "model.dropout", "kernel": "model.kernel", "loss": "model.loss",
             "max_seq_len": "data.max_seq_len", "num_items": "(the dataset)", "num_users": "(the dataset)"}
# Where the fields of the flat config (before 2026-12) went, from the config's top level: an old file
# gets an error naming the new place.
MOVED = {
    "family": "model.family", "size": "model.size", "model_overrides": "model.overrides",
    "dropout": "model.dropout", "kernel": "model.kernel", "num_negatives": "model.loss.num_negatives",
    "temperature": "model.loss.temperature", "negatives_per": "model.loss.negatives_per",
    "dataset": "data.dataset", "split": "data.split", "ties": "data.ties", "max_seq_len": "data.max_seq_len",
    "val_users": "data.val_users", "synthetic": "data.synthetic", "batch_size": "optim.batch_size",
    "num_evals": "eval.num_evals", "first_eval_fraction": "eval.first_eval_fraction",
    "select_metric": "eval.select_metric", "exclude_history": "eval.exclude_history",
    "eval_batch_size": "runtime.eval_batch_size", "device": "runtime.device", "progress": "runtime.progress",
    "data_dir": "runtime.data_dir",
}


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    # A name of scaling.data.registry.DATASETS, or your own log: {path, user, item, time, label, ...}
    # (scaling.data.logspec.LogSpec).
    dataset: str | LogSpec = "synthetic"
    split: str = "leave-one-out"  # leave-one-out | leave-last-out (no validation) | temporal
    ties: str = "file"  # a user's equal timestamps: "file" order | "shuffle" (as the HSTU paper's sort)
    max_seq_len: int = 200  # histories are cut to their last max_seq_len items
    val_users: int = 0  # validate on a fixed random sample of this many users (0 = all); test uses all
    # Training batches of sequences of similar length (scaling.data.loader): less padding, same epochs.
    length_buckets: bool = False
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)  # the synthetic dataset's parameters
    allow_modified: bool = False  # accept a named dataset's file that differs from the official one

    @property
    def dataset_name(self) -> str:
        """The dataset as results rows name it: the registry name, or the log's name."""
        return dataset_name(self.dataset)


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    family: str  # hstu | sasrec | dlrm
    size: str  # a preset of the family (models.presets.PRESETS), e.g. "s" for hstu-s
    variant: str = "default"  # a named architecture of models.presets.VARIANTS, e.g. "paper"
    overrides: dict[str, Any] = field(default_factory=dict)  # other model config fields, by name
    dropout: float = 0.2  # where the family has dropout
    kernel: str = "auto"  # HSTU attention: "auto" (Triton on CUDA) | "pytorch" | "triton"
    loss: LossConfig = field(default_factory=LossConfig)

    @property
    def preset(self) -> str:
        return f"{self.family}-{self.size}"


@dataclass(frozen=True, kw_only=True)
class OptimConfig:
    """AdamW with a learning-rate schedule laid over the FLOPs budget (fractions of it)."""

    lr: float = 1e-3  # the peak learning rate
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.0
    schedule: str = "cosine"  # warmup + cosine | constant (after warmup) | wsd (warmup-stable-decay)
    warmup_fraction: float = 0.02  # of the budget; or, independent of the budget, one of:
    warmup_steps: int = 0  # optimizer steps of linear warmup (then warmup_fraction must be 0)
    warmup_flops: float = 0.0  # training FLOPs of linear warmup (then warmup_fraction must be 0)
    decay_fraction: float = 0.2  # wsd: the last fraction of the budget cools down to 0
    decay_shape: str = "linear"  # wsd's cooldown: "linear" | "1-sqrt" (lr * (1 - sqrt(progress)))
    min_lr_ratio: float = 0.1  # cosine ends at lr * min_lr_ratio
    grad_clip: float = 1.0  # max gradient norm; 0 disables
    batch_size: int = 128  # training sequences (or impressions' users) per step


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    num_evals: int = 8  # validation points, log-spaced over the budget
    first_eval_fraction: float = 0.01  # of the budget, where the log spacing starts
    select_metric: str = ""  # validation metric that picks the best point; "" = the task's (nll / ne)
    exclude_history: bool = True  # remove history items from the retrieval candidates
    # Retrieval candidates: 0 = the full catalog; N = the target among N negatives drawn uniformly per
    # user (fixed by candidates_seed and the user, so every trial ranks against the same ones).
    candidates: int = 0
    candidates_seed: int = 0

    @property
    def protocol(self) -> str:
        """The retrieval protocol, as results rows name it: "full" or "sampled-<N>"."""
        return f"sampled-{self.candidates}" if self.candidates else "full"


@dataclass(frozen=True, kw_only=True)
class RuntimeConfig:
    """Where and how the trial runs: never part of its identity."""

    device: str = "cpu"  # "cpu" | "cuda" | "auto"
    threads: int = 0  # torch threads; 0 = torch's default
    progress: bool = True  # a progress bar on stderr
    data_dir: str | None = None  # folder holding the dataset's file (default: $GRSCALE_DATA_DIR, the cache)
    eval_batch_size: int = 256  # fastest on the 2-core CPU with 128..512 within 10% (benchmarks/eval_cost.md)
    checkpoint_every_s: float = 600.0  # also checkpoint between validation points this often
    workers: int = 1  # data-parallel ranks (a sweep's resources.workers); recorded in every row
    precision: str = "fp32"  # "fp32" | "bf16" (CUDA autocast of the training step; recorded in every row)
    compile: bool = False  # torch.compile the training step (scaling.compile; measured not to pay on the CPU)


BRANCH_ROLES = ("none", "trunk", "branch")


@dataclass(frozen=True, kw_only=True)
class BranchConfig:
    """Where a trial sits in a WSD sweep whose budgets share a trunk (a spec's `schedule: {kind:
    wsd-branched}`, sweeps/branching.py): a trunk trains at constant rate and saves a snapshot where
    each budget's cooldown starts; a branch starts from one and spends the rest of its budget cooling down."""

    role: str = "none"  # "none" (an independent trial) | "trunk" | "branch"
    snapshots: list[float] = field(default_factory=list)  # trunk: the FLOPs at which it saves a snapshot
    trunk: str = ""  # branch: the trunk's trial id; its folder lies beside this trial's
    start: float = 0.0  # branch: the trunk's snapshot it starts from (FLOPs)


@dataclass(frozen=True, kw_only=True)
class TrialConfig:
    model: ModelConfig
    budget: float  # training FLOPs (useful: jagged, causal) to spend
    task: str = "retrieval"
    seed: int = 0  # of the model, batches and negatives
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    branch: BranchConfig = field(default_factory=BranchConfig)

    @property
    def selection_metric(self) -> str:
        return self.eval.select_metric or schema.TASKS[self.task].default_metric

    def selection_loss(self, metrics: dict[str, float]) -> float:
        """The selection metric as a quantity to minimise (negated where higher is better)."""
        value = metrics[self.selection_metric]
        return -value if schema.higher_is_better(self.selection_metric) else value

    def to_dict(self) -> dict[str, Any]:
        return typed.to_mapping(self)

    def identity(self) -> dict[str, Any]:
        """What the trial computes: every section but runtime."""
        return {k: v for k, v in self.to_dict().items() if k != "runtime"}

    def shared_with_trunk(self) -> dict[str, Any]:
        """The identity a trunk and its branches share: all but the budget, the schedule and the lineage."""
        identity = {k: v for k, v in self.identity().items() if k not in ("budget", "branch")}
        identity["optim"] = {k: v for k, v in identity["optim"].items()
                             if k not in ("schedule", "decay_fraction", "decay_shape")}
        return identity

    @property
    def setting(self) -> dict[str, Any]:
        """The hyperparameters that may be swept within a (family, size, budget) cell, as result columns."""
        return {"peak_lr": self.optim.lr, "schedule": self.optim.schedule, "variant": self.model.variant,
                "overrides": json.dumps(self.model.overrides, sort_keys=True)}

    @classmethod
    def from_dict(cls, data: Any, where: str = "trial") -> "TrialConfig":
        """A validated config from a complete mapping; the first problem raises, naming its field."""
        cfg = typed.from_mapping(cls, data, where, MOVED)
        cfg.validate(where)
        return cfg

    @classmethod
    def from_yaml(cls, path: Path) -> "TrialConfig":
        return cls.from_dict(read_config_fields(path), f"{path}: trial")

    def validate(self, where: str = "trial") -> None:
        """Values the types allow but the trial cannot use; the error names the field."""
        from models.presets import model_config
        from scaling.data.log import TIES
        from scaling.data.splits import SPLITS

        def fail(path: str, message: str) -> None:
            raise GrscaleError(f"{where}.{path}: {message}")

        def choice(path: str, value: str, known: tuple | dict) -> None:
            if value not in known:
                fail(path, f"unknown value {value!r}; known: {', '.join(known)}")

        choice("task", self.task, schema.TASKS)
        if not self.budget > 0:
            fail("budget", f"expected a positive, finite number of FLOPs, got {self.budget!r}")
        if self.seed < 0:
            fail("seed", f"expected an integer >= 0, got {self.seed}")
        check_dataset(self.data.dataset, f"{where}.data.dataset")
        choice("data.split", self.data.split, SPLITS)
        choice("data.ties", self.data.ties, TIES)
        choice("model.loss.negatives_per", self.model.loss.negatives_per, NEGATIVES_PER)
        choice("model.kernel", self.model.kernel, KERNELS)
        choice("optim.schedule", self.optim.schedule, SCHEDULES)
        choice("optim.decay_shape", self.optim.decay_shape, DECAY_SHAPES)
        choice("runtime.device", self.runtime.device, DEVICES)
        choice("runtime.precision", self.runtime.precision, PRECISIONS)
        if self.runtime.precision == "bf16" and self.runtime.device == "cpu":
            fail("runtime.precision", "bf16 autocast runs on CUDA only and this trial's runtime.device is cpu: "
                                      "use fp32, or device cuda / auto on a GPU machine")
        for path, value in (("data.max_seq_len", self.data.max_seq_len), ("optim.batch_size", self.optim.batch_size),
                            ("eval.num_evals", self.eval.num_evals), ("runtime.workers", self.runtime.workers),
                            ("runtime.eval_batch_size", self.runtime.eval_batch_size)):
            if value < 1:
                fail(path, f"expected an integer >= 1, got {value}")
        for path, value in (("data.val_users", self.data.val_users), ("runtime.threads", self.runtime.threads),
                            ("eval.candidates", self.eval.candidates), ("eval.candidates_seed", self.eval.candidates_seed)):
            if value < 0:
                fail(path, f"expected an integer >= 0, got {value}")
        if not 0 < self.eval.first_eval_fraction <= 1:
            fail("eval.first_eval_fraction", f"expected a fraction in (0, 1], got {self.eval.first_eval_fraction}")
        if self.eval.select_metric and self.eval.select_metric not in schema.TASKS[self.task].metrics:
            fail("eval.select_metric", f"{self.eval.select_metric!r} is not a {self.task} metric; known: "
                                       f"{', '.join(schema.TASKS[self.task].metrics)}")
        if not self.optim.lr > 0:
            fail("optim.lr", f"expected a positive learning rate, got {self.optim.lr}")
        for path, value in (("optim.warmup_fraction", self.optim.warmup_fraction),
                            ("optim.decay_fraction", self.optim.decay_fraction),
                            ("optim.min_lr_ratio", self.optim.min_lr_ratio)):
            if not 0 <= value <= 1:
                fail(path, f"expected a fraction in [0, 1], got {value}")
        if self.optim.warmup_steps < 0 or self.optim.warmup_flops < 0:
            fail("optim", f"warmup_steps and warmup_flops must be >= 0, got {self.optim.warmup_steps} and "
                          f"{self.optim.warmup_flops}")
        warmups = [name for name in ("warmup_fraction", "warmup_steps", "warmup_flops") if getattr(self.optim, name) > 0]
        if len(warmups) > 1:
            fail("optim", f"{' and '.join(warmups)} both set: warm up by one of them (set the others to 0; "
                          "warmup_fraction's default is 0.02)")
        self._validate_branch(fail)
        if self.optim.grad_clip < 0 or self.optim.weight_decay < 0:
            fail("optim", "grad_clip and weight_decay must be >= 0")
        if not 0 <= self.model.dropout < 1:
            fail("model.dropout", f"expected a probability in [0, 1), got {self.model.dropout}")
        for name in self.model.overrides:
            if name in OWN_PLACE:
                fail(f"model.overrides.{name}", f"set {OWN_PLACE[name]} instead")
        try:  # the preset, the variant and the overrides' names and values, on a tiny catalog
            model_config(self.model.family, self.model.size, num_items=2, num_users=2, max_seq_len=2,
                         variant=self.model.variant, **self.model.overrides)
        except (GrscaleError, ValueError) as error:
            fail("model", str(error))
        try:
            self.data.synthetic.validate()
        except GrscaleError as error:
            fail("data.synthetic", str(error))

    def _validate_branch(self, fail: Callable[[str, str], None]) -> None:
        branch = self.branch
        if branch.role not in BRANCH_ROLES:
            fail("branch.role", f"unknown value {branch.role!r}; known: {', '.join(BRANCH_ROLES)}")
        if branch.role == "none":
            return
        if self.optim.warmup_fraction > 0:
            fail("optim.warmup_fraction", f"a {branch.role} of a branched sweep warms up by steps or FLOPs "
                                          "(warmup_steps or warmup_flops): a trunk's warmup cannot depend on the "
                                          "budgets its branches end at")
        if branch.role == "trunk":
            points = branch.snapshots
            if self.optim.schedule != "constant":
                fail("optim.schedule", f"a trunk trains at constant rate, got {self.optim.schedule!r}")
            if not points or points != sorted(points) or points[0] <= 0 or points[-1] != self.budget:
                fail("branch.snapshots", f"expected ascending positive FLOPs ending at the budget "
                                         f"({self.budget:g}), got {points!r}")
        else:
            if self.optim.schedule != "wsd":
                fail("optim.schedule", f"a branch cools down (wsd), got {self.optim.schedule!r}")
            if not branch.trunk:
                fail("branch.trunk", "a branch names the trunk it starts from")
            if not 0 < branch.start < self.budget:
                fail("branch.start", f"expected FLOPs between 0 and the budget ({self.budget:g}), got {branch.start!r}")


def read_config_fields(path: Path) -> dict[str, Any]:
    """The mapping in a YAML config file (possibly partial: the CLI adds flags)."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise GrscaleError(f"cannot read trial config {path}: {error}") from None
    if not isinstance(data, dict):
        raise GrscaleError(f"{path}: a trial config is a mapping of sections, got {type(data).__name__}")
    return data
