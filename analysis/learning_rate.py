"""The learning rate per size: each cell's validation error against the rates it tried, and the
optimal rate fitted against size, lr*(N) = a N^-b (Porian et al. 2024: a rate left untuned per
size biases the exponents of a scaling law).

A cell's profile is the line of settings that differ from its chosen one only in learning rate;
each rate's error is the mean over its seeds of the selecting (validation) error, and a rate
whose every trial diverged counts as infinitely bad (it bounds the search as well as one that
ran). The cell's optimum is the vertex of the parabola in log rate through the best rate and its
two neighbours, where the best is interior; at a grid edge the optimum is not located and the
cell does not enter the fit. The fit is least squares of log lr* on log N over the cells, with a
percentile interval from resampling the cells.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.bootstrap import Interval, percentile_interval
from analysis.powerlaw import weighted_line
from analysis.selection import CELL, rate_line
from scaling.errors import GrscaleError

MIN_RATES = 3  # a parabola through the best rate needs a neighbour on each side


@dataclass(frozen=True)
class RateProfile:
    """One (family, size, budget) cell's validation error at each learning rate it tried."""

    family: str
    size: str
    budget: float
    n_params: float
    rates: tuple[float, ...]  # ascending
    errors: tuple[float, ...]  # mean selecting error per rate; inf where every trial diverged
    best: float  # the rate with the lowest error
    at_edge: bool  # the best rate is the smallest or largest tried
    optimum: float  # the parabola's vertex; NaN at an edge or with fewer than MIN_RATES rates


@dataclass(frozen=True)
class RateLaw:
    """lr*(N) = a N^-b fitted to a family's located optima."""

    family: str
    a: float
    b: float
    a_interval: Interval
    b_interval: Interval
    n_cells: int
    n_sizes: int
    n_resamples: int


def rate_profiles(trials: pd.DataFrame) -> tuple[RateProfile, ...]:
    """Every cell that tried at least two learning rates, from a trials table whose settings were
    chosen (analysis.selection.choose_settings)."""
    if "peak_lr" not in trials or not trials["chosen"].any():
        return ()
    profiles = []
    for key, cell in trials.groupby(CELL, sort=True):
        chosen = cell[cell["chosen"]]
        if chosen.empty:
            continue
        line = rate_line(cell, chosen["setting"].iloc[0])
        rates = np.sort(np.unique(pd.to_numeric(line["peak_lr"], errors="coerce").dropna()))
        if len(rates) < 2:
            continue
        errors = np.array([_rate_error(line[line["peak_lr"].astype(float) == r]) for r in rates])
        i = int(np.argmin(np.where(np.isfinite(errors), errors, np.inf)))
        at_edge = i in (0, len(rates) - 1)
        optimum = np.nan if at_edge or len(rates) < MIN_RATES else _vertex(np.log(rates[i - 1:i + 2]), errors[i - 1:i + 2])
        profiles.append(RateProfile(
            family=str(key[0]), size=str(key[1]), budget=float(key[2]),
            n_params=float(chosen["params_nonembedding"].iloc[0]), rates=tuple(float(r) for r in rates),
            errors=tuple(float(e) for e in errors), best=float(rates[i]), at_edge=at_edge, optimum=float(optimum),
        ))
    return tuple(profiles)


def fit_rate_law(profiles: tuple[RateProfile, ...], family: str, n_resamples: int, rng: np.random.Generator,
                 level: float) -> RateLaw:
    """Least squares of log lr* on log N over the family's located optima; refuses where fewer than
    two sizes have one."""
    mine = [p for p in profiles if p.family == family and np.isfinite(p.optimum)]
    sizes = {p.size for p in mine}
    if len(sizes) < 2:
        edges = sum(p.at_edge for p in profiles if p.family == family)
        raise GrscaleError(
            f"lr*(N) for family {family!r} needs a located optimum (a best rate inside a grid of at least "
            f"{MIN_RATES}) at 2 sizes or more; it has {len(sizes)} ({edges} cells whose best rate is at the grid's "
            "edge: widen the grid there)"
        )
    log_n = np.log([p.n_params for p in mine])
    log_lr = np.log([p.optimum for p in mine])
    n = len(mine)
    weights = np.vstack([np.ones(n), rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples)])
    with np.errstate(invalid="ignore", divide="ignore"):  # a resample of one size has no slope: NaN
        intercept, slope = weighted_line(log_n, np.broadcast_to(log_lr, weights.shape), weights)
    spread = np.array([np.ptp(log_n[w > 0]) for w in weights])
    slope = np.where(spread > 0, slope, np.nan)
    return RateLaw(
        family=family, a=float(np.exp(intercept[0])), b=float(-slope[0]),
        a_interval=percentile_interval(np.exp(intercept[1:]), level),
        b_interval=percentile_interval(-slope[1:], level), n_cells=n, n_sizes=len(sizes), n_resamples=n_resamples,
    )


def _rate_error(trials: pd.DataFrame) -> float:
    """Mean selecting error over a rate's usable seeds; inf where none ran to a value."""
    values = trials.loc[trials["usable"], "selection_loss"].dropna()
    return float(values.mean()) if len(values) else np.inf


def _vertex(u: np.ndarray, e: np.ndarray) -> float:
    """exp of the vertex of the parabola through three (log rate, error) points, the middle one lowest."""
    if not np.isfinite(e).all():
        return np.nan  # a diverged neighbour: the bowl's shape on that side is unknown
    coeffs = np.polyfit(u, e, 2)
    return float(np.exp(-coeffs[1] / (2 * coeffs[0]))) if coeffs[0] > 0 else np.nan
