"""A sweep spec: typed, keyword-only dataclasses loaded strictly from YAML.

Structure and names are checked here (no torch): unknown keys, families, presets, budgets and
seeds. The check that needs the data (a budget smaller than one training step of a size) lives
in sweeps/check.py, and the expansion into trials in sweeps/grid.py.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scaling.config import TrialConfig
from scaling.data.synthetic import SyntheticConfig
from scaling.errors import GrscaleError

# Trial fields a spec sets through its own keys (or the grid), never through `trial:`.
GRID_FIELDS = ("family", "size", "budget", "seed", "task", "dataset", "synthetic", "progress")


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
    cpus: float = 1.0  # per trial; also the trial's torch threads (at least 1)
    gpus: float = 0.0  # per trial; fractions share a GPU


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
    dataset: str = "synthetic"
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    task: str = "retrieval"
    lr_grid: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # family -> size -> peak lrs
    # family -> model config fields over its presets, e.g. {"hstu": {"query_time": "target"}}
    model_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    trial: dict[str, Any] = field(default_factory=dict)  # TrialConfig fields shared by every trial
    resources: Resources = field(default_factory=Resources)
    max_concurrent_trials: int | None = None  # None: as many as the cluster's resources allow
    wandb: WandbSpec = field(default_factory=WandbSpec)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_NESTED = {"extra_seeds": ExtraSeeds, "band": Band, "synthetic": SyntheticConfig, "resources": Resources, "wandb": WandbSpec}


def _build(cls, data: Any, where: str):
    if not isinstance(data, dict):
        raise GrscaleError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise GrscaleError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
    try:
        return cls(**data)
    except TypeError as error:  # a required key is missing
        raise GrscaleError(f"{where}: {error}") from None


def spec_from_dict(data: Any) -> SweepSpec:
    """A validated spec from a mapping (as loaded from YAML); the first problem raises, naming its field."""
    values = dict(_build(SweepSpec, data, "spec").__dict__)
    for name, cls in _NESTED.items():
        value = values[name]
        if isinstance(value, dict):
            values[name] = _build(cls, value, f"spec.{name}")
        elif not (isinstance(value, cls) or (value is None and name in ("extra_seeds", "band"))):
            raise GrscaleError(f"spec.{name}: expected a mapping, got {value!r}")
    values["budgets"] = _budgets(values["budgets"])
    values["lr_grid"] = _lr_grid(values["lr_grid"])
    if values["extra_seeds"] is not None:
        extra = values["extra_seeds"]
        values["extra_seeds"] = ExtraSeeds(seeds=extra.seeds, below=_number(extra.below, "spec.extra_seeds.below"))
    if values["band"] is not None:
        values["band"] = _band(values["band"])
    spec = SweepSpec(**values)
    validate_spec(spec)
    return spec


def load_spec(path: Path) -> SweepSpec:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise GrscaleError(f"cannot read sweep spec {path}: {error}") from None
    return spec_from_dict(data)


def _number(value: Any, where: str) -> float:
    # PyYAML reads 1e8 (no dot) as a string: accept numeric strings, reject the rest.
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise GrscaleError(f"{where}: expected a number, got {value!r}") from None
    if not 0 < number < float("inf"):
        raise GrscaleError(f"{where}: expected a positive finite number, got {value!r}")
    return number


def _budgets(budgets: Any) -> list[float] | BudgetRange:
    if isinstance(budgets, dict):
        span = _build(BudgetRange, budgets, "spec.budgets")
        low, high = _number(span.min, "spec.budgets.min"), _number(span.max, "spec.budgets.max")
        if high < low:
            raise GrscaleError(f"spec.budgets: max {high:g} is below min {low:g}")
        if not isinstance(span.per_decade, int) or span.per_decade < 1:
            raise GrscaleError(f"spec.budgets.per_decade: expected an integer >= 1, got {span.per_decade!r}")
        return BudgetRange(min=low, max=high, per_decade=span.per_decade)
    if isinstance(budgets, list) and budgets:
        return [_number(budget, "spec.budgets") for budget in budgets]
    raise GrscaleError(f"spec.budgets: expected a non-empty list of FLOPs (an empty one gives zero trials) or "
                       f"{{min, max, per_decade}}, got {budgets!r}")


def _band(band: Band) -> Band:
    steps = band.min_steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise GrscaleError(f"spec.band.min_steps: expected an integer >= 1, got {steps!r}")
    epochs = None if band.max_epochs is None else _number(band.max_epochs, "spec.band.max_epochs")
    return Band(min_steps=steps, max_epochs=epochs)


def _lr_grid(grid: Any) -> dict[str, dict[str, list[float]]]:
    if not isinstance(grid, dict):
        raise GrscaleError("spec.lr_grid: expected a mapping family -> size -> list of learning rates")
    result = {}
    for family, per_size in grid.items():
        if not isinstance(per_size, dict):
            raise GrscaleError(f"spec.lr_grid.{family}: expected a mapping size -> list of learning rates")
        result[family] = {}
        for size, lrs in per_size.items():
            if not isinstance(lrs, list) or not lrs:
                raise GrscaleError(f"spec.lr_grid.{family}.{size}: expected a non-empty list of learning rates")
            result[family][str(size)] = [_number(lr, f"spec.lr_grid.{family}.{size}") for lr in lrs]
    return result


def _check_seeds(values: Any, where: str) -> None:
    if not isinstance(values, list) or not values:
        raise GrscaleError(f"{where}: expected a non-empty list of integer seeds (an empty one gives zero trials), "
                           f"got {values!r}")
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in values):
        raise GrscaleError(f"{where}: seeds are integers >= 0, got {values!r}")
    if len(set(values)) != len(values):
        raise GrscaleError(f"{where}: repeated seed in {values!r}")


def _check_families(spec: SweepSpec) -> None:
    from models.presets import FAMILIES, PRESETS

    if not isinstance(spec.families, dict) or not spec.families:
        raise GrscaleError("spec.families: no families, so the grid has zero trials; expected a mapping of "
                           "family -> list of sizes, e.g. {hstu: [xs, s]}")
    for family, sizes in spec.families.items():
        if family not in FAMILIES:
            raise GrscaleError(f"spec.families: unknown family {family!r}; known: {', '.join(FAMILIES)}")
        known = [p.removeprefix(f"{family}-") for p in PRESETS if p.startswith(f"{family}-")]
        if not isinstance(sizes, list) or not sizes:
            raise GrscaleError(f"spec.families.{family}: no sizes, so the grid has zero trials; known sizes: "
                               f"{', '.join(known)}")
        for size in sizes:
            if str(size) not in known:
                raise GrscaleError(f"spec.families.{family}: unknown size {size!r}; known: {', '.join(known)}")
        if len(set(sizes)) != len(sizes):
            raise GrscaleError(f"spec.families.{family}: repeated size in {sizes!r}")
    for family, per_size in spec.lr_grid.items():
        if family not in spec.families:
            raise GrscaleError(f"spec.lr_grid: family {family!r} is not in spec.families")
        for size in per_size:
            if size not in map(str, spec.families[family]):
                raise GrscaleError(f"spec.lr_grid.{family}: size {size!r} is not in spec.families.{family}")
    _check_model_overrides(spec)


def _check_model_overrides(spec: SweepSpec) -> None:
    from models.presets import model_config

    if not isinstance(spec.model_overrides, dict):
        raise GrscaleError("spec.model_overrides: expected a mapping family -> {model config field: value}")
    for family, fields in spec.model_overrides.items():
        if family not in spec.families:
            raise GrscaleError(f"spec.model_overrides: family {family!r} is not in spec.families")
        if not isinstance(fields, dict):
            raise GrscaleError(f"spec.model_overrides.{family}: expected a mapping of model config fields")
        for size in map(str, spec.families[family]):  # names and values, on every size they apply to
            try:
                model_config(family, size, num_items=2, num_users=2, max_seq_len=2, **fields)
            except GrscaleError as error:
                raise GrscaleError(f"spec.model_overrides.{family}: {error}") from None


def _check_trial(spec: SweepSpec) -> None:
    if not isinstance(spec.trial, dict):
        raise GrscaleError("spec.trial: expected a mapping of TrialConfig fields")
    owned = sorted(set(spec.trial) & set(GRID_FIELDS))
    if owned:
        raise GrscaleError(f"spec.trial: {', '.join(owned)} set by the spec's own keys, not under trial:")
    try:
        base = TrialConfig.from_dict({"family": "hstu", "size": "xs", "budget": 1.0, **spec.trial})
        dataclasses.replace(base, task=spec.task, dataset=spec.dataset).validate()
    except GrscaleError as error:
        raise GrscaleError(f"spec.trial: {error}") from None
    try:
        spec.synthetic.validate()
    except GrscaleError as error:
        raise GrscaleError(f"spec.synthetic: {error}") from None


def validate_spec(spec: SweepSpec) -> None:
    """Checks that need no data: names, presets, seeds, trial fields, resources."""
    if not isinstance(spec.name, str) or not spec.name or "/" in spec.name or spec.name.startswith("."):
        raise GrscaleError(f"spec.name: expected a folder name (no '/'), got {spec.name!r}")
    from scaling.config import DEFAULT_SELECT_METRIC
    from scaling.data.registry import get_spec

    if spec.task not in DEFAULT_SELECT_METRIC:
        raise GrscaleError(f"spec.task: unknown task {spec.task!r}; known: {', '.join(DEFAULT_SELECT_METRIC)}")
    try:
        get_spec(spec.dataset)
    except GrscaleError as error:
        raise GrscaleError(f"spec.dataset: {error}") from None
    _check_families(spec)
    _check_seeds(spec.seeds, "spec.seeds")
    if spec.extra_seeds is not None:
        _check_seeds(spec.extra_seeds.seeds, "spec.extra_seeds.seeds")
    _check_trial(spec)
    for name in ("cpus", "gpus"):
        value = getattr(spec.resources, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (name == "cpus" and value == 0):
            raise GrscaleError(f"spec.resources.{name}: expected a {'positive' if name == 'cpus' else 'non-negative'} "
                               f"number, got {value!r}")
    limit = spec.max_concurrent_trials
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise GrscaleError(f"spec.max_concurrent_trials: expected an integer >= 1, got {limit!r}")
