"""Results tables generated from known laws, shaped like what a sweep writes."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from scaling.schema import higher_is_better, validation_column

RETRIEVAL_METRICS = ("hr@1", "hr@10", "hr@50", "hr@200", "ndcg@10", "ndcg@50", "ndcg@200", "mrr", "nll")

# quality(N, D, C) -> the true value of the fitted error before noise.
Quality = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def saturating(E: float, A: float, alpha: float) -> Quality:
    return lambda n, d, c: E + A * c**-alpha


def chinchilla(E: float, A: float, alpha: float, B: float, beta: float) -> Quality:
    return lambda n, d, c: E + A * n**-alpha + B * d**-beta


def results_table(
    quality: Quality,
    *,
    family: str,
    sizes: dict[str, float],
    budgets: np.ndarray,
    seeds: int = 1,
    noise: float = 0.0,
    rng: np.random.Generator | None = None,
    sweep: str = "synthetic",
    metric: str = "test/nll",
    validation: Quality | None = None,
    setting: dict[str, object] | None = None,
    columns: dict[str, object] | None = None,
) -> pd.DataFrame:
    """A val row at half budget and a final row per trial; quality has lognormal noise.

    The metric's validation counterpart is `validation` (default: `quality`) at the final row,
    which is the trial's best step, and 1.1 times that error at the val row; each trial's noise
    multiplies both its test and validation errors. `setting` (e.g. {"peak_lr": 3e-3}) adds
    setting columns and names the trials after them; `columns` adds any other column (split,
    select_on) to every row.
    """
    rng = rng or np.random.default_rng(0)
    validation = validation or quality
    setting, columns = setting or {}, columns or {}
    as_metric = (lambda error: 1.0 - error) if higher_is_better(metric) else (lambda error: error)
    suffix = "".join(f"-{k}{v}" for k, v in setting.items())
    rows = []
    for size, n in sizes.items():
        for c in budgets:
            for seed in range(seeds):
                tokens = c / (6.0 * n)
                point = (np.float64(n), np.float64(tokens), np.float64(c))
                factor = np.exp(noise * rng.normal())
                value, val_value = float(quality(*point)) * factor, float(validation(*point)) * factor
                base = dict(
                    sweep=sweep, trial_id=f"{size}-C{c:.0e}-seed{seed}{suffix}", family=family, size=size,
                    task="retrieval", dataset="synthetic", seed=seed, budget=float(c), params_embedding=10**6,
                    params_nonembedding=int(n), status="done", error=None, wall_s=1.0, **setting, **columns,
                )
                for kind, frac in (("val", 0.5), ("final", 1.0)):
                    row = dict(base, flops=c * frac, executed_flops=c * frac * 1.2, tokens=int(tokens * frac),
                               step=int(100 * frac), eval_kind=kind, **{f"val/{m}": np.nan for m in RETRIEVAL_METRICS})
                    row[validation_column(metric)] = as_metric(val_value * (1.1 if kind == "val" else 1.0))
                    if kind == "final":
                        row.update({f"test/{m}": 0.1 for m in RETRIEVAL_METRICS})
                        row[metric] = as_metric(value)
                        row["best_step"] = row["step"]
                    rows.append(row)
    return pd.DataFrame(rows)


def failed_trial(family: str, status: str, reason: str, budget: float = 1e14, sweep: str = "synthetic") -> pd.DataFrame:
    """A trial that ended early: one final row with NaN metrics and its reason."""
    row = dict(
        sweep=sweep, trial_id=f"{family}-bad-C{budget:.0e}-{status}", family=family, size=f"{family}-bad",
        task="retrieval", dataset="synthetic", seed=0, budget=budget, flops=budget / 10, executed_flops=budget / 10,
        tokens=1000, params_embedding=10**6, params_nonembedding=10**6, step=3, wall_s=1.0, status=status,
        error=reason, eval_kind="final", **{f"test/{m}": np.nan for m in RETRIEVAL_METRICS},
    )
    return pd.DataFrame([row])
