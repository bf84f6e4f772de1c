"""Branched WSD sweeps (Hagele et al. 2024): every budget of a (family, size, setting, seed) shares
one constant-rate trunk, and each budget is a branch that starts from the trunk's snapshot where its
cooldown begins and spends the rest of its budget cooling down.

A branch computes what an independent WSD trial of its budget computes (same batches, same rates at
every step, warmup by steps or FLOPs), so its rows are that trial's; the grid's compute falls from the
sum of its budgets to the trunk's plus the cooldowns.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from scaling.config import BranchConfig, TrialConfig
from scaling.schema import short_number
from sweeps.grid import TrialPlan
from sweeps.spec import BranchedSchedule


def trunk_id(plan: TrialPlan) -> str:
    """`hstu-s-C1e11-seed0-lr3e-3` -> `hstu-s-trunk-seed0-lr3e-3`: the trial id with its budget replaced."""
    return plan.trial_id.replace(f"-C{short_number(plan.config.budget)}-", "-trunk-", 1)


def _shared_val_users(plans: list[TrialPlan]) -> int:
    """One validation sample for a trunk and its branches (their rows are one curve): the largest sized, 0 = all."""
    users = [p.config.data.val_users for p in plans]
    return 0 if 0 in users else max(users)


def branch_plans(plans: list[TrialPlan], schedule: BranchedSchedule) -> list[TrialPlan]:
    """Each group's trunk, then its branches (the plans themselves, as WSD cooldowns from the trunk)."""
    groups: dict[str, list[TrialPlan]] = {}
    for plan in plans:
        groups.setdefault(trunk_id(plan), []).append(plan)
    out: list[TrialPlan] = []
    for trunk, members in groups.items():
        val_users = _shared_val_users(members)
        starts = [(1 - schedule.cooldown) * p.config.budget for p in members]
        snapshots = sorted(starts)
        out.append(TrialPlan(trial_id=trunk, config=_with(
            members[0].config, val_users, budget=snapshots[-1], schedule="constant",
            branch=BranchConfig(role="trunk", snapshots=snapshots))))
        for plan, start in zip(members, starts):
            out.append(dataclasses.replace(plan, config=_with(
                plan.config, val_users, schedule="wsd", decay_fraction=schedule.cooldown, decay_shape=schedule.shape,
                branch=BranchConfig(role="branch", trunk=trunk, start=start))))
    return out


def _with(cfg: TrialConfig, val_users: int, *, branch: BranchConfig, budget: float | None = None,
          **optim) -> TrialConfig:
    config = dataclasses.replace(cfg, budget=cfg.budget if budget is None else budget, branch=branch,
                                 data=dataclasses.replace(cfg.data, val_users=val_users),
                                 optim=dataclasses.replace(cfg.optim, **optim))
    config.validate("spec.schedule")
    return config


@dataclass(frozen=True)
class GridCost:
    spent: float  # FLOPs: each trunk once, plus every branch's cooldown
    independent: float  # FLOPs the same grid costs as independent trials (the sum of its budgets)

    @property
    def saving(self) -> float:
        return self.independent / self.spent

    def line(self, what: str) -> str:
        return (f"compute {what}: {self.spent:.3g} FLOPs (each trunk once, then the cooldowns) against "
                f"{self.independent:.3g} for independent trials of the same grid ({self.saving:.2f}x less)")


def planned_cost(plans: list[TrialPlan]) -> GridCost:
    """What a branched grid (trunks and branches) is planned to spend, from its budgets and branch points."""
    trunks = [p.config for p in plans if p.config.branch.role == "trunk"]
    branches = [p.config for p in plans if p.config.branch.role == "branch"]
    return GridCost(spent=sum(c.budget for c in trunks) + sum(c.budget - c.branch.start for c in branches),
                    independent=sum(c.budget for c in branches))


def spent_cost(results: Path) -> GridCost | None:
    """What a branched sweep's finished trials spent, from the last rows of its results table; None
    before any branch has finished."""
    import pandas as pd

    rows = pd.read_parquet(results)
    if "branch_role" not in rows.columns or not rows["branch_role"].eq("branch").any():
        return None
    last = rows.sort_values("step", kind="stable").groupby("trial_id").tail(1)
    trunks, branches = last[last["branch_role"].eq("trunk")], last[last["branch_role"].eq("branch")]
    own = (branches["flops"] - branches["branch_flops"]).sum()
    return GridCost(spent=float(trunks["flops"].sum() + own), independent=float(branches["flops"].sum()))
