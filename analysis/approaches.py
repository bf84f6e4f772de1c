"""Chinchilla's three approaches to the compute-optimal size N*(C) ~ C^a, side by side.

1. The envelope: per budget, the size whose run ends best (chosen on the selecting error, as
   everywhere), and a line through log N* against log C. Only points that are ends of a
   cooldown belong on an envelope, so it is drawn from each trial's final point (the end of its
   own schedule), never from mid-run evaluations of a longer run.
2. IsoFLOP profiles: the minimum of a parabola in log N per budget (analysis.isoflop).
3. The parametric L(N, D): a = beta / (alpha + beta) (analysis.isoflop.fit_parametric).

Each exponent carries its bootstrap interval; the approaches agree when every pair of
intervals overlaps.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.bootstrap import Batch, Interval, Points, best_per_budget, percentile_interval
from analysis.determinacy import Judged, undetermined_reasons
from analysis.family import MIN_BUDGETS
from analysis.isoflop import IsoflopFit, ParametricFit
from analysis.powerlaw import weighted_line
from scaling.errors import GrscaleError

ENVELOPE = "envelope of final points"
ISOFLOP = "IsoFLOP profiles"
PARAMETRIC = "parametric L(N, D)"


@dataclass(frozen=True)
class OptimalSizeEstimate:
    approach: str
    exponent: float
    interval: Interval
    undetermined: tuple[str, ...]


@dataclass(frozen=True)
class ApproachComparison:
    family: str
    estimates: tuple[OptimalSizeEstimate, ...]
    agree: bool
    summary: str


def envelope_exponent(points: Points, batch: Batch, level: float) -> OptimalSizeEstimate:
    """Approach 1 on the best size per budget, chosen again in every resample."""
    sizes_per_budget = {c: len(set(points.size[points.budget == c])) for c in np.unique(points.budget)}
    budgets = [c for c, n in sizes_per_budget.items() if n >= 2]
    if len(budgets) < MIN_BUDGETS:
        raise GrscaleError(f"the envelope needs {MIN_BUDGETS} budgets with at least 2 sizes; family "
                           f"{points.family!r} has {len(budgets)}")
    best = best_per_budget(points, batch)
    keep = np.isin(best.budgets, budgets)
    log_n = np.log(points.cell_n_params)[best.chosen[:, keep]]  # (rows, budgets)
    weights = best.drawn[:, keep].astype(float)
    _, slope = weighted_line(np.log(best.budgets[keep]), log_n, weights)
    valid = weights[1:].sum(axis=1) >= MIN_BUDGETS
    interval = percentile_interval(np.where(valid, slope[1:], np.nan), level)
    return OptimalSizeEstimate(ENVELOPE, float(slope[0]), interval,
                               undetermined_reasons({"a": Judged(float(slope[0]), interval)}, ("a",), {}))


def compare_approaches(family: str, envelope: OptimalSizeEstimate | None, isoflop: IsoflopFit | None,
                       parametric: ParametricFit | None, level: float) -> ApproachComparison | None:
    """The approaches the data allowed, and whether their exponents agree within their intervals;
    None where fewer than two were possible."""
    estimates = [e for e in (envelope,) if e is not None]
    if isoflop is not None:
        front = isoflop.frontier
        estimates.append(OptimalSizeEstimate(ISOFLOP, front.exponent, front.exponent_interval, front.undetermined))
    if parametric is not None:
        alpha, beta = parametric.samples[:, 2], parametric.samples[:, 4]
        with np.errstate(invalid="ignore", divide="ignore"):
            interval = percentile_interval(beta / (alpha + beta), level)
        estimates.append(OptimalSizeEstimate(PARAMETRIC, parametric.optimal_size_exponent, interval,
                                             parametric.undetermined))
    if len(estimates) < 2:
        return None
    overlaps = [max(x.interval.low, y.interval.low) <= min(x.interval.high, y.interval.high)
                for i, x in enumerate(estimates) for y in estimates[i + 1:]]
    listed = "; ".join(f"{e.approach} a = {e.exponent:.3g} [{e.interval.low:.3g}, {e.interval.high:.3g}]"
                       for e in estimates)
    agree = all(overlaps)
    verdict = ("agree: every pair of intervals overlaps" if agree
               else "disagree: some intervals do not overlap, so at least one approach's assumptions fail here")
    shaky = [e.approach for e in estimates if e.undetermined]
    caveat = f" ({', '.join(shaky)} not determined)" if shaky else ""
    return ApproachComparison(family, tuple(estimates), agree,
                              f"compute-optimal size exponents {verdict}{caveat}: {listed}")

