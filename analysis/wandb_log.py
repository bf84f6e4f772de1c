"""The report's figures, tables and headline numbers as one W&B summary run per sweep."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from analysis.study import StudyResult


def summary(result: StudyResult) -> dict[str, float | str | bool]:
    """Headline numbers, flat, for the run summary."""
    out: dict[str, float | str | bool] = {"metric": result.metric.name, "fitted": result.metric.fitted,
                                          "select_on": result.selection.select_on}
    for family, fit in result.fits.items():
        interval = fit.exponent_interval("saturating")
        out |= {f"{family}/alpha": fit.saturating.alpha, f"{family}/alpha_low": interval.low,
                f"{family}/alpha_high": interval.high, f"{family}/E": fit.saturating.E,
                f"{family}/preferred_by_aic": fit.preferred_by_aic}
        if fit.extrapolation is not None:
            out[f"{family}/extrapolation_rel_error"] = fit.extrapolation.relative_error
    for family, iso in result.isoflop.items():
        out[f"{family}/frontier_exponent"] = iso.frontier.exponent
    cmp = result.comparison
    if cmp is not None:
        out |= {"comparison/crossover": cmp.crossover.summary, "comparison/plateau": cmp.plateau.includes_zero,
                "comparison/plateau_top_slope": cmp.plateau.top_slope,
                "comparison/multiplier_at_top": cmp.multipliers[-1].multiplier}
    return out


def log_report(
    result: StudyResult, figure_paths: dict[str, Path], report_tables: dict[str, pd.DataFrame], project: str, out_dir: Path
) -> Path:
    """Log to W&B (mode from WANDB_MODE, offline by default); returns the run's local directory."""
    import wandb

    run = wandb.init(
        project=project,
        group=result.sweep,
        job_type="report",
        name=f"{result.sweep}-report",
        mode=os.environ.get("WANDB_MODE", "offline"),
        dir=os.environ.get("WANDB_DIR", str(out_dir)),
        config={"metric": result.metric.name, "n_resamples": result.n_resamples, "level": result.level, "seed": result.seed},
        settings=wandb.Settings(silent=True, console="off"),
    )
    try:
        run.log({f"figures/{name[:-4]}": wandb.Image(str(path)) for name, path in figure_paths.items() if name.endswith(".png")})
        run.log({f"tables/{name}": wandb.Table(dataframe=frame) for name, frame in report_tables.items()})
        run.summary.update(summary(result))
        return Path(run.dir).parent
    finally:
        run.finish()
