"""A sweep spec: typed, keyword-only dataclasses loaded strictly from YAML.

Every value is checked against its field's type when loaded (scaling.typed), the shared `trial:`
block as a typed partial of scaling.config.TrialConfig; then names are checked here: families,
presets, variants, budgets, seeds. The check that needs the data (a budget smaller than one
training step of a size) lives in sweeps/check.py, and the expansion into trials in sweeps/grid.py.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scaling import schema, typed
from scaling.config import MOVED, TrialConfig
from scaling.data.logspec import LogSpec, check_dataset
from scaling.data.synthetic import SyntheticConfig
from scaling.errors import GrscaleError
from scaling.eval_budget import ValidationSizing

# Trial fields a spec sets through its own keys (or the grid), never under `trial:`: path -> spec key.
OWNED = {"task": "task", "budget": "budgets", "seed": "seeds", "model.family": "families",
         "model.size": "families", "model.variant": "variants", "data.dataset": "dataset",
         "data.synthetic": "synthetic", "runtime.progress": "(off in sweeps)", "runtime.threads": "resources.cpus",
         "runtime.workers": "resources.workers"}


@dataclass(frozen=True, kw_only=True)
class BudgetRange:
    """Log-spaced budgets: min, then `per_decade` points per factor of 10, up to max (included if on that lattice)."""

    min: float
    max: float
    per_decade: int = 2


@dataclass(frozen=True, kw_only=True)
class ExtraSeeds:
    """More seeds where runs are cheap and noisy: budgets strictly below `below` also run `seeds`."""

    seeds: list[int]
    below: float


@dataclass(frozen=True, kw_only=True)
class Band:
    """Which (size, budget) cells of the grid run: those where the budget buys at least `min_steps`
    training steps and at most `max_epochs` epochs of that size. It drops the grid's uninformative
    corners (a large model that takes a handful of steps, a small one that repeats the data hundreds
    of times) so the compute goes to the diagonal band around each size's useful range."""

    min_steps: int = 1
    max_epochs: float | None = None  # None: no upper limit


@dataclass(frozen=True, kw_only=True)
class Resources:
    """What one trial holds. A one-worker trial: `cpus` and `gpus` (as always) or the per-worker keys,
    which mean the same there. `workers: N > 1` makes each trial a data-parallel Ray Train job of N
    workers, each holding `cpus_per_worker` and `gpus_per_worker` (sweeps/train_workers.py)."""

    cpus: float | None = None  # one-worker trials: CPUs per trial (default 1); also its torch threads (at least 1)
    gpus: float | None = None  # one-worker trials: GPUs per trial (default 0); fractions share a GPU
    workers: int = 1  # data-parallel workers per trial
    cpus_per_worker: float | None = None  # default 1; also each worker's torch threads (at least 1)
    gpus_per_worker: float | None = None  # default 0; with workers > 1 a whole GPU each (NCCL), or none

    @property
    def worker_cpus(self) -> float:
        """CPUs of each worker (of the trial, for one worker)."""
        return next((v for v in (self.cpus_per_worker, self.cpus) if v is not None), 1.0)

    @property
    def worker_gpus(self) -> float:
        return next((v for v in (self.gpus_per_worker, self.gpus) if v is not None), 0.0)


@dataclass(frozen=True, kw_only=True)
class BranchedSchedule:
    """`schedule: {kind: wsd-branched}`: each (family, size, setting, seed) trains one constant-rate trunk
    and every budget branches from it where its cooldown starts (sweeps/branching.py). `cooldown` is
    the fraction of each budget spent cooling down, in `shape` "1-sqrt" or "linear"."""

    kind: str = "wsd-branched"
    cooldown: float = 0.2
    shape: str = "1-sqrt"


SCHEDULE_KINDS = ("wsd-branched",)


@dataclass(frozen=True, kw_only=True)
class WandbSpec:
    project: str = "grscale"
    entity: str | None = None


@dataclass(frozen=True, kw_only=True)
class SweepSpec:
    name: str
    families: dict[str, list[str]]  # family -> size presets, e.g. {"hstu": ["xs", "s"]}
    budgets: list[float] | BudgetRange
    seeds: list[int] = field(default_factory=lambda: [0])
    extra_seeds: ExtraSeeds | None = None
    band: Band | None = None  # None: every cell runs, and a budget below one step of a size is an error
    # Each trial's validation users sized to its cost (scaling.eval_budget); None: trial.data.val_users
    validation: ValidationSizing | None = None
    dataset: str | LogSpec = "synthetic"  # a registry name, or your own log's column mapping
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    task: str = "retrieval"
    lr_grid: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # family -> size -> peak lrs
    variants: dict[str, list[str]] = field(default_factory=dict)  # family -> model variants (default: default)
    # family -> model config fields over its presets, e.g. {"hstu": {"query_time": "target"}}
    model_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    trial: dict[str, Any] = field(default_factory=dict)  # TrialConfig sections shared by every trial
    schedule: BranchedSchedule | None = None  # None: each trial on its own, with trial.optim's schedule
    select_on: str = "validation"  # what picks the setting and size per budget; "test" only by choice
    resources: Resources = field(default_factory=Resources)
    max_concurrent_trials: int | None = None  # None: as many as the cluster's resources allow
    wandb: WandbSpec = field(default_factory=WandbSpec)

    def to_dict(self) -> dict[str, Any]:
        return typed.to_mapping(self)


def spec_from_dict(data: Any) -> SweepSpec:
    """A validated spec from a mapping (as loaded from YAML); the first problem raises, naming its field."""
    spec = typed.from_mapping(SweepSpec, data, "spec")
    trial = typed.check_partial(TrialConfig, spec.trial, "spec.trial", MOVED)
    spec = dataclasses.replace(spec, trial={k: typed.to_mapping(v) if dataclasses.is_dataclass(v) else v
                                            for k, v in trial.items()})
    validate_spec(spec)
    from sweeps.grid import expand

    expand(spec)  # every trial's config, checked as the trainer will read it
    return spec


def load_spec(path: Path) -> SweepSpec:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise GrscaleError(f"cannot read sweep spec {path}: {error}") from None
    return spec_from_dict(data)


def _positive(value: float, where: str) -> None:
    if not value > 0:
        raise GrscaleError(f"{where}: expected a positive number, got {value!r}")


def _check_budgets(budgets: list[float] | BudgetRange) -> None:
    if isinstance(budgets, BudgetRange):
        _positive(budgets.min, "spec.budgets.min")
        _positive(budgets.max, "spec.budgets.max")
        if budgets.max < budgets.min:
            raise GrscaleError(f"spec.budgets: max {budgets.max:g} is below min {budgets.min:g}")
        if budgets.per_decade < 1:
            raise GrscaleError(f"spec.budgets.per_decade: expected an integer >= 1, got {budgets.per_decade!r}")
        return
    if not budgets:
        raise GrscaleError("spec.budgets: expected a non-empty list of FLOPs (an empty one gives zero trials) or "
                           "{min, max, per_decade}")
    for budget in budgets:
        _positive(budget, "spec.budgets")


def _check_seeds(values: list[int], where: str) -> None:
    if not values:
        raise GrscaleError(f"{where}: expected a non-empty list of integer seeds (an empty one gives zero trials)")
    if any(s < 0 for s in values):
        raise GrscaleError(f"{where}: seeds are integers >= 0, got {values!r}")
    if len(set(values)) != len(values):
        raise GrscaleError(f"{where}: repeated seed in {values!r}")


def _check_families(spec: SweepSpec) -> None:
    from models.presets import FAMILIES, PRESETS, model_config, variant_fields

    if not spec.families:
        raise GrscaleError("spec.families: no families, so the grid has zero trials; expected a mapping of "
                           "family -> list of sizes, e.g. {hstu: [xs, s]}")
    for family, sizes in spec.families.items():
        if family not in FAMILIES:
            raise GrscaleError(f"spec.families: unknown family {family!r}; known: {', '.join(FAMILIES)}")
        known = [p.removeprefix(f"{family}-") for p in PRESETS if p.startswith(f"{family}-")]
        if not sizes:
            raise GrscaleError(f"spec.families.{family}: no sizes, so the grid has zero trials; known sizes: "
                               f"{', '.join(known)}")
        for size in sizes:
            if size not in known:
                raise GrscaleError(f"spec.families.{family}: unknown size {size!r}; known: {', '.join(known)}")
        if len(set(sizes)) != len(sizes):
            raise GrscaleError(f"spec.families.{family}: repeated size in {sizes!r}")
    for key in ("lr_grid", "variants", "model_overrides"):
        for family in getattr(spec, key):
            if family not in spec.families:
                raise GrscaleError(f"spec.{key}: family {family!r} is not in spec.families")
    for family, per_size in spec.lr_grid.items():
        for size, lrs in per_size.items():
            if size not in spec.families[family]:
                raise GrscaleError(f"spec.lr_grid.{family}: size {size!r} is not in spec.families.{family}")
            if not lrs:
                raise GrscaleError(f"spec.lr_grid.{family}.{size}: expected a non-empty list of learning rates")
            for lr in lrs:
                _positive(lr, f"spec.lr_grid.{family}.{size}")
    for family, fields in spec.model_overrides.items():
        for size in spec.families[family]:  # names and values, on every size they apply to
            try:
                model_config(family, size, num_items=2, num_users=2, max_seq_len=2, **fields)
            except (GrscaleError, ValueError) as error:
                raise GrscaleError(f"spec.model_overrides.{family}: {error}") from None
    for family, names in spec.variants.items():
        if not names or len(set(names)) != len(names):
            raise GrscaleError(f"spec.variants.{family}: expected a non-empty list of distinct variants, got {names!r}")
        for name in names:
            try:
                variant_fields(family, name)
            except GrscaleError as error:
                raise GrscaleError(f"spec.variants.{family}: {error}") from None


def _check_trial(spec: SweepSpec) -> None:
    for path, key in OWNED.items():
        section, _, name = path.rpartition(".")
        block = spec.trial.get(section, {}) if section else spec.trial
        if name in block:
            raise GrscaleError(f"spec.trial.{path}: set by the spec's own key {key}, not under trial:")


def _check_resources(resources: Resources) -> None:
    where = "spec.resources"
    if resources.workers < 1:
        raise GrscaleError(f"{where}.workers: expected an integer >= 1, got {resources.workers!r}")
    for name, per_worker in (("cpus", "cpus_per_worker"), ("gpus", "gpus_per_worker")):
        trial, worker = getattr(resources, name), getattr(resources, per_worker)
        if trial is not None and worker is not None:
            raise GrscaleError(f"{where}: give {name} or {per_worker}, not both")
        if trial is not None and resources.workers > 1:
            raise GrscaleError(f"{where}.{name}: with workers: {resources.workers}, give {per_worker} "
                               f"({name} is a one-worker trial's)")
    if not resources.worker_cpus > 0:
        raise GrscaleError(f"{where}: expected a positive number of CPUs per worker, got {resources.worker_cpus!r}")
    gpus = resources.worker_gpus
    if gpus < 0:
        raise GrscaleError(f"{where}: expected a number of GPUs >= 0, got {gpus!r}")
    if resources.workers > 1 and gpus != int(gpus):
        raise GrscaleError(f"{where}.gpus_per_worker: data-parallel workers need whole GPUs each (NCCL runs one "
                           f"rank per GPU), got {gpus!r}")


def _check_schedule(spec: SweepSpec) -> None:
    from scaling.config import DECAY_SHAPES, OptimConfig

    schedule = spec.schedule
    if schedule.kind not in SCHEDULE_KINDS:
        raise GrscaleError(f"spec.schedule.kind: unknown kind {schedule.kind!r}; known: {', '.join(SCHEDULE_KINDS)}")
    if not 0 < schedule.cooldown < 1:
        raise GrscaleError(f"spec.schedule.cooldown: expected the fraction of each budget spent cooling down, in "
                           f"(0, 1), got {schedule.cooldown!r}")
    if schedule.shape not in DECAY_SHAPES:
        raise GrscaleError(f"spec.schedule.shape: unknown shape {schedule.shape!r}; known: {', '.join(DECAY_SHAPES)}")
    optim = spec.trial.get("optim", {})
    for name in ("schedule", "decay_fraction", "decay_shape"):
        if name in optim:
            raise GrscaleError(f"spec.trial.optim.{name}: set by spec.schedule in a branched sweep, not under trial:")
    if optim.get("warmup_fraction", OptimConfig.warmup_fraction) > 0:
        raise GrscaleError("spec.schedule: a branched sweep warms up by steps or FLOPs, the same for every budget "
                           "(a trunk's warmup cannot depend on where its branches end): set spec.trial.optim."
                           "warmup_steps (or warmup_flops) and warmup_fraction: 0")


def validate_spec(spec: SweepSpec) -> None:
    """Checks that need no data: names, presets, variants, seeds, trial fields, resources."""
    if not spec.name or "/" in spec.name or spec.name.startswith("."):
        raise GrscaleError(f"spec.name: expected a folder name (no '/'), got {spec.name!r}")
    if spec.task not in schema.TASKS:
        raise GrscaleError(f"spec.task: unknown task {spec.task!r}; known: {', '.join(schema.TASKS)}")
    if spec.select_on not in schema.SELECT_ON:
        raise GrscaleError(f"spec.select_on: expected one of {', '.join(schema.SELECT_ON)}, got {spec.select_on!r}")
    check_dataset(spec.dataset, "spec.dataset")
    try:
        spec.synthetic.validate()
    except GrscaleError as error:
        raise GrscaleError(f"spec.synthetic: {error}") from None
    _check_budgets(spec.budgets)
    _check_families(spec)
    _check_seeds(spec.seeds, "spec.seeds")
    if spec.extra_seeds is not None:
        _check_seeds(spec.extra_seeds.seeds, "spec.extra_seeds.seeds")
        _positive(spec.extra_seeds.below, "spec.extra_seeds.below")
    if spec.band is not None:
        if spec.band.min_steps < 1:
            raise GrscaleError(f"spec.band.min_steps: expected an integer >= 1, got {spec.band.min_steps!r}")
        if spec.band.max_epochs is not None:
            _positive(spec.band.max_epochs, "spec.band.max_epochs")
    _check_trial(spec)
    _check_resources(spec.resources)
    if spec.validation is not None:
        spec.validation.validate("spec.validation")
        if spec.trial.get("data", {}).get("val_users"):
            raise GrscaleError("spec.trial.data.val_users: spec.validation sizes each trial's validation; "
                               "set one of the two")
    if spec.schedule is not None:
        _check_schedule(spec)
    limit = spec.max_concurrent_trials
    if limit is not None and limit < 1:
        raise GrscaleError(f"spec.max_concurrent_trials: expected an integer >= 1, got {limit!r}")
