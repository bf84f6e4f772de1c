"""`grscale sweep status`: trials done, running, pending, diverged and failed, and FLOPs spent
against the total, per preset and overall. It reads only the sweep folder (its spec.yaml and
the trial folders), so it works while the sweep runs, after it ends and after a crash."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sweeps.grid import TrialPlan, short_number
from sweeps.outcome import STATES, read_outcome
from sweeps.results import TRIALS_DIR

SPEC_FILE = "spec.yaml"


@dataclass(kw_only=True)
class StatusCounts:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    flops_spent: float = 0.0
    flops_total: float = 0.0

    def add(self, state: str, spent: float, budget: float) -> None:
        self.counts[state] += 1
        self.flops_spent += spent
        self.flops_total += budget


def sweep_status(sweep_dir: Path, plans: list[TrialPlan]) -> dict[str, StatusCounts]:
    """Counts per preset (`hstu-xs`, ...) and under "total"."""
    table: dict[str, StatusCounts] = {}
    for plan in plans:
        outcome = read_outcome(sweep_dir / TRIALS_DIR / plan.trial_id)
        # A finished trial spent its budget (it may overshoot by part of a step): count that, capped.
        spent = min(outcome.flops, plan.config.budget)
        for key in (f"{plan.config.family}-{plan.config.size}", "total"):
            table.setdefault(key, StatusCounts()).add(outcome.state, spent, plan.config.budget)
    table["total"] = table.pop("total")  # last row
    return table


def format_status(name: str, table: dict[str, StatusCounts]) -> str:
    title = f"sweep {name}"
    width = max(len(title), *(len(k) for k in table))
    header = f"{title:{width}s}  " + "  ".join(f"{s:>8s}" for s in STATES) + "   FLOPs spent / total"
    lines = [header]
    for key, row in table.items():
        cells = "  ".join(f"{row.counts[s]:8d}" for s in STATES)
        share = row.flops_spent / row.flops_total if row.flops_total else 0.0
        lines.append(f"{key:{width}s}  {cells}   {short_number(row.flops_spent)} / {short_number(row.flops_total)} "
                     f"({share:.0%})")
    return "\n".join(lines)


def load_sweep(sweep_dir: Path) -> tuple[str, list[TrialPlan]]:
    from scaling.errors import GrscaleError
    from sweeps.check import plan_trials
    from sweeps.grid import expand
    from sweeps.spec import load_spec

    if not (sweep_dir / SPEC_FILE).exists():
        raise GrscaleError(f"{sweep_dir} is not a sweep folder: it has no {SPEC_FILE} (expected runs/<sweep>)")
    spec = load_spec(sweep_dir / SPEC_FILE)
    # A band needs the data to know its cells; a plain grid is known from the spec alone.
    return spec.name, plan_trials(spec) if spec.band else expand(spec)
