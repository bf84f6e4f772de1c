"""Bootstrap over runs: a family's trials as design points, resampled into a batch of data sets.

A design point is one (size, budget) of a family, at the setting chosen for it on validation
(analysis.selection); that setting's seed replicates are the runs. Each run is a pair: the error
that selects (validation) and the error that is fitted (test), resampled together. Where some
point has replicates, each resample redraws the replicates within every point (the budgets and
sizes are the experimenter's choice, the seed is the noise). Where no point has replicates, each
resample redraws the trials themselves (a case bootstrap), expressed as weights: a multiplicity
per point. The best size per budget is chosen again in every data set, on its selecting means, so
the intervals carry the noise of that choice. Row 0 of every batch is the data as measured.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from scaling.errors import GrscaleError

if TYPE_CHECKING:  # `grscale --help` imports this module's defaults: keep pandas out of it
    import pandas as pd

DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.9


@dataclass(frozen=True)
class Interval:
    """A percentile bootstrap interval."""

    low: float
    high: float
    level: float

    def contains(self, value: float) -> bool:
        return bool(self.low <= value <= self.high)


@dataclass(frozen=True)
class Points:
    """A family's chosen trials grouped by (size, budget): per point, the seeds' fitted errors
    (replicates) and, in the same order, the errors that select between points (selection)."""

    family: str
    size: np.ndarray
    budget: np.ndarray
    setting: np.ndarray
    n_params: np.ndarray
    tokens: np.ndarray
    replicates: tuple[np.ndarray, ...]
    selection: tuple[np.ndarray, ...]

    @property
    def has_replicates(self) -> bool:
        return any(len(r) > 1 for r in self.replicates)


@dataclass(frozen=True)
class Batch:
    """Resampled data sets: fitted values, selecting values and weights (1 + n_resamples, n_points);
    row 0 as measured."""

    values: np.ndarray
    selection: np.ndarray
    weights: np.ndarray
    scheme: str


def family_points(trials: pd.DataFrame, family: str) -> Points:
    """Design points of one family's usable trials of the chosen settings; refuses a family with none."""
    mine = trials[trials["family"] == family]
    if mine.empty:
        raise GrscaleError(f"no trials of family {family!r} in the table")
    usable = mine[mine["usable"] & mine["chosen"]]
    if usable.empty:
        raise GrscaleError(
            f"all {len(mine)} runs of family {family!r} diverged, failed or lack the metric; "
            "nothing to fit (see the trials table for their reasons)"
        )
    groups = usable.groupby(["size", "budget"], sort=True)
    keys = list(groups.groups)
    return Points(
        family=family,
        size=np.array([k[0] for k in keys], dtype=object),
        budget=np.array([k[1] for k in keys], dtype=float),
        setting=groups["setting"].first().to_numpy(dtype=object),
        n_params=groups["params_nonembedding"].mean().to_numpy(dtype=float),
        tokens=groups["tokens"].mean().to_numpy(dtype=float),
        replicates=tuple(g["loss"].to_numpy(dtype=float) for _, g in groups),
        selection=tuple(g["selection_loss"].to_numpy(dtype=float) for _, g in groups),
    )


def resample(points: Points, n_resamples: int, rng: np.random.Generator) -> Batch:
    """The measured data (row 0) followed by `n_resamples` bootstrap data sets."""
    n = len(points.replicates)
    values = np.empty((n_resamples + 1, n))
    selection = np.empty((n_resamples + 1, n))
    weights = np.ones((n_resamples + 1, n))
    for j, (reps, sel) in enumerate(zip(points.replicates, points.selection)):
        k = len(reps)
        draws = rng.integers(0, k, size=(n_resamples, k))  # one draw of seeds for both members of each pair
        values[:, j] = _resampled_means(reps, draws)
        selection[:, j] = _resampled_means(sel, draws)
    if points.has_replicates:
        return Batch(values, selection, weights, "seeds resampled within each (size, budget) point")
    weights[1:] = rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples)
    return Batch(values, selection, weights, "trials resampled with replacement (no seed replicates)")


def _resampled_means(reps: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """The mean as measured, then the mean of each draw of seeds."""
    k = len(reps)
    mean = reps.mean()
    # Resampled means vary by (k-1)/k of the true variance: widen them by sqrt(k/(k-1)),
    # which matters with the 2 to 5 seeds sweeps can afford.
    inflate = np.sqrt(k / (k - 1)) if k > 1 else 0.0
    return np.concatenate([[mean], mean + inflate * (reps[draws].mean(axis=1) - mean)])


def best_per_budget(points: Points, batch: Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per budget, the drawn point with the lowest selecting error in each data set, and its fitted value.

    Returns budgets (nb,), values and weights (rows, nb) and the chosen point index
    (rows, nb); a budget none of whose points were drawn gets weight 0.
    """
    budgets = np.unique(points.budget)
    rows = batch.values.shape[0]
    values = np.zeros((rows, len(budgets)))
    weights = np.zeros((rows, len(budgets)))
    chosen = np.zeros((rows, len(budgets)), dtype=int)
    worst = np.finfo(float).max  # a point without a selecting value ranks after every other drawn point
    for i, c in enumerate(budgets):
        idx = np.flatnonzero(points.budget == c)
        drawn = batch.weights[:, idx] > 0
        key = np.where(drawn, np.nan_to_num(batch.selection[:, idx], nan=worst, posinf=worst), np.inf)
        pick = key.argmin(axis=1)[:, None]
        chosen[:, i] = idx[pick[:, 0]]
        values[:, i] = np.take_along_axis(batch.values[:, idx], pick, axis=1)[:, 0]
        weights[:, i] = np.take_along_axis(batch.weights[:, idx], pick, axis=1)[:, 0]
    values[weights == 0] = 1.0  # any positive placeholder: a zero weight removes it from fits
    return budgets, values, weights, chosen


def percentile_interval(samples: np.ndarray, level: float = DEFAULT_LEVEL) -> Interval:
    """Percentile interval of the finite bootstrap samples (NaN marks a failed resample)."""
    finite = samples[~np.isnan(samples)]
    if finite.size == 0:
        return Interval(float("nan"), float("nan"), level)
    # inverted_cdf picks order statistics, so infinite samples (never reached) stay meaningful.
    low, high = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    return Interval(float(low), float(high), level)
