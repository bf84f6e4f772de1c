"""What one trial is: typed, keyword-only configs with explicit defaults, loadable from YAML."""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scaling.data.synthetic import SyntheticConfig
from scaling.errors import GrscaleError

SCHEDULES = ("cosine", "constant", "wsd")
DEFAULT_SELECT_METRIC = {"retrieval": "nll", "ranking": "ne"}  # lower is better for both
HIGHER_IS_BETTER = ("hr@", "ndcg@", "mrr", "auc")  # metric name prefixes


@dataclass(frozen=True, kw_only=True)
class OptimConfig:
    """AdamW with a learning-rate schedule laid over the FLOPs budget (fractions of it)."""

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.0
    schedule: str = "cosine"  # warmup + cosine | constant (after warmup) | wsd (warmup-stable-decay)
    warmup_fraction: float = 0.02
    decay_fraction: float = 0.2  # wsd: the last fraction of the budget decays linearly to 0
    min_lr_ratio: float = 0.1  # cosine ends at lr * min_lr_ratio
    grad_clip: float = 1.0  # max gradient norm; 0 disables


@dataclass(frozen=True, kw_only=True)
class TrialConfig:
    family: str
    size: str
    budget: float  # training FLOPs (useful: jagged, causal) to spend
    task: str = "retrieval"
    dataset: str = "synthetic"
    seed: int = 0
    split: str = "leave-one-out"
    data_dir: str | None = None
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    ties: str = "file"  # a user's equal timestamps: "file" order | "shuffle" (as the HSTU paper's sort)
    max_seq_len: int = 200
    batch_size: int = 128
    eval_batch_size: int = 512
    num_evals: int = 8  # validation points, log-spaced over the budget
    val_users: int = 0  # validate on a fixed random sample of this many users (0 = all); test uses all
    first_eval_fraction: float = 0.01  # of the budget, where the log spacing starts
    select_metric: str = ""  # validation metric that picks the best point; "" = nll / ne by task
    exclude_history: bool = True  # remove history items from the retrieval candidates
    optim: OptimConfig = field(default_factory=OptimConfig)
    num_negatives: int = 128
    temperature: float = 0.05
    negatives_per: str = "sequence"  # "sequence" | "prediction" (the HSTU paper's code): see models.losses
    dropout: float = 0.2
    model_overrides: dict[str, Any] = field(default_factory=dict)  # other preset fields, by name
    device: str = "cpu"  # "cpu" | "cuda" | "auto"
    kernel: str = "auto"  # HSTU attention: "auto" | "pytorch" | "triton"
    progress: bool = True

    @property
    def selection_metric(self) -> str:
        return self.select_metric or DEFAULT_SELECT_METRIC[self.task]

    def selection_loss(self, metrics: dict[str, float]) -> float:
        """The selection metric as a quantity to minimise (negated where higher is better)."""
        value = metrics[self.selection_metric]
        return -value if self.selection_metric.startswith(HIGHER_IS_BETTER) else value

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrialConfig":
        return _build(cls, data, "trial")

    @classmethod
    def from_yaml(cls, path: Path) -> "TrialConfig":
        return cls.from_dict(read_config_fields(path))

    def validate(self) -> None:
        from scaling.data.registry import get_spec
        from models.losses import NEGATIVES_PER
        from scaling.data.log import TIES
        from scaling.data.splits import SPLITS

        get_spec(self.dataset)
        if self.task not in DEFAULT_SELECT_METRIC:
            raise GrscaleError(f"unknown task {self.task!r}; known tasks: {', '.join(DEFAULT_SELECT_METRIC)}")
        if self.split not in SPLITS:
            raise GrscaleError(f"unknown split {self.split!r}; known splits: {', '.join(SPLITS)}")
        if self.optim.schedule not in SCHEDULES:
            raise GrscaleError(f"unknown schedule {self.optim.schedule!r}; known: {', '.join(SCHEDULES)}")
        if self.ties not in TIES:
            raise GrscaleError(f"unknown ties {self.ties!r}; known: {', '.join(TIES)}")
        if self.negatives_per not in NEGATIVES_PER:
            raise GrscaleError(f"unknown negatives_per {self.negatives_per!r}; known: {', '.join(NEGATIVES_PER)}")
        if not self.budget > 0:
            raise GrscaleError(f"budget must be a positive number of FLOPs, got {self.budget}")
        if self.val_users < 0:
            raise GrscaleError(f"val_users must be >= 0 (0 = every user), got {self.val_users}")
        for name in ("max_seq_len", "batch_size", "eval_batch_size", "num_evals"):
            if getattr(self, name) < 1:
                raise GrscaleError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise GrscaleError(f"device must be cpu, cuda or auto, got {self.device!r}")


def read_config_fields(path: Path) -> dict[str, Any]:
    """The mapping of TrialConfig fields in a YAML file (possibly partial: the CLI adds flags)."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise GrscaleError(f"cannot read trial config {path}: {error}") from None
    if not isinstance(data, dict):
        raise GrscaleError(f"{path}: a trial config is a mapping of fields, got {type(data).__name__}")
    return data


def _build(cls, data: dict[str, Any], where: str):
    """A dataclass from a mapping, recursing into nested config dataclasses; unknown keys fail."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise GrscaleError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(known)}")
    values = {}
    for name, value in data.items():
        nested = {"synthetic": SyntheticConfig, "optim": OptimConfig}.get(name) if cls is TrialConfig else None
        if nested is not None and isinstance(value, dict):
            value = _build(nested, value, f"{where}.{name}")
        elif name == "betas":
            value = tuple(value)
        values[name] = value
    try:
        return cls(**values)
    except TypeError as error:
        raise GrscaleError(f"{where}: {error}") from None
