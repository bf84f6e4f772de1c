"""Branched WSD cooldowns against independent cosine runs (issue: per-size learning rates at the cost
of one run per size).

1. Quality: ML-1M retrieval, HSTU and DLRM at two sizes each, three budgets, two seeds. Each budget as
   a branch of one constant-rate trunk per (size, seed), 20% 1-sqrt cooldown (sweeps/branching.py, the
   same plans a `schedule: {kind: wsd-branched}` sweep runs), against the study's from-scratch cosine
   trial at the same budget and peak rate (to 10% of the peak). Target: test NLL and NDCG@10 within
   the seed spread. Cosine to 0 beside them separates the schedule's shape from its final rate.
2. Cost: the compute a branched grid spends (each trunk once, then the cooldowns) against independent
   runs of the same grid, for decade-spaced ladders of 5 budgets per decade and for the ML-1M CPU study.

Run: GRSCALE_DATA_DIR=../shared/data .venv/bin/python benchmarks/branched_cooldown.py [--out DIR] [--cost-only]
Trials train in-process, two at a time (one thread each); a rerun with the same --out continues.
Writes benchmarks/branched_cooldown.md beside this file.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import subprocess
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path
from statistics import mean

from scaling.config import TrialConfig
from scaling.schema import short_number
from sweeps.branching import branch_plans, planned_cost
from sweeps.grid import TrialPlan, trial_id
from sweeps.spec import BranchedSchedule

FAMILIES = {"hstu": ("xs", "s"), "dlrm": ("xs", "s")}
BUDGETS = (1e11, 3.16e11, 1e12)
SEEDS = (0, 1)
SCHEDULE = BranchedSchedule(cooldown=0.2, shape="1-sqrt")
SHORT_COOLDOWN = BranchedSchedule(cooldown=0.1, shape="1-sqrt")  # the short end of Hagele et al.'s 10-20%
WARMUP_STEPS = 5  # about the cosine runs' 2% warmup at the smallest budget (hstu-xs: 279 steps)
SHARED = {"task": "retrieval", "data": {"dataset": "ml-1m", "max_seq_len": 50, "val_users": 500},
          "model": {"dropout": 0.2, "loss": {"num_negatives": 128, "temperature": 0.05}},
          "optim": {"lr": 1e-3, "betas": [0.9, 0.98], "batch_size": 128},
          "runtime": {"progress": False, "threads": 1}}  # the ML-1M CPU study's trial, 500 validation users


def config(family: str, size: str, budget: float, seed: int, **optim) -> TrialConfig:
    sections = {**SHARED, "optim": {**SHARED["optim"], **optim}}
    return TrialConfig.from_dict({**sections, "budget": budget, "seed": seed,
                                  "model": {**SHARED["model"], "family": family, "size": size}})


def group_plans(family: str, size: str, seed: int) -> dict[str, list[TrialPlan]]:
    """Of one (family, size, seed): the branched trials (trunk first), the study's cosine ones (to 10% of
    the peak) and cosine ones to 0 (what separates the schedule's shape from its final rate)."""
    def plans(**optim):
        return [TrialPlan(trial_id=trial_id(family, size, b, seed), config=config(family, size, b, seed, **optim))
                for b in BUDGETS]
    return {"branched": branch_plans(plans(warmup_fraction=0.0, warmup_steps=WARMUP_STEPS), SCHEDULE),
            "cosine": plans(schedule="cosine", warmup_fraction=0.02),
            "cosine-to-0": plans(schedule="cosine", warmup_fraction=0.02, min_lr_ratio=0.0)}


def run_group(args: tuple[str, str, int, str]) -> list[dict]:
    family, size, seed, out = args
    from scaling.train import train_to_budget

    rows = []
    for kind, plans in group_plans(family, size, seed).items():
        for plan in plans:
            final = train_to_budget(plan.config, Path(out) / kind / plan.trial_id, resume=True).final
            rows.append({"kind": kind, "role": plan.config.branch.role, "family": family, "size": size, "seed": seed,
                         "budget": plan.config.budget, "flops": final["flops"],
                         "own_flops": final["flops"] - (final.get("branch_flops") or 0.0),
                         "nll": final.get("test/nll"), "ndcg": final.get("test/ndcg@10")})
            print(f"{kind} {plan.trial_id}: {rows[-1]}", flush=True)
    return rows


def cost_lines() -> list[str]:
    lines = ["| grid | budgets | independent FLOPs | branched FLOPs | saving | saving with a 10% cooldown |",
             "|---|---|---|---|---|---|"]

    def ladder(decades: int) -> list[float]:
        return [1e10 * 10 ** (i / 5) for i in range(5 * decades + 1)]

    grids = {f"one size, 5 budgets per decade over {d} decade(s)": ladder(d) for d in (1, 2, 3)}
    grids["this benchmark's (per size and seed)"] = list(BUDGETS)
    for name, budgets in grids.items():
        plans = [TrialPlan(trial_id=trial_id("hstu", "xs", b, 0), config=config("hstu", "xs", b, 0, warmup_fraction=0.0,
                                                                                 warmup_steps=WARMUP_STEPS))
                 for b in budgets]
        cost, short = (planned_cost(branch_plans(plans, schedule)) for schedule in (SCHEDULE, SHORT_COOLDOWN))
        lines.append(f"| {name} | {short_number(budgets[0])} .. {short_number(budgets[-1])} ({len(budgets)}) | "
                     f"{cost.independent:.3g} | {cost.spent:.3g} | {cost.saving:.2f}x | {short.saving:.2f}x |")
    lines.append(_study_cost_line())
    return lines


def _study_cost_line() -> str:
    """The ML-1M CPU study's grid (its band applied), branched, at 5 budgets per decade."""
    from sweeps.check import plan_trials
    from sweeps.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parents[1] / "sweeps/specs/ml1m-retrieval-cpu.yaml")
    trial = {**spec.trial, "optim": {**spec.trial["optim"], "warmup_fraction": 0.0, "warmup_steps": WARMUP_STEPS}}
    trial["optim"].pop("schedule")
    spec = dataclasses.replace(spec, trial=trial, schedule=SCHEDULE,
                               budgets=dataclasses.replace(spec.budgets, per_decade=5))
    plans = plan_trials(spec)
    cost = planned_cost(plans)
    short = planned_cost(plan_trials(dataclasses.replace(spec, schedule=SHORT_COOLDOWN)))
    branches = sum(p.config.branch.role == "branch" for p in plans)
    return (f"| ml1m-retrieval-cpu.yaml at 5 budgets per decade, its band applied ({branches} trials, "
            f"{len(plans) - branches} trunks) | 1e10 .. 1e13 | {cost.independent:.3g} | {cost.spent:.3g} | "
            f"{cost.saving:.2f}x | {short.saving:.2f}x |")


def quality_lines(rows: list[dict]) -> list[str]:
    by = {(r["kind"], r["family"], r["size"], r["budget"], r["seed"]): r for r in rows if r["role"] != "trunk"}
    lines = ["| trial | metric | cosine (seed 0, 1) | branched (seed 0, 1) | branched - cosine (mean) | "
             "seed spread (cosine, branched) | within | cosine to 0 (seed 0, 1) | branched - cosine to 0 |",
             "|---|---|---|---|---|---|---|---|---|"]
    met = total = 0
    for family, sizes in FAMILIES.items():
        for size in sizes:
            for budget in BUDGETS:
                for metric, name in (("nll", "test NLL"), ("ndcg", "NDCG@10")):
                    values = {k: [by[(k, family, size, budget, s)][metric] for s in SEEDS]
                              for k in ("cosine", "branched", "cosine-to-0")}
                    diff = mean(values["branched"]) - mean(values["cosine"])
                    spread = {k: max(v) - min(v) for k, v in values.items() if k != "cosine-to-0"}
                    within = abs(diff) <= max(spread.values())
                    to_zero = mean(values["branched"]) - mean(values["cosine-to-0"])
                    met, total = met + within, total + 1
                    lines.append(f"| {family}-{size} {short_number(budget)} | {name} | "
                                 f"{', '.join(f'{v:.4f}' for v in values['cosine'])} | "
                                 f"{', '.join(f'{v:.4f}' for v in values['branched'])} | {diff:+.4f} | "
                                 f"{spread['cosine']:.4f}, {spread['branched']:.4f} | {'yes' if within else 'no'} | "
                                 f"{', '.join(f'{v:.4f}' for v in values['cosine-to-0'])} | {to_zero:+.4f} |")
    spent = {k: sum(r["own_flops"] for r in rows if r["kind"] == k) for k in ("cosine", "branched")}
    keys = [(f, size, b, s) for f, sizes in FAMILIES.items() for size in sizes for b in BUDGETS for s in SEEDS]
    wins = sum(by[("branched", *key)]["nll"] < by[("cosine-to-0", *key)]["nll"] for key in keys)
    lines += ["", f"Within the seed spread (|mean difference| <= the larger of the two spreads): {met} of {total}.",
              f"Branched below cosine to 0 in test NLL: {wins} of {len(keys)} trials.",
              f"Compute actually spent: cosine {spent['cosine']:.3g} FLOPs, branched {spent['branched']:.3g} "
              f"({spent['cosine'] / spent['branched']:.2f}x less)."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/branched_cooldown"))
    parser.add_argument("--cost-only", action="store_true")
    args = parser.parse_args()
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = ["# Branched WSD cooldowns against independent cosine runs", "",
             f"machine: {platform.machine()}, {os.cpu_count()} cores; date {date.today()}; git {sha}", "",
             f"Cooldown {SCHEDULE.cooldown:.0%} of each budget, shape {SCHEDULE.shape}; warmup {WARMUP_STEPS} steps.",
             "", "## Compute", "", *cost_lines()]
    if not args.cost_only:
        groups = [(f, size, seed, str(args.out)) for f, sizes in FAMILIES.items() for size in sizes for seed in SEEDS]
        with ProcessPoolExecutor(2) as pool:
            rows = [row for group in pool.map(run_group, groups) for row in group]
        lines += ["", "## Quality (ML-1M retrieval, test at the best validation point)", "",
                  "The study's trial (length 50, batch 128, 128 negatives, lr 1e-3; cosine with a 2% warmup to 10% "
                  "of the peak); 500 validation users; test on all 6,040.", "", *quality_lines(rows)]
    text = "\n".join(lines) + "\n"
    print(text)
    (Path(__file__).parent / "branched_cooldown.md").write_text(text)


if __name__ == "__main__":
    main()
