"""Two families side by side (default HSTU vs DLRM), on their saturating laws and bootstrap pairs.

- crossover: the compute where the fitted curves cross, if they do within the scanned range;
- compute multiplier: C_B / C where family B's curve reaches family A's quality at C;
- plateau test: whether B's log-log slope (the pure power law's exponent) could be 0, and
  B's local slope at its largest budget from the saturating law (a whole-range slope misses a
  curve that flattens late).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.bootstrap import Interval, percentile_interval
from analysis.family import FamilyFit
from analysis.powerlaw import predict_log, saturating_log_flops_for

DEFAULT_PAIR = ("hstu", "dlrm")
SCAN_DECADES = 12  # how far beyond the measured compute the crossover scan looks
LN10 = np.log(10.0)


@dataclass(frozen=True)
class Crossover:
    flops: tuple[float, ...]  # crossings of the two fitted curves within the scan
    measured_range: tuple[float, float]
    scanned_range: tuple[float, float]
    bootstrap_share_in_range: float  # share of resample pairs that cross in the measured range
    summary: str


@dataclass(frozen=True)
class Multiplier:
    flops: float  # family A's compute
    quality: float  # family A's fitted quality there
    multiplier: float  # C_B / C_A at equal quality; inf where B's curve never gets there
    interval: Interval


@dataclass(frozen=True)
class PlateauTest:
    family: str
    exponent: float  # pure power-law exponent (minus the log-log slope)
    interval: Interval
    includes_zero: bool
    top_flops: float  # the family's largest budget
    top_slope: float  # -d log Q / d log C of the saturating law there
    top_slope_interval: Interval


@dataclass(frozen=True)
class Comparison:
    family_a: str
    family_b: str
    alpha_a: float
    alpha_a_interval: Interval
    alpha_b: float
    alpha_b_interval: Interval
    crossover: Crossover
    multipliers: tuple[Multiplier, ...]
    plateau: PlateauTest
    caveats: tuple[str, ...]  # the undetermined fits it rests on (empty: none)


def default_pair(families: list[str]) -> tuple[str, str] | None:
    """hstu vs dlrm where both are present, else the only two families (hstu first), else None."""
    if all(f in families for f in DEFAULT_PAIR):
        return DEFAULT_PAIR
    if len(families) == 2:
        a, b = sorted(families, key=lambda f: (f != "hstu", f))
        return a, b
    return None


def compare(a: FamilyFit, b: FamilyFit, level: float) -> Comparison:
    pa, pb = _saturating_rows(a), _saturating_rows(b)
    plateau_interval = b.exponent_interval("power")
    top = float(b.budgets.max())
    slopes = _local_slope(pb, np.log(top))
    return Comparison(
        family_a=a.family,
        family_b=b.family,
        alpha_a=a.saturating.alpha,
        alpha_a_interval=a.exponent_interval("saturating"),
        alpha_b=b.saturating.alpha,
        alpha_b_interval=b.exponent_interval("saturating"),
        crossover=_crossover(a, b, pa, pb),
        multipliers=tuple(multiplier_at(c, pa, pb, level) for c in a.budgets),
        plateau=PlateauTest(b.family, b.power.alpha, plateau_interval, plateau_interval.contains(0.0),
                            top, float(slopes[0]), percentile_interval(slopes[1:], level)),
        caveats=tuple(f"{fit.family}'s saturating law is not determined ({'; '.join(fit.undetermined['saturating'])})"
                      for fit in (a, b) if fit.undetermined["saturating"]),
    )


def _local_slope(rows: np.ndarray, log_c: float) -> np.ndarray:
    """-d log Q / d log C of each saturating row (E, A, alpha) at log C: alpha * A C^-alpha / Q."""
    log_reducible = np.log(rows[:, 1]) - rows[:, 2] * log_c
    return rows[:, 2] * np.exp(log_reducible - predict_log("saturating", rows, np.array([log_c]))[:, 0])


def _saturating_rows(fit: FamilyFit) -> np.ndarray:
    """Row 0 the fit as measured, then the bootstrap rows (NaN where a resample failed)."""
    law = fit.saturating
    return np.vstack([[law.E, law.A, law.alpha], fit.samples["saturating"]])


def _crossover(a: FamilyFit, b: FamilyFit, pa: np.ndarray, pb: np.ndarray) -> Crossover:
    lo, hi = float(min(a.budgets.min(), b.budgets.min())), float(max(a.budgets.max(), b.budgets.max()))
    t = np.linspace(np.log(lo) - SCAN_DECADES * LN10, np.log(hi) + SCAN_DECADES * LN10, 4001)
    diff = predict_log("saturating", pa[:1], t)[0] - predict_log("saturating", pb[:1], t)[0]
    roots = tuple(float(np.exp(r)) for r in _roots(t, diff))
    inside = [r for r in roots if lo <= r <= hi]
    t_in = np.linspace(np.log(lo), np.log(hi), 400)
    d_in = predict_log("saturating", pa[1:], t_in) - predict_log("saturating", pb[1:], t_in)
    ok = ~np.isnan(d_in).any(axis=1)
    share = float(np.mean((np.diff(np.sign(d_in[ok]), axis=1) != 0).any(axis=1))) if ok.any() else float("nan")
    scanned = (float(np.exp(t[0])), float(np.exp(t[-1])))
    if inside:
        summary = "the fitted curves cross inside the measured range at C = " + ", ".join(f"{r:.3g}" for r in inside)
    elif roots:
        summary = "the fitted curves cross only outside the measured range (extrapolated) at C = " + ", ".join(
            f"{r:.3g}" for r in roots
        )
    else:
        summary = f"the fitted curves do not cross anywhere in {scanned[0]:.3g} to {scanned[1]:.3g} FLOPs"
    return Crossover(roots, (lo, hi), scanned, share, summary)


def _roots(t: np.ndarray, diff: np.ndarray) -> list[float]:
    """Sign changes of diff along t, located by linear interpolation."""
    idx = np.flatnonzero(np.sign(diff[:-1]) * np.sign(diff[1:]) < 0)
    return [float(t[i] - diff[i] * (t[i + 1] - t[i]) / (diff[i + 1] - diff[i])) for i in idx]


def multiplier_at(flops: float, pa: np.ndarray, pb: np.ndarray, level: float) -> Multiplier:
    """C_B / C at C = `flops`, from saturating rows (E, A, alpha) of A and B: row 0 the point
    estimate, the others bootstrap rows (NaN where failed) giving the interval."""
    log_c = np.log(flops)
    log_q = predict_log("saturating", pa, np.array([log_c]))  # (rows, 1)
    with np.errstate(over="ignore"):  # out of reach within float range: inf, as intended
        ratio = np.exp(saturating_log_flops_for(pb, log_q)[:, 0] - log_c)
    ratio[np.isnan(pa).any(axis=1) | np.isnan(pb).any(axis=1)] = np.nan
    return Multiplier(float(flops), float(np.exp(log_q[0, 0])), float(ratio[0]), percentile_interval(ratio[1:], level))
