"""Huber loss in log space and a batched L-BFGS: many independent small fits at once.

A bootstrap needs thousands of 3- to 5-parameter fits, each from several starting points.
Calling scipy once per fit costs milliseconds of Python overhead each; here every row of a
(batch, k) array is its own problem with its own L-BFGS history and its own backtracking
line search, so a thousand resamples cost about as much as one fit.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable

import numpy as np

# Chinchilla's choice for log-loss residuals, used where the noise cannot be measured (no seed
# replicates). Where it can, fits use HUBER_K times the noise's spread instead (bootstrap.huber_delta).
HUBER_DELTA = 1e-3
# Huber's own tuning: a threshold of 1.345 noise standard deviations keeps 95% of least squares'
# efficiency on Gaussian noise and still bounds an outlier's pull. Chinchilla's 1e-3 is far below
# the 0.5-2% seed noise of recommendation metrics, which makes the fit a least-absolute-deviation
# one: less efficient, and its bootstrap intervals over-cover (benchmarks/fit_coverage.md).
HUBER_K = 1.345

# Iterations every start gets before only the best start per problem goes on.
RACE_ITERATIONS = 30

# fun(params (b, k), rows (b,)) -> (values (b,), gradients (b, k)) for the problems `rows`.
BatchObjective = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def huber(r: np.ndarray, delta: float = HUBER_DELTA) -> tuple[np.ndarray, np.ndarray]:
    """Huber loss of residuals r and its derivative."""
    small = np.abs(r) <= delta
    value = np.where(small, 0.5 * r * r, delta * (np.abs(r) - 0.5 * delta))
    slope = np.where(small, r, delta * np.sign(r))
    return value, slope


def logsumexp_terms_objective(
    features: np.ndarray, y: np.ndarray, w: np.ndarray, delta: float | np.ndarray = HUBER_DELTA
) -> BatchObjective:
    """Weighted mean Huber loss of log-predictions of a sum of power laws plus a constant.

    features (b, n, m): m log-features (e.g. log C, or log N and log D) per point.
    Parameters per row: [e, c_1, k_1, ..., c_m, k_m]; the prediction is
    log(exp(e) + sum_j exp(c_j - k_j * z_j)), compared with y (b, n) = log quality.
    Weights w (b, n) carry bootstrap multiplicities; zero-weight points drop out. `delta` is
    Huber's threshold, one for all rows or one per row (b,).
    """
    wsum = w.sum(axis=1)
    deltas = np.broadcast_to(np.asarray(delta, dtype=float), (len(y),))

    def fun(params: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z, yy, ww = features[rows], y[rows], w[rows] / wsum[rows, None]
        e = params[:, 0]
        c, k = params[:, 1::2], params[:, 2::2]
        terms = np.concatenate(
            [c[:, None, :] - k[:, None, :] * z, np.broadcast_to(e[:, None, None], z.shape[:2] + (1,))],
            axis=2,
        )
        top = terms.max(axis=2, keepdims=True)
        expd = np.exp(terms - top)
        total = expd.sum(axis=2, keepdims=True)
        pred = (top + np.log(total))[..., 0]
        share = expd / total  # d pred / d term
        value, slope = huber(pred - yy, deltas[rows, None])
        g_pred = ww * slope
        grad = np.empty_like(params)
        grad[:, 0] = (g_pred * share[..., -1]).sum(axis=1)
        grad[:, 1::2] = np.einsum("bn,bnm->bm", g_pred, share[..., :-1])
        grad[:, 2::2] = -np.einsum("bn,bnm->bm", g_pred, share[..., :-1] * z)
        return (ww * value).sum(axis=1), grad

    return fun


@dataclass(frozen=True)
class StartGrid:
    """Starting points of a multi-start fit: every combination of E (a fraction of the row's
    smallest error), one exponent per term from `exponents`, and a split of Q - E between the
    terms (rows of `splits`); each term's amplitude is solved for in log space."""

    e_fractions: tuple[float, ...]
    exponents: tuple[float, ...]
    splits: tuple[tuple[float, ...], ...]


def fit_power_terms(
    features: np.ndarray,
    log_q: np.ndarray,
    w: np.ndarray,
    *,
    dense: StartGrid,
    coarse: StartGrid,
    n_starts: int = 3,
    groups: int = 1,
    delta: float | np.ndarray = HUBER_DELTA,
) -> np.ndarray:
    """Huber + L-BFGS fit of log Q = log(exp(e) + sum_j exp(c_j - k_j z_j)) for every row.

    features (n, m) are centred log-features shared by all rows; log_q and w are (b, n), in
    `groups` equal blocks, each a data set as measured (its first row) and its resamples. A
    block's first row runs to convergence from every start of `dense` and keeps the best
    optimum found: the point estimate. Every other row starts from the `n_starts` best of
    `coarse` and from its block's point estimate; after a short race (see RACE_ITERATIONS) its
    leader runs to convergence, so a resample reaches the point estimate's basin wherever that
    is its best. `delta`: Huber's threshold, one or one per row. Returns (b, 1 + 2m) parameters.
    """
    b, n = log_q.shape
    m = features.shape[1]
    per = b // groups
    heads = np.arange(groups) * per
    rest = np.setdiff1d(np.arange(b), heads)
    z = np.broadcast_to(features[None], (b, n, m))
    deltas = np.broadcast_to(np.asarray(delta, dtype=float), (b,))

    def objective(rows: np.ndarray, repeat: int):
        return logsumexp_terms_objective(*(np.repeat(a[rows], repeat, axis=0) for a in (z, log_q, w, deltas)))

    starts = _grid_starts(features, log_q[heads], w[heads], dense)  # (groups, n_dense, k)
    n_dense, k = starts.shape[1:]
    sol, loss = lbfgs_batch(objective(heads, n_dense), starts.reshape(-1, k))
    loss = np.where(np.isfinite(loss), loss, np.inf).reshape(groups, n_dense)
    points = sol.reshape(groups, -1, k)[np.arange(groups), loss.argmin(axis=1)]
    points[~np.isfinite(loss).any(axis=1)] = np.nan
    out = np.empty((b, k))
    out[heads] = points
    if rest.size == 0:
        return out
    grid = _grid_starts(features, log_q[rest], w[rest], coarse)  # (rest, n_grid, k)
    n_grid = grid.shape[1]
    grid_loss, _ = objective(rest, n_grid)(grid.reshape(-1, k), np.arange(rest.size * n_grid))
    grid_loss = np.where(np.isfinite(grid_loss), grid_loss, np.inf).reshape(rest.size, n_grid)
    best = np.argsort(grid_loss, axis=1)[:, :n_starts]
    own_point = np.nan_to_num(points[rest // per])[:, None, :]
    x0 = np.concatenate([np.take_along_axis(grid, best[:, :, None], axis=1), own_point], axis=1)
    tries = x0.shape[1]
    # A short race between the starts, then only each problem's leader runs to convergence:
    # starts heading for a worse minimum (often E -> 0, reached only at infinity) stop early.
    sol, loss = lbfgs_batch(objective(rest, tries), x0.reshape(-1, k), max_iter=RACE_ITERATIONS)
    loss = np.where(np.isfinite(loss), loss, np.inf).reshape(rest.size, tries)
    leader = sol.reshape(rest.size, tries, k)[np.arange(rest.size), loss.argmin(axis=1)]
    out[rest] = lbfgs_batch(objective(rest, 1), leader)[0]
    return out


def _grid_starts(features: np.ndarray, log_q: np.ndarray, w: np.ndarray, grid: StartGrid) -> np.ndarray:
    """Every start of `grid` for every row: (b, n_grid, 1 + 2m)."""
    b, m = log_q.shape[0], features.shape[1]
    q = np.exp(log_q)
    q_min = np.where(w > 0, q, np.inf).min(axis=1)
    wsum = w.sum(axis=1)
    starts = []
    for frac, ks, split in itertools.product(grid.e_fractions, itertools.product(grid.exponents, repeat=m),
                                             grid.splits):
        e = np.log(frac * q_min)
        log_gap = np.log(np.maximum(q - frac * q_min[:, None], 1e-300))
        row = [e]
        for j in range(m):
            amp = np.log(split[j]) + np.where(w > 0, (log_gap + ks[j] * features[:, j]) * w, 0.0).sum(axis=1) / wsum
            row += [amp, np.full(b, ks[j])]
        starts.append(np.stack(row, axis=1))
    return np.stack(starts, axis=1)


def lbfgs_batch(
    fun: BatchObjective,
    x0: np.ndarray,
    *,
    max_iter: int = 300,
    gtol: float = 1e-9,
    ftol: float = 1e-9,
    history: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """Minimise every row of x0 (b, k) independently; returns (minimisers, minimum values).

    A row stops when its gradient is below `gtol`, or when an iteration lowers its value by
    less than `ftol` relative (a minimum at infinity, e.g. E -> 0, is approached forever).
    """
    x = np.array(x0, dtype=float)
    b, k = x.shape
    all_rows = np.arange(b)
    f, g = fun(x, all_rows)
    s_hist = np.zeros((b, history, k))
    y_hist = np.zeros((b, history, k))
    rho = np.zeros((b, history))  # 0 marks an empty or rejected pair: a no-op below
    gamma = np.ones(b)
    active = np.isfinite(f) & (np.abs(g).max(axis=1) > gtol)
    for it in range(max_iter):
        rows = all_rows[active]
        if rows.size == 0:
            break
        d = _two_loop(g[rows], s_hist[rows], y_hist[rows], rho[rows], gamma[rows], it, history)
        slope = (d * g[rows]).sum(axis=1)
        uphill = slope >= 0  # a stale history can point uphill: restart from steepest descent
        d[uphill] = -g[rows][uphill]
        slope[uphill] = -(g[rows][uphill] ** 2).sum(axis=1)
        rho[rows[uphill]] = 0.0
        x_new, f_new, g_new, found = _backtrack(fun, x[rows], f[rows], g[rows], d, slope, rows)
        s, yv = x_new - x[rows], g_new - g[rows]
        sy = (s * yv).sum(axis=1)
        slot = it % history
        good = found & (sy > 1e-12 * np.sqrt((s * s).sum(axis=1) * (yv * yv).sum(axis=1)) + 1e-300)
        s_hist[rows, slot], y_hist[rows, slot] = s, yv
        rho[rows, slot] = np.where(good, 1.0 / np.where(good, sy, 1.0), 0.0)
        gamma[rows] = np.where(good, sy / np.maximum((yv * yv).sum(axis=1), 1e-300), gamma[rows])
        # A failed line search means no further progress is possible at float precision.
        progress = f[rows] - f_new > ftol * np.abs(f[rows])
        x[rows], f[rows], g[rows] = x_new, f_new, g_new
        active[rows] = found & progress & (np.abs(g_new).max(axis=1) > gtol)
    return x, f


def _two_loop(g, s_hist, y_hist, rho, gamma, it, history):
    q = g.copy()
    alphas = np.zeros(rho.shape)
    newest_first = [(it - 1 - j) % history for j in range(min(it, history))]
    for slot in newest_first:
        alphas[:, slot] = rho[:, slot] * (s_hist[:, slot] * q).sum(axis=1)
        q -= alphas[:, slot, None] * y_hist[:, slot]
    r = gamma[:, None] * q
    for slot in reversed(newest_first):
        beta = rho[:, slot] * (y_hist[:, slot] * r).sum(axis=1)
        r += s_hist[:, slot] * (alphas[:, slot] - beta)[:, None]
    return -r


def _backtrack(fun, x, f, g, d, slope, rows, c1=1e-4, max_halvings=40):
    """Armijo backtracking from step 1, each row with its own step length."""
    x_new, f_new, g_new = x.copy(), f.copy(), g.copy()
    found = np.zeros(len(rows), dtype=bool)
    step = np.ones(len(rows))
    pending = np.arange(len(rows))
    for _ in range(max_halvings):
        trial = x[pending] + step[pending, None] * d[pending]
        f_t, g_t = fun(trial, rows[pending])
        ok = np.isfinite(f_t) & (f_t <= f[pending] + c1 * step[pending] * slope[pending])
        done = pending[ok]
        x_new[done], f_new[done], g_new[done] = trial[ok], f_t[ok], g_t[ok]
        found[done] = True
        pending = pending[~ok]
        if pending.size == 0:
            break
        step[pending] *= 0.5
    return x_new, f_new, g_new, found
