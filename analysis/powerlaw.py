"""Quality against training compute in one variable: three functional forms, fitted in batches.

Every fit takes the budgets' log C (n,) shared by all rows, and per row (b, n) the log
quality and a weight (bootstrap multiplicity, or 0 to leave a budget out), and returns one
parameter row per problem. Row 0 is by convention the fit to the data as measured.

- saturating: Q = E + A * C^-alpha, Huber loss on log residuals, L-BFGS from the best
  starts of a grid (Chinchilla approach 3 in one variable, E = exp(e), A = exp(a));
- power: Q = A * C^-alpha, least squares on log Q (a straight line in log-log);
- loglinear: Q = a + b ln C, least squares on Q (the form the HSTU paper reports).
"""
from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import ClassVar

import numpy as np

from analysis.optimize import HUBER_DELTA, StartGrid, fit_power_terms

FORMS = ("saturating", "power", "loglinear")

# Start grids for the saturating law: E as a fraction of the smallest observed error, and alpha.
# The point estimate tries every start of the dense grid (exponents 0 to 2 as in Hoffmann et
# al.'s grid, and the small exponents recommenders show; the amplitude from 1/30 to 30 times the
# one that fits the data's mean); resamples race the coarse one.
DENSE_STARTS = StartGrid(e_fractions=(1e-6, 1e-3, 0.1, 0.3, 0.5, 0.7, 0.85, 0.95, 0.99),
                         exponents=(0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 1.5, 2.0),
                         splits=((0.03,), (0.3,), (1.0,), (3.0,), (30.0,)))
COARSE_STARTS = StartGrid(e_fractions=(1e-3, 0.3, 0.6, 0.85, 0.97), exponents=(0.03, 0.1, 0.3, 0.7, 1.5),
                          splits=((1.0,),))


class _FittedLaw:
    """predict() for a law dataclass whose fields are its parameters in predict_value's order."""

    form: ClassVar[str]

    def predict(self, flops: np.ndarray | float) -> np.ndarray:
        return predict_value(self.form, np.array([astuple(self)]), np.log(flops))[0]


@dataclass(frozen=True)
class SaturatingLaw(_FittedLaw):
    """Q = E + A * C^-alpha."""

    E: float
    A: float
    alpha: float
    form: ClassVar[str] = "saturating"


@dataclass(frozen=True)
class PowerLaw(_FittedLaw):
    """Q = A * C^-alpha."""

    A: float
    alpha: float
    form: ClassVar[str] = "power"


@dataclass(frozen=True)
class LogLinearLaw(_FittedLaw):
    """Q = a + b * ln C."""

    a: float
    b: float
    form: ClassVar[str] = "loglinear"


Law = SaturatingLaw | PowerLaw | LogLinearLaw
LAW_TYPES: dict[str, type] = {cls.form: cls for cls in (SaturatingLaw, PowerLaw, LogLinearLaw)}


def law_from_row(form: str, row: np.ndarray) -> Law:
    return LAW_TYPES[form](*(float(v) for v in row))


def fit_batch(form: str, log_c: np.ndarray, log_q: np.ndarray, w: np.ndarray, groups: int = 1,
              delta: float | np.ndarray = HUBER_DELTA) -> np.ndarray:
    """Fit `form` to each row; returns parameters (b, k) in the law's own units. The rows are
    `groups` equal blocks, each a data set as measured followed by its resamples. `delta`: the
    saturating fit's Huber threshold (one, or one per row)."""
    drawn = (w > 0).any(axis=0)  # a point no data set draws (a size never best) changes no fit: leave it out
    log_c, log_q, w = log_c[drawn], log_q[:, drawn], w[:, drawn]
    if form == "saturating":
        return fit_saturating_batch(log_c, log_q, w, groups, delta)
    intercept, slope = weighted_line(log_c, log_q if form == "power" else np.exp(log_q), w)
    if form == "power":
        return np.stack([np.exp(intercept), -slope], axis=1)
    return np.stack([intercept, slope], axis=1)


def predict_log(form: str, params: np.ndarray, log_c: np.ndarray) -> np.ndarray:
    """log Q predicted by each parameter row (b, k) at log C (g,): (b, g); NaN where Q <= 0."""
    log_c = np.atleast_1d(log_c)[None, :]
    p = [params[:, j, None] for j in range(params.shape[1])]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if form == "saturating":
            return np.logaddexp(np.log(p[0]), np.log(p[1]) - p[2] * log_c)
        if form == "power":
            return np.log(p[0]) - p[1] * log_c
        q = p[0] + p[1] * log_c
        return np.where(q > 0, np.log(np.where(q > 0, q, 1.0)), np.nan)


def predict_value(form: str, params: np.ndarray, log_c: np.ndarray) -> np.ndarray:
    """Q predicted by each parameter row at log C: (b, g); the log-linear form can reach 0 or below."""
    if form == "loglinear":
        return params[:, 0, None] + params[:, 1, None] * np.atleast_1d(log_c)[None, :]
    return np.exp(predict_log(form, params, log_c))


def exponent_index(form: str) -> int:
    """Column of the parameter row that holds the form's exponent (or slope)."""
    return {"saturating": 2, "power": 1, "loglinear": 1}[form]


def fit_saturating_batch(log_c: np.ndarray, log_q: np.ndarray, w: np.ndarray, groups: int = 1,
                         delta: float | np.ndarray = HUBER_DELTA) -> np.ndarray:
    """Huber + L-BFGS multi-start fit of Q = E + A C^-alpha per row: (b, 3) rows of E, A, alpha."""
    ref = log_c.mean()  # centre log C so that the parameters are of order one
    e, a, alpha = fit_power_terms((log_c - ref)[:, None], log_q, w, dense=DENSE_STARTS, coarse=COARSE_STARTS,
                                    groups=groups, delta=delta).T
    with np.errstate(over="ignore"):  # an unidentified resample's A overflows to inf: its interval says so
        return np.stack([np.exp(e), np.exp(a + alpha * ref), alpha], axis=1)


def weighted_line(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares intercept and slope of y (b, n) on x (n,), per row."""
    wsum = w.sum(axis=1)
    mx = (w * x).sum(axis=1) / wsum
    my = (w * y).sum(axis=1) / wsum
    dx = x[None, :] - mx[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (w * dx * (y - my[:, None])).sum(axis=1) / (w * dx * dx).sum(axis=1)
    return my - slope * mx, slope


def saturating_log_flops_for(params: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    """ln C at which each saturating law (b, 3) reaches quality exp(log_q) (b, g); inf if never."""
    e_, a_, alpha = (params[:, j, None] for j in range(3))
    gap = np.exp(log_q) - e_
    with np.errstate(divide="ignore", invalid="ignore"):
        log_c = (np.log(a_) - np.log(gap)) / alpha
    return np.where((gap > 0) & (alpha > 0), log_c, np.inf)
