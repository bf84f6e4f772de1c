"""The report as one W&B run per sweep: figures, tables, headline numbers, and the fitted laws as
line series (points, fitted curve and interval band per family, against `scaling/flops`), so the
sweep's dashboard (sweeps/dashboard.py) charts them live. The run links to that dashboard.

The key names here are what the dashboard's scaling section plots; this module imports no
pandas nor the fits at load, so the dashboard can read them cheaply.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaling.schema import DASHBOARD_FILE

if TYPE_CHECKING:
    import pandas as pd

    from analysis.study import StudyResult

SCALING_X = "scaling/flops"  # the laws' x-axis: training FLOPs
LAW_SERIES = ("measured", "fit", "low", "high")  # best point per budget, saturating law, its band


def law_key(family: str, series: str) -> str:
    """The history key of one family's series, e.g. `scaling/hstu/fit`."""
    return f"scaling/{family}/{series}"


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


def law_history(curves: pd.DataFrame, points: pd.DataFrame) -> list[dict[str, float]]:
    """History rows, ascending in FLOPs, each one x (`scaling/flops`) and the series that have a value
    there: the measured points and, on each family's grid, its fitted curve and band."""
    rows: list[tuple[float, dict[str, float]]] = []
    for p in points.itertuples(index=False):
        rows.append((float(p.flops), {law_key(p.family, "measured"): float(p.loss)}))
    for c in curves.itertuples(index=False):
        values = {"fit": c.saturating, "low": c.low, "high": c.high}
        rows.append((float(c.flops), {law_key(c.family, k): float(v) for k, v in values.items() if math.isfinite(v)}))
    rows.sort(key=lambda row: row[0])
    return [{SCALING_X: x, **values} for x, values in rows]


def dashboard_link(sweep_dir: Path) -> str | None:
    """The sweep's W&B workspace: its URL once saved, else the path of its spec (`grscale dashboard`)."""
    path = Path(sweep_dir) / DASHBOARD_FILE
    if not path.exists():
        return None
    try:
        url = json.loads(path.read_text()).get("url")
    except (OSError, ValueError, AttributeError):
        return str(path)
    return url or str(path)


def log_report(
    result: StudyResult, figure_paths: dict[str, Path], report_tables: dict[str, pd.DataFrame], project: str,
    out_dir: Path, dashboard: str | None = None,
) -> Path:
    """Log to W&B (mode from WANDB_MODE, offline by default); returns the run's local directory."""
    import wandb

    from analysis.tables import law_curves, law_points

    config: dict[str, Any] = {"metric": result.metric.name, "n_resamples": result.n_resamples,
                              "level": result.level, "seed": result.seed, "dashboard": dashboard}
    run = wandb.init(
        project=project,
        group=result.sweep,
        job_type="report",
        name=f"{result.sweep}-report",
        mode=os.environ.get("WANDB_MODE", "offline"),
        dir=os.environ.get("WANDB_DIR", str(out_dir)),
        config=config,
        notes=f"dashboard: {dashboard}" if dashboard else None,
        settings=wandb.Settings(silent=True, console="off"),
    )
    try:
        run.log({f"figures/{name[:-4]}": wandb.Image(str(path)) for name, path in figure_paths.items() if name.endswith(".png")})
        curves, points = law_curves(result), law_points(result)
        tables = {**report_tables, "law_curves": curves, "law_points": points}
        run.log({f"tables/{name}": wandb.Table(dataframe=frame) for name, frame in tables.items()})
        run.define_metric(SCALING_X)
        run.define_metric("scaling/*", step_metric=SCALING_X)
        for row in law_history(curves, points):
            run.log(row)
        run.summary.update(summary(result) | ({"dashboard": dashboard} if dashboard else {}))
        return Path(run.dir).parent
    finally:
        run.finish()
