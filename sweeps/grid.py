"""A spec expanded into trials, each with a deterministic id from its coordinates:
`hstu-s-C3e13-seed0`, with `-paper` appended for a variant other than the default and `-lr3e-3`
where the size has an lr grid."""
from __future__ import annotations

import math
from dataclasses import dataclass

from scaling import typed
from scaling.schema import short_number
from scaling.config import TrialConfig
from scaling.errors import GrscaleError
from sweeps.spec import BudgetRange, SweepSpec


@dataclass(frozen=True, kw_only=True)
class TrialPlan:
    trial_id: str
    config: TrialConfig


def budget_values(spec: SweepSpec) -> list[float]:
    """The spec's budgets, ascending; range points are rounded to 3 digits so a trial id names its budget exactly."""
    if isinstance(spec.budgets, BudgetRange):
        span = spec.budgets
        count = math.floor(math.log10(span.max / span.min) * span.per_decade + 1e-9)
        values = [float(short_number(span.min * 10 ** (i / span.per_decade))) for i in range(count + 1)]
    else:
        values = [float(v) for v in spec.budgets]
    return sorted(set(values))


def seeds_for(spec: SweepSpec, budget: float) -> list[int]:
    extra = spec.extra_seeds
    if extra is not None and budget < extra.below:
        return spec.seeds + [s for s in extra.seeds if s not in spec.seeds]
    return list(spec.seeds)


def trial_id(family: str, size: str, budget: float, seed: int, variant: str = "default",
             lr: float | None = None) -> str:
    name = f"{family}-{size}-C{short_number(budget)}-seed{seed}"
    if variant != "default":
        name += f"-{variant}"
    return name if lr is None else f"{name}-lr{short_number(lr)}"


def expand(spec: SweepSpec) -> list[TrialPlan]:
    """Every trial of the grid: families x sizes x budgets x seeds x variants (x lr grid), in that order."""
    shared = typed.merge(spec.trial, {
        "task": spec.task,
        "data": {"dataset": spec.dataset, "synthetic": typed.to_mapping(spec.synthetic)},
        "runtime": {"progress": False, "threads": max(1, int(spec.resources.worker_cpus)),
                    "workers": spec.resources.workers},
    })
    shared_overrides = shared.get("model", {}).get("overrides", {})
    plans: list[TrialPlan] = []
    for family, sizes in spec.families.items():
        overrides = {**shared_overrides, **spec.model_overrides.get(family, {})}
        for size in sizes:
            lrs: list[float | None] = list(spec.lr_grid.get(family, {}).get(size, [])) or [None]
            for budget in budget_values(spec):
                for seed in seeds_for(spec, budget):
                    for variant in spec.variants.get(family, ["default"]):
                        for lr in lrs:
                            coordinates = {"budget": budget, "seed": seed,
                                           "model": {"family": family, "size": size, "variant": variant,
                                                     "overrides": overrides}}
                            if lr is not None:
                                coordinates["optim"] = {"lr": lr}
                            config = TrialConfig.from_dict(typed.merge(shared, coordinates), "spec.trial")
                            plans.append(TrialPlan(trial_id=trial_id(family, size, budget, seed, variant, lr),
                                                   config=config))
    ids = [p.trial_id for p in plans]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise GrscaleError(f"spec.budgets / spec.lr_grid: values equal to 3 significant digits give the same trial "
                           f"id: {', '.join(repeated)}")
    return plans
