"""A spec expanded into trials, each with a deterministic id from its coordinates
(`hstu-s-C3e13-seed0`, `-lr3e-3` appended where the size has an lr grid)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from scaling.config import TrialConfig
from scaling.errors import GrscaleError
from sweeps.spec import BudgetRange, SweepSpec


@dataclass(frozen=True, kw_only=True)
class TrialPlan:
    trial_id: str
    config: TrialConfig
    lr: float | None = None  # the lr-grid value, None where the size has no grid


def short_number(value: float) -> str:
    """3 significant digits, no '+' or leading zeros in the exponent: 3e13, 3.16e8, 1e-3."""
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


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


def trial_id(family: str, size: str, budget: float, seed: int, lr: float | None = None) -> str:
    name = f"{family}-{size}-C{short_number(budget)}-seed{seed}"
    return name if lr is None else f"{name}-lr{short_number(lr)}"


def expand(spec: SweepSpec) -> list[TrialPlan]:
    """Every trial of the grid: families x sizes x budgets x seeds (x lr grid), in that order."""
    shared = {**spec.trial, "task": spec.task, "dataset": spec.dataset,
              "synthetic": dataclasses.asdict(spec.synthetic), "progress": False}
    plans: list[TrialPlan] = []
    for family, sizes in spec.families.items():
        for size in map(str, sizes):
            lrs: list[float | None] = list(spec.lr_grid.get(family, {}).get(size, [])) or [None]
            for budget in budget_values(spec):
                for seed in seeds_for(spec, budget):
                    overrides = {**shared.get("model_overrides", {}), **spec.model_overrides.get(family, {})}
                    base = TrialConfig.from_dict({**shared, "family": family, "size": size, "budget": budget,
                                                  "seed": seed, "model_overrides": overrides})
                    for lr in lrs:
                        config = base if lr is None else dataclasses.replace(
                            base, optim=dataclasses.replace(base.optim, lr=lr))
                        plans.append(TrialPlan(trial_id=trial_id(family, size, budget, seed, lr), config=config,
                                               lr=lr))
    ids = [p.trial_id for p in plans]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise GrscaleError(f"spec.budgets / spec.lr_grid: values equal to 3 significant digits give the same trial "
                           f"id: {', '.join(repeated)}")
    return plans
