"""HSTU vs DLRM: crossover, compute multiplier and plateau test on known curves."""
import numpy as np
import pandas as pd
import pytest

from analysis.study import analyze
from tests.analysis.synth import results_table, saturating

BUDGETS = np.logspace(13, 18, 8)


def two_families(hstu, dlrm, **kwargs) -> pd.DataFrame:
    return pd.concat([
        results_table(hstu, family="hstu", sizes={"hstu-s": 1e6}, budgets=BUDGETS, **kwargs),
        results_table(dlrm, family="dlrm", sizes={"dlrm-s": 1e6}, budgets=BUDGETS, **kwargs),
    ])


def test_multiplier_recovers_a_known_compute_handicap():
    # DLRM reaches at k*C what HSTU reaches at C: Q_dlrm(C) = Q_hstu(C / k).
    k, E, A, alpha = 8.0, 1.0, 1e4, 0.3
    result = analyze(two_families(saturating(E, A, alpha), saturating(E, A * k**alpha, alpha)), n_resamples=20)
    cmp = result.comparison
    assert (cmp.family_a, cmp.family_b) == ("hstu", "dlrm")
    for m in cmp.multipliers:
        assert m.multiplier == pytest.approx(k, rel=0.02)
    assert cmp.crossover.flops == ()
    assert "do not cross" in cmp.crossover.summary


def test_crossover_inside_measured_range():
    # HSTU starts worse but scales faster; the curves cross where 1e5 C^-0.35 = 10^3.5 C^-0.25.
    hstu, dlrm = saturating(1.0, 1e5, 0.35), saturating(1.0, 10**3.5, 0.25)
    result = analyze(two_families(hstu, dlrm), n_resamples=20)
    truth = 1e15
    (c,) = result.comparison.crossover.flops
    assert c == pytest.approx(truth, rel=0.05)
    assert "inside the measured range" in result.comparison.crossover.summary


def flat(n, d, c):
    return np.float64(3.0)


def test_plateau_detected_for_flat_dlrm_and_not_for_improving_hstu():
    # A 90% interval misses a true zero in about 1 draw of 10: judge the test over 10 draws.
    rng = np.random.default_rng(0)
    plateaus, hstu_flat = 0, 0
    for _ in range(10):
        table = two_families(saturating(1.0, 1e4, 0.3), flat, seeds=5, noise=0.01, rng=rng)
        result = analyze(table, n_resamples=100)
        assert result.comparison.plateau.family == "dlrm"
        plateaus += result.comparison.plateau.includes_zero
        hstu_flat += result.fits["hstu"].exponent_interval("power").contains(0.0)
    assert plateaus >= 7
    assert hstu_flat == 0


def test_never_reached_quality_gives_infinite_multiplier():
    # DLRM's floor E = 3 lies above HSTU's quality at the top budgets.
    result = analyze(two_families(saturating(1.0, 1e3, 0.3), saturating(3.0, 1e3, 0.3)), n_resamples=20)
    assert result.comparison.multipliers[-1].multiplier == float("inf")


def test_local_slope_at_the_top_budget_sees_a_late_plateau():
    # Q = E + A C^-alpha: the local slope alpha A C^-alpha / Q falls towards 0 as C passes the
    # knee, while the whole-range slope still averages the steep early part.
    E, A, alpha = 1.0, 1e6, 0.5
    result = analyze(two_families(saturating(1.0, 1e4, 0.3), saturating(E, A, alpha)), n_resamples=20)
    p = result.comparison.plateau
    top = BUDGETS.max()
    truth = alpha * A * top**-alpha / (E + A * top**-alpha)
    assert p.top_flops == top
    assert p.top_slope == pytest.approx(truth, rel=0.02)
    assert p.top_slope_interval.low <= p.top_slope <= p.top_slope_interval.high
    assert p.top_slope < 0.1 * p.exponent  # flat at the end, though the whole-range slope is not
