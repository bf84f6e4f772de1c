"""Bootstrap over runs: a family's trials as points, resampled into a batch of data sets.

Every trial is its own point, at its own achieved FLOPs, tokens and parameters: a table whose
runs overshoot their budgets by different amounts, or whose budgets were rounded, is fitted as
the runs it holds. Trials of one (size, budget) cell, at the setting chosen for it on validation
(analysis.selection), are seed replicates: they are grouped to choose the best size per budget
and to estimate the noise. Each trial is a pair: the error that selects (validation) and the
error that is fitted (test), resampled together.

Where some cell has replicates, each resample redraws every trial's error as its cell's mean
plus a within-cell residual drawn from those pooled over the family (a residual bootstrap, in
log space, validation and test residuals drawn as a pair). Pooling matters with the 2 to 5 seeds
sweeps afford: resampling 2 seeds within their own cell gives 3 possible means and intervals
that cover about 85% where they claim 90%. The residuals are widened by Student's t for the
few degrees of freedom the noise is estimated from, the robust fits put Huber's threshold at
1.345 noise spreads, and the saturating law, not linear in its parameters, has its resamples
centred on its own fit rather than on the cell means (centred_on_curve, used by
analysis.family): together the nominal 90% intervals cover 90-93% in simulation with 2 seeds
(benchmarks/fit_coverage.md). It assumes relative noise of one size across cells. Where no
cell has replicates, each resample redraws the trials themselves (a case bootstrap), expressed
as weights: a multiplicity per trial. The best size
per budget is chosen again in every data set, on its selecting means, so the intervals carry
the noise of that choice. Row 0 of every batch is the data as measured.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from analysis.optimize import HUBER_DELTA, HUBER_K
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
    """A family's chosen trials: per cell (size, budget) its coordinates, per trial its own
    coordinates, its fitted error and, in the same order, the error that selects between cells."""

    family: str
    size: np.ndarray  # per cell
    budget: np.ndarray  # per cell: the nominal budget, which groups trials
    setting: np.ndarray  # per cell
    cell: np.ndarray  # per trial: index of its cell
    flops: np.ndarray  # per trial: achieved training FLOPs
    tokens: np.ndarray  # per trial
    n_params: np.ndarray  # per trial: non-embedding parameters
    epochs: np.ndarray  # per trial: passes over the training data (NaN where not recorded)
    loss: np.ndarray  # per trial: the fitted error
    selection: np.ndarray  # per trial: the selecting error

    @property
    def n_cells(self) -> int:
        return len(self.size)

    @property
    def has_replicates(self) -> bool:
        return bool(np.bincount(self.cell, minlength=self.n_cells).max() > 1)

    @property
    def membership(self) -> np.ndarray:
        """(n_trials, n_cells) one-hot: which cell each trial belongs to."""
        return (self.cell[:, None] == np.arange(self.n_cells)[None, :]).astype(float)

    def cell_means(self, values: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Weighted mean of per-trial values (rows, n_trials) in each cell: (rows, n_cells), NaN for an undrawn cell."""
        m = self.membership
        with np.errstate(invalid="ignore", divide="ignore"):
            return (np.where(weights > 0, weights * values, 0.0) @ m) / (weights @ m)

    def cell_weights(self, weights: np.ndarray) -> np.ndarray:
        """Total multiplicity of each cell's trials: (rows, n_cells)."""
        return weights @ self.membership

    @property
    def cell_n_params(self) -> np.ndarray:
        return self.cell_means(self.n_params[None], np.ones((1, len(self.cell))))[0]


@dataclass(frozen=True)
class Batch:
    """Resampled data sets: per trial the fitted values, selecting values and weights
    (1 + n_resamples, n_trials); row 0 as measured. `huber_delta`: the threshold the robust fits
    use on these data (see huber_delta)."""

    values: np.ndarray
    selection: np.ndarray
    weights: np.ndarray
    scheme: str
    huber_delta: float = HUBER_DELTA
    centres: np.ndarray | None = None  # per trial: the log value its resamples are centred on (residual bootstrap)


@dataclass(frozen=True)
class BestPerBudget:
    """Per budget and data set, the cell with the best selecting mean and what enters the fits."""

    budgets: np.ndarray  # (nb,) nominal budgets
    chosen: np.ndarray  # (rows, nb) the chosen cell
    values: np.ndarray  # (rows, nb) the chosen cell's mean fitted value (1.0 where no cell was drawn)
    selection: np.ndarray  # (rows, nb) the chosen cell's mean selecting value, which chose it
    weights: np.ndarray  # (rows, n_trials): the batch's weights on chosen cells' trials, 0 elsewhere
    drawn: np.ndarray  # (rows, nb) whether the budget has a drawn cell


def family_points(trials: pd.DataFrame, family: str) -> Points:
    """The points of one family's usable trials of the chosen settings; refuses a family with none."""
    mine = trials[trials["family"] == family]
    if mine.empty:
        raise GrscaleError(f"no trials of family {family!r} in the table")
    usable = mine[mine["usable"] & mine["chosen"]]
    if usable.empty:
        raise GrscaleError(
            f"all {len(mine)} runs of family {family!r} diverged, failed or lack the metric; "
            "nothing to fit (see the trials table for their reasons)"
        )
    usable = usable.sort_values(["size", "budget", "seed"], kind="stable")
    cells = usable.groupby(["size", "budget"], sort=True)
    keys = list(cells.groups)
    cell = cells.ngroup().to_numpy()
    flops = usable["flops"].to_numpy(dtype=float)
    # A row without achieved FLOPs (a table from elsewhere) stands at its nominal budget.
    flops = np.where(np.isfinite(flops) & (flops > 0), flops, usable["budget"].to_numpy(dtype=float))
    epochs = usable["epochs"].to_numpy(dtype=float) if "epochs" in usable else np.full(len(usable), np.nan)
    return Points(
        family=family,
        size=np.array([k[0] for k in keys], dtype=object),
        budget=np.array([k[1] for k in keys], dtype=float),
        setting=cells["setting"].first().to_numpy(dtype=object),
        cell=cell,
        flops=flops,
        tokens=usable["tokens"].to_numpy(dtype=float),
        n_params=usable["params_nonembedding"].to_numpy(dtype=float),
        epochs=epochs,
        loss=usable["loss"].to_numpy(dtype=float),
        selection=usable["selection_loss"].to_numpy(dtype=float),
    )


def as_measured(points: Points) -> Batch:
    """The data as measured, alone: row 0 of every resampled batch."""
    ones = np.ones((1, len(points.cell)))
    return Batch(points.loss[None].copy(), points.selection[None].copy(), ones, "as measured", huber_delta(points))


def resample(points: Points, n_resamples: int, rng: np.random.Generator, level: float = DEFAULT_LEVEL) -> Batch:
    """The measured data (row 0) followed by `n_resamples` bootstrap data sets, for intervals at `level`."""
    n = len(points.cell)
    weights = np.ones((n_resamples + 1, n))
    if not points.has_replicates:
        values = np.broadcast_to(points.loss, weights.shape).copy()
        selection = np.broadcast_to(points.selection, weights.shape).copy()
        weights[1:] = rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples)
        return Batch(values, selection, weights, "trials resampled with replacement (no seed replicates)", HUBER_DELTA)
    log_value, value_resid = _cell_residuals(points, points.loss)
    log_selection, selection_resid = _cell_residuals(points, points.selection)
    # Pairs whose test residual is known; a missing validation residual stays missing.
    pool = np.flatnonzero(np.isfinite(value_resid))
    dof = residual_dof(points)
    widen = small_sample_widening(dof, level)
    draws = pool[rng.integers(0, len(pool), size=(n_resamples, n))]
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.vstack([points.loss, np.exp(log_value[None, :] + widen * value_resid[draws])])
        selection = np.vstack([points.selection, np.exp(log_selection[None, :] + widen * selection_resid[draws])])
    replicated = int((np.bincount(points.cell) > 1).sum())
    scheme = (f"residual bootstrap: each trial redrawn as its cell's mean (for the saturating law, its fit to the "
              f"measured data) plus a within-cell residual pooled over "
              f"{replicated} replicated (size, budget) cells ({len(pool)} residuals, validation and test in pairs), "
              f"widened {widen:.3f}x for the {dof} degrees of freedom the noise is estimated from")
    return Batch(values, selection, weights, scheme, huber_delta(points), centres=log_value)


def centred_on_curve(batch: Batch, log_curve: np.ndarray, trials: np.ndarray) -> np.ndarray:
    """The batch's fitted values with the resamples (rows 1..) of the masked `trials` moved from
    their cell's mean onto `log_curve` (per trial, the log value a fitted law predicts): a
    model-based residual bootstrap. Values unchanged where the batch has no centres (a case
    bootstrap redraws the trials themselves)."""
    if batch.centres is None:
        return batch.values
    shift = np.where(trials & np.isfinite(log_curve) & np.isfinite(batch.centres), log_curve - batch.centres, 0.0)
    values = batch.values.copy()
    with np.errstate(over="ignore"):
        values[1:] *= np.exp(shift)[None, :]
    return values


def noise_scale(points: Points) -> float:
    """The spread of one trial's log error about its cell's mean, pooled over replicated cells
    (NaN without replicates)."""
    _, resid = _cell_residuals(points, points.loss)
    resid = resid[np.isfinite(resid)]
    return float(np.sqrt(np.mean(resid**2))) if resid.size else float("nan")


def huber_delta(points: Points) -> float:
    """Huber's threshold for fits to these points: HUBER_K noise spreads where seed replicates
    measure the noise, Chinchilla's HUBER_DELTA where they do not (or the replicates agree exactly)."""
    scale = noise_scale(points)
    return HUBER_K * scale if np.isfinite(scale) and scale > 0 else HUBER_DELTA


def residual_dof(points: Points) -> int:
    """Degrees of freedom of the pooled noise estimate: each cell's replicates less its mean."""
    _, resid = _cell_residuals(points, points.loss)
    counts = np.bincount(points.cell[np.isfinite(resid)], minlength=points.n_cells)
    return int(np.maximum(counts - 1, 0).sum())


def small_sample_widening(dof: int, level: float) -> float:
    """How much wider a `level` interval is when the noise's spread is estimated from `dof` degrees
    of freedom than when it is known: Student's t quantile over the normal one. With 2 seeds at 8
    budgets (8 degrees of freedom) percentile intervals from unwidened residuals cover about 87%
    where they claim 90% on a straight-line law, as Student predicts (benchmarks/fit_coverage.md)."""
    from scipy import stats  # imported here: `grscale --help` imports this module

    q = (1 + level) / 2
    return float(stats.t.ppf(q, dof) / stats.norm.ppf(q)) if dof > 0 else 1.0


def _cell_residuals(points: Points, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per trial: its cell's mean log value, and its residual from it scaled to the noise's own
    spread (a residual from the mean of k varies by (k-1)/k of it); NaN in cells of one trial."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(values > 0, np.log(np.where(values > 0, values, 1.0)), np.nan)
    counts = np.bincount(points.cell, minlength=points.n_cells).astype(float)
    m = points.membership
    with np.errstate(invalid="ignore"):
        means = (np.nan_to_num(logs) @ m) / (np.isfinite(logs) @ m)
        finite_means = np.where((np.isfinite(logs) @ m) == counts, means, np.nan)  # a cell missing a value has no mean
    own = finite_means[points.cell]
    k = counts[points.cell]
    with np.errstate(invalid="ignore", divide="ignore"):
        resid = np.where(k > 1, (logs - own) * np.sqrt(k / np.maximum(k - 1, 1)), np.nan)
    return own, resid


def best_per_budget(points: Points, batch: Batch) -> BestPerBudget:
    """Per budget, the drawn cell with the lowest mean selecting error in each data set; only its
    trials keep their weights. A budget none of whose cells were drawn has no point in that set."""
    budgets = np.unique(points.budget)
    cell_weights = points.cell_weights(batch.weights)
    selecting = points.cell_means(batch.selection, batch.weights)
    fitted = points.cell_means(batch.values, batch.weights)
    rows = batch.values.shape[0]
    chosen = np.zeros((rows, len(budgets)), dtype=int)
    values = np.ones((rows, len(budgets)))
    chosen_selection = np.full((rows, len(budgets)), np.nan)
    drawn = np.zeros((rows, len(budgets)), dtype=bool)
    keep = np.zeros((rows, points.n_cells), dtype=bool)
    worst = np.finfo(float).max  # a cell without a selecting value ranks after every other drawn cell
    for i, c in enumerate(budgets):
        idx = np.flatnonzero(points.budget == c)
        present = cell_weights[:, idx] > 0
        key = np.where(present, np.nan_to_num(selecting[:, idx], nan=worst, posinf=worst), np.inf)
        pick = key.argmin(axis=1)
        chosen[:, i] = idx[pick]
        drawn[:, i] = present.any(axis=1)
        values[:, i] = np.where(drawn[:, i], fitted[np.arange(rows), idx[pick]], 1.0)
        chosen_selection[:, i] = selecting[np.arange(rows), idx[pick]]
        keep[np.arange(rows), idx[pick]] = drawn[:, i]
    weights = np.where(keep[:, points.cell], batch.weights, 0.0)
    return BestPerBudget(budgets, chosen, values, chosen_selection, weights, drawn)


def percentile_interval(samples: np.ndarray, level: float = DEFAULT_LEVEL) -> Interval:
    """Percentile interval of the finite bootstrap samples (NaN marks a failed resample)."""
    finite = samples[~np.isnan(samples)]
    if finite.size == 0:
        return Interval(float("nan"), float("nan"), level)
    # inverted_cdf picks order statistics, so infinite samples (never reached) stay meaningful.
    low, high = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    return Interval(float(low), float(high), level)
