"""Several sizes per budget: IsoFLOP profiles and their frontier N*(C) (Chinchilla approach 2),
and the parametric L(N, D) = E + A / N^alpha + B / D^beta (approach 3), with bootstrap intervals.

N is the non-embedding parameter count and D the training tokens (examples) seen.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analysis.bootstrap import Batch, Interval, Points, percentile_interval
from analysis.determinacy import Judged, bounds, judged_at_the_data, undetermined_reasons
from analysis.optimize import StartGrid, fit_power_terms, logsumexp_terms_objective
from analysis.powerlaw import weighted_line
from scaling.errors import GrscaleError

MIN_SIZES = 3  # a parabola needs three sizes
MIN_PROFILES = 3  # a line through the profiles' minima needs three for a degree of freedom left to its interval
MIN_PARAMETRIC_POINTS = 6
PARAMETRIC_NAMES = ("E", "A", "alpha", "B", "beta")
# L(N, D) starts. The point estimate tries a grid as dense as Hoffmann et al.'s: their exponents
# 0 to 2 by 0.5, E over its range, and the amplitudes over theirs (here they follow from E and a
# split of the reducible error between the two terms).
PARAMETRIC_DENSE = StartGrid(
    e_fractions=(1e-3, 0.25, 0.5, 0.75, 0.95), exponents=(0.0, 0.5, 1.0, 1.5, 2.0),
    splits=((0.05, 0.95), (0.25, 0.75), (0.5, 0.5), (0.75, 0.25), (0.95, 0.05)),
)
PARAMETRIC_COARSE = StartGrid(e_fractions=(1e-3, 0.5, 0.9), exponents=(0.1, 0.3, 0.7),
                              splits=((0.2, 0.8), (0.5, 0.5), (0.8, 0.2)))


@dataclass(frozen=True)
class IsoflopProfile:
    """Error against log N at one budget: loss = c2 u^2 + c1 u + c0 with u = ln N."""

    budget: float
    n_params: np.ndarray
    losses: np.ndarray
    coeffs: tuple[float, float, float]  # c2, c1, c0
    n_opt: float
    loss_opt: float
    n_opt_interval: Interval

    def predict(self, n_params: np.ndarray) -> np.ndarray:
        u = np.log(n_params)
        return self.coeffs[0] * u**2 + self.coeffs[1] * u + self.coeffs[2]


@dataclass(frozen=True)
class Frontier:
    """Compute-optimal size N*(C) = coefficient * C^exponent through the profiles' minima."""

    exponent: float
    coefficient: float
    exponent_interval: Interval
    undetermined: tuple[str, ...]  # why the exponent is not determined (empty: it is)
    n_valid: int
    samples: np.ndarray = field(repr=False)  # (n_resamples, 2): log coefficient, exponent

    def predict(self, flops: np.ndarray) -> np.ndarray:
        return self.coefficient * np.asarray(flops, dtype=float) ** self.exponent


@dataclass(frozen=True)
class IsoflopFit:
    family: str
    profiles: tuple[IsoflopProfile, ...]
    frontier: Frontier
    # Budgets whose profile has no interior minimum (N* lies beyond the sizes measured there): left out of the frontier
    edge_budgets: tuple[float, ...] = ()


@dataclass(frozen=True)
class ParametricLaw:
    """L(N, D) = E + A / N^alpha + B / D^beta."""

    E: float
    A: float
    alpha: float
    B: float
    beta: float

    def predict(self, n_params: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        return self.E + self.A * np.asarray(n_params, float) ** -self.alpha + self.B * np.asarray(tokens, float) ** -self.beta


@dataclass(frozen=True)
class ParametricFit:
    family: str
    law: ParametricLaw
    intervals: dict[str, Interval]
    undetermined: tuple[str, ...]  # why its parameters are not determined (empty: they are)
    n_valid: int
    samples: np.ndarray = field(repr=False)  # (n_resamples, 5) in PARAMETRIC_NAMES order, NaN rows failed

    @property
    def optimal_size_exponent(self) -> float:
        """a in N*(C) ~ C^a: beta / (alpha + beta) (Hoffmann et al., with C proportional to N D)."""
        return self.law.beta / (self.law.alpha + self.law.beta)


def fit_isoflop(points: Points, batch: Batch, level: float) -> IsoflopFit:
    """Profiles at every budget with at least three sizes, and the frontier through the minima of those whose
    minimum lies inside their sizes (the others are named in `edge_budgets`; the frontier needs MIN_PROFILES).
    A profile's points are its cells: the mean error of each size's seeds, at the size's N."""
    budgets = [c for c in np.unique(points.budget) if np.sum(points.budget == c) >= MIN_SIZES]
    if not budgets:
        most = max(np.sum(points.budget == c) for c in np.unique(points.budget))
        raise GrscaleError(
            f"IsoFLOP analysis needs at least {MIN_SIZES} sizes at a budget; family {points.family!r} has at most {most}"
        )
    if len(budgets) < MIN_PROFILES:
        raise GrscaleError(
            f"IsoFLOP frontier needs profiles at {MIN_PROFILES} budgets; family {points.family!r} has "
            f"{len(budgets)} budgets with at least {MIN_SIZES} sizes"
        )
    n_params = points.cell_n_params
    u = np.log(n_params)
    values, weights = points.cell_means(batch.values, batch.weights), points.cell_weights(batch.weights)
    log_opt, loss_opt, coeffs = [], [], []
    for c in budgets:
        idx = np.flatnonzero(points.budget == c)
        fit = _parabola(u[idx], np.nan_to_num(values[:, idx], nan=1.0), weights[:, idx])
        log_opt.append(fit[0])
        loss_opt.append(fit[1])
        coeffs.append(fit[2])
    log_opt, loss_opt = np.array(log_opt).T, np.array(loss_opt).T  # (rows, budgets)
    interior = ~np.isnan(log_opt[0])
    edge_budgets = tuple(float(c) for c, ok in zip(budgets, interior) if not ok)
    if interior.sum() < MIN_PROFILES:
        raise GrscaleError(
            f"IsoFLOP profile of family {points.family!r} at C = {', '.join(f'{c:.3g}' for c in edge_budgets)} FLOPs "
            "has no interior minimum "
            f"(the error is lowest at the smallest or largest size); {int(interior.sum())} of {len(budgets)} profiles "
            f"have one and the frontier needs {MIN_PROFILES}: add sizes beyond that end"
        )
    budgets = [c for c, ok in zip(budgets, interior) if ok]
    coeffs = [fit for fit, ok in zip(coeffs, interior) if ok]
    log_opt, loss_opt = log_opt[:, interior], loss_opt[:, interior]
    valid = ~np.isnan(log_opt).any(axis=1)
    intercept, slope = weighted_line(np.log(budgets), np.where(valid[:, None], log_opt, 0.0), np.ones_like(log_opt))
    samples = np.where(valid[1:, None], np.stack([intercept[1:], slope[1:]], axis=1), np.nan)
    profiles = tuple(
        IsoflopProfile(
            budget=float(c),
            n_params=n_params[points.budget == c],
            losses=values[0, points.budget == c],
            coeffs=tuple(float(v) for v in coeffs[i][0]),
            n_opt=float(np.exp(log_opt[0, i])),
            loss_opt=float(loss_opt[0, i]),
            n_opt_interval=percentile_interval(np.exp(log_opt[1:, i]), level),
        )
        for i, c in enumerate(budgets)
    )
    interval = percentile_interval(samples[:, 1], level)
    frontier = Frontier(
        exponent=float(slope[0]),
        coefficient=float(np.exp(intercept[0])),
        exponent_interval=interval,
        undetermined=undetermined_reasons({"a": Judged(float(slope[0]), interval)}, ("a",), {}),
        n_valid=int(valid[1:].sum()),
        samples=samples,
    )
    return IsoflopFit(points.family, profiles, frontier, edge_budgets)


def fit_parametric(points: Points, batch: Batch, level: float) -> ParametricFit:
    """Huber + L-BFGS multi-start fit of L(N, D) on every trial, at its own N and tokens D."""
    check_parametric_design(points, "L(N, D)")
    log_n, log_d = np.log(points.n_params), np.log(points.tokens)
    params, _ = fit_law_of_n_and_d(log_n, log_d, np.log(batch.values), batch.weights, PARAMETRIC_DENSE,
                                   batch.huber_delta)
    valid = (points.cell_weights(batch.weights) > 0).sum(axis=1) >= MIN_PARAMETRIC_POINTS
    samples = np.where(valid[1:, None], params[1:], np.nan)
    intervals = {name: percentile_interval(samples[:, j], level) for j, name in enumerate(PARAMETRIC_NAMES)}
    centre = np.array([log_n.mean(), log_d.mean()])
    judged = judged_at_the_data(PARAMETRIC_NAMES, params[0], samples, intervals, parametric_amplitudes(centre))
    undetermined = undetermined_reasons(judged, PARAMETRIC_NAMES, bounds(PARAMETRIC_NAMES, float(points.loss.min())))
    return ParametricFit(points.family, ParametricLaw(*(float(v) for v in params[0])), intervals, undetermined,
                         int(valid[1:].sum()), samples)


def check_parametric_design(points: Points, law: str) -> None:
    """Refuse a family whose trials cannot separate N from D: fewer than 2 sizes or too few points."""
    sizes, n_cells = len(np.unique(points.size)), points.n_cells
    if sizes < 2 or n_cells < MIN_PARAMETRIC_POINTS:
        raise GrscaleError(
            f"{law} needs at least 2 sizes and {MIN_PARAMETRIC_POINTS} (size, budget) points; family "
            f"{points.family!r} has {sizes} sizes and {n_cells} points"
        )


def fit_law_of_n_and_d(log_n: np.ndarray, log_d: np.ndarray, log_q: np.ndarray, w: np.ndarray,
                       dense: StartGrid, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """L(N, D) = E + A/N^alpha + B/D^beta fitted to every row of log_q (b, n) with weights w and
    Huber threshold `delta`: parameters (b, 5) in PARAMETRIC_NAMES order, and each row's Huber loss at them."""
    logs = np.stack([log_n, log_d], axis=1)
    ref = logs.mean(axis=0)
    centred = logs - ref  # centred for parameters of order one
    raw = fit_power_terms(centred, log_q, w, dense=dense, coarse=PARAMETRIC_COARSE, delta=delta)
    rows = np.arange(len(log_q))
    loss, _ = logsumexp_terms_objective(np.broadcast_to(centred, (len(rows),) + centred.shape), log_q, w,
                                        delta)(raw, rows)
    e, a, alpha, b, beta = raw.T
    with np.errstate(over="ignore"):  # an unidentified resample's A or B overflows to inf: its interval says so
        params = np.stack([np.exp(e), np.exp(a + alpha * ref[0]), alpha, np.exp(b + beta * ref[1]), beta], axis=1)
    return params, np.where(np.isfinite(loss), loss, np.inf)


def parametric_amplitudes(log_ref: np.ndarray) -> dict[str, tuple[str, str, float]]:
    """L(N, D)'s amplitudes judged at the data's centre (analysis.determinacy.judged_at_the_data)."""
    return {"A": ("alpha", "N", float(log_ref[0])), "B": ("beta", "D", float(log_ref[1]))}


def _parabola(u: np.ndarray, values: np.ndarray, weights: np.ndarray):
    """Weighted quadratic fit per row; returns (log N* or NaN, error at N*, coefficients)."""
    centre = u.mean()  # centred for a well-conditioned 3x3 system
    x = np.stack([np.ones_like(u), u - centre, (u - centre) ** 2], axis=1)  # (n, 3)
    gram = np.einsum("rn,ni,nj->rij", weights, x, x)
    rhs = np.einsum("rn,ni,rn->ri", weights, x, values)
    enough = (weights > 0).sum(axis=1) >= MIN_SIZES
    gram[~enough] = np.eye(3)
    c0, c1, c2 = np.linalg.solve(gram, rhs[..., None])[..., 0].T
    with np.errstate(divide="ignore", invalid="ignore"):
        vertex = -c1 / (2 * c2)
    drawn = weights > 0
    lowest = np.where(drawn, u - centre, np.inf).min(axis=1)
    highest = np.where(drawn, u - centre, -np.inf).max(axis=1)
    interior = enough & (c2 > 0) & (vertex >= lowest) & (vertex <= highest)
    log_opt = np.where(interior, vertex + centre, np.nan)
    loss_opt = c0 + c1 * vertex + c2 * vertex**2
    # Back to coefficients in u = ln N itself, for plotting the measured profile.
    coeffs = np.stack([c2, c1 - 2 * c2 * centre, c0 - c1 * centre + c2 * centre**2], axis=1)
    return log_opt, loss_opt, coeffs
