"""Whether the data determine a fit's parameters, and, where they do not, why in words.

A positive parameter is not determined when its bootstrap interval spans more than a decade
(or reaches 0 or infinity); any parameter is not determined when its point estimate sits at a
bound of what the fit can express: an asymptote E driven to 0 (the data show no floor), an
exponent at 0 or beyond MAX_EXPONENT. A fit with one such parameter is reported as "not
determined", and every conclusion drawn from it says so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.bootstrap import Interval, percentile_interval

MAX_DECADES = 1.0
MAX_EXPONENT = 5.0
MIN_EXPONENT = 1e-3
FLOOR_FRACTION = 1e-3  # an asymptote below this share of the lowest observed error is at its bound 0
EXPONENTS = ("alpha", "beta")


def bounds(names: tuple[str, ...], lowest_error: float) -> dict[str, tuple[float, float, str]]:
    """The bounds each named parameter can sit at: (low, high, what the bound means)."""
    out = {}
    for name in names:
        if name == "E":
            out[name] = (FLOOR_FRACTION * lowest_error, math.inf, "0: the data show no floor")
        elif name in EXPONENTS:
            out[name] = (MIN_EXPONENT, MAX_EXPONENT, f"0 or above {MAX_EXPONENT:g}")
    return out


@dataclass(frozen=True)
class Judged:
    """A parameter's estimate and interval as determinacy judges them, and how the reasons name it."""

    value: float
    interval: Interval
    label: str = ""  # "" names it by its own name


def undetermined_reasons(
    params: dict[str, Judged],
    positive: tuple[str, ...],
    limits: dict[str, tuple[float, float, str]],
) -> tuple[str, ...]:
    """Why the parameters (by name) are not determined; empty if they are."""
    reasons = []
    for name, judged in params.items():
        value, interval, label = judged.value, judged.interval, judged.label or name
        if name in limits:
            low, high, meaning = limits[name]
            if not low < value < high:
                reasons.append(f"{label} = {value:.3g} is at its bound ({meaning})")
                continue
        if name not in positive:
            continue
        if math.isnan(interval.low) or math.isnan(interval.high):
            reasons.append(f"{label} has no interval: no bootstrap resample could be fitted")
        elif interval.low <= 0 or math.isinf(interval.high):
            reasons.append(f"{label}'s interval [{interval.low:.3g}, {interval.high:.3g}] reaches "
                           f"{'0' if interval.low <= 0 else 'infinity'}")
        elif math.log10(interval.high / interval.low) > MAX_DECADES:
            reasons.append(f"{label}'s interval [{interval.low:.3g}, {interval.high:.3g}] spans "
                           f"{math.log10(interval.high / interval.low):.1f} decades")
    return tuple(reasons)


def judged_at_the_data(
    names: tuple[str, ...],
    point: np.ndarray,
    samples: np.ndarray,
    intervals: dict[str, Interval],
    amplitudes: dict[str, tuple[str, str, float]],
) -> dict[str, Judged]:
    """Each parameter's estimate and interval as determinacy judges them.

    An amplitude such as A in A C^-alpha is the term's value at C = 1, an extrapolation many
    decades outside the data that inherits every uncertainty of the exponent; the data constrain
    the term where they are. So an amplitude is judged as its term at the data's centre:
    `amplitudes` maps its name to (its exponent's name, the variable's symbol, the centre's log).
    `point` (k,) and `samples` (n, k) hold the parameters in `names` order.
    """
    out = {name: Judged(float(point[j]), intervals[name]) for j, name in enumerate(names)}
    level = next(iter(intervals.values())).level
    for name, (exponent, symbol, log_ref) in amplitudes.items():
        j, k = names.index(name), names.index(exponent)
        with np.errstate(over="ignore", invalid="ignore"):
            term = samples[:, j] * np.exp(-samples[:, k] * log_ref)
            value = float(point[j] * np.exp(-point[k] * log_ref))
        label = f"{name} (as {name} {symbol}^-{exponent} at {symbol} = {np.exp(log_ref):.3g})"
        del out[name]  # listed after the other parameters
        out[name] = Judged(value, percentile_interval(term, level), label)
    return out
