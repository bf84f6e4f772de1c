"""Repeated data is worth less than fresh past about 4 epochs (Muennighoff et al. 2023,
"Scaling data-constrained language models"): the data-constrained law

    L(N, D') = E + A / N^alpha + B / D'^beta,   D' = U + U R* (1 - exp(-R / R*)),

with U the unique training examples a trial saw (tokens / epochs), R = epochs - 1 its
repetitions and R* the number of repetitions at which repeated data has lost most of its
value. R* is fitted by profiling: the L(N, D') fit is made at every value of R_STAR_GRID and,
in every data set, the best is kept, so R*'s interval comes from the same bootstrap as the rest.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.bootstrap import Batch, Interval, Points, percentile_interval
from analysis.determinacy import Judged, bounds, judged_at_the_data, undetermined_reasons
from analysis.isoflop import (
    MIN_PARAMETRIC_POINTS, PARAMETRIC_COARSE, PARAMETRIC_NAMES, ParametricLaw, check_parametric_design,
    fit_law_of_n_and_d, parametric_amplitudes,
)
from scaling.errors import GrscaleError

EPOCH_LIMIT = 4.0
R_STAR_GRID = np.geomspace(0.5, 100.0, 9)


@dataclass(frozen=True)
class DataConstrainedFit:
    family: str
    law: ParametricLaw  # in effective data D'
    r_star: float
    r_star_interval: Interval
    intervals: dict[str, Interval]
    undetermined: tuple[str, ...]
    n_past_limit: int  # trials past EPOCH_LIMIT epochs
    n_valid: int


def effective_tokens(tokens: np.ndarray, epochs: np.ndarray, r_star: float) -> np.ndarray:
    """D': the tokens a trial saw, with repetitions beyond the first pass discounted."""
    passes = np.maximum(epochs, 1.0)
    unique = tokens / passes
    return unique + unique * r_star * (1.0 - np.exp(-(passes - 1.0) / r_star))


def fit_data_constrained(points: Points, batch: Batch, level: float) -> DataConstrainedFit:
    """The data-constrained law, where the family has trials on both sides of EPOCH_LIMIT."""
    epochs = points.epochs
    missing = int((~np.isfinite(epochs)).sum())
    if missing:
        raise GrscaleError(f"the data-constrained law needs each trial's epochs; {missing} trials of family "
                           f"{points.family!r} have none recorded")
    past = int((epochs > EPOCH_LIMIT).sum())
    if past == 0 or past == len(epochs):
        raise GrscaleError(f"the data-constrained law needs trials on both sides of {EPOCH_LIMIT:g} epochs; family "
                           f"{points.family!r} has {past} of {len(epochs)} past it")
    check_parametric_design(points, "the data-constrained law")
    log_q, w = np.log(batch.values), batch.weights
    rows = np.arange(len(log_q))
    log_n = np.log(points.n_params)
    fits, losses = zip(*(fit_law_of_n_and_d(log_n, np.log(effective_tokens(points.tokens, epochs, r_star)), log_q, w,
                                            PARAMETRIC_COARSE, batch.huber_delta) for r_star in R_STAR_GRID))
    pick = np.argmin(np.array(losses), axis=0)  # per data set, the best R*
    params = np.array(fits)[pick, rows]
    r_star = R_STAR_GRID[pick].astype(float)
    valid = (points.cell_weights(w)[1:] > 0).sum(axis=1) >= MIN_PARAMETRIC_POINTS
    samples = np.where(valid[:, None], params[1:], np.nan)
    intervals = {name: percentile_interval(samples[:, j], level) for j, name in enumerate(PARAMETRIC_NAMES)}
    r_interval = percentile_interval(np.where(valid, r_star[1:], np.nan), level)
    centre = np.array([log_n.mean(), np.log(points.tokens).mean()])
    estimates = judged_at_the_data(PARAMETRIC_NAMES, params[0], samples, intervals, parametric_amplitudes(centre))
    estimates["R*"] = Judged(float(r_star[0]), r_interval)
    limits = bounds(PARAMETRIC_NAMES, float(points.loss.min()))
    limits["R*"] = (R_STAR_GRID[0], R_STAR_GRID[-1], f"the edge of its grid {R_STAR_GRID[0]:g} to {R_STAR_GRID[-1]:g}")
    # R* at a grid end is caught by its limits; its interval's width in decades says little on a grid.
    undetermined = undetermined_reasons(estimates, PARAMETRIC_NAMES, limits)
    return DataConstrainedFit(points.family, ParametricLaw(*(float(v) for v in params[0])), float(r_star[0]),
                              r_interval, intervals, undetermined, past, int(valid.sum()))
