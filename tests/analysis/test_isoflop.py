"""IsoFLOP profiles, the frontier and L(N, D) on data from a known Chinchilla-form law."""
import numpy as np
import pandas as pd
import pytest

from analysis.report import build_blocks, render_markdown
from analysis.study import analyze
from tests.analysis.synth import chinchilla, results_table

LAW = dict(E=1.69, A=406.4, alpha=0.34, B=410.7, beta=0.28)  # Chinchilla's published fit
BUDGETS = np.logspace(15, 19, 5)


def optimal_n(c: float) -> float:
    """N* of L(N, D = C / 6N): from dL/dN = 0."""
    g = (LAW["alpha"] * LAW["A"] / (LAW["beta"] * LAW["B"])) ** (1 / (LAW["alpha"] + LAW["beta"]))
    return g * (c / 6) ** (LAW["beta"] / (LAW["alpha"] + LAW["beta"]))


def isoflop_sweep(spread: float = 0.6, centre_shift: float = 0.0, shifted: tuple[float, ...] = BUDGETS,
                  **kwargs) -> pd.DataFrame:
    """Seven sizes per budget spanning +-spread decades around N*(C), times 10^centre_shift at the shifted budgets."""
    parts = []
    for c in BUDGETS:
        ns = optimal_n(c) * np.logspace(-spread, spread, 7) * 10 ** (centre_shift if c in shifted else 0.0)
        sizes = {f"hstu-{i}": n for i, n in enumerate(ns)}
        parts.append(results_table(chinchilla(**LAW), family="hstu", sizes=sizes, budgets=np.array([c]), **kwargs))
    return pd.concat(parts, ignore_index=True)


def test_frontier_exponent_and_parametric_law_recovered():
    result = analyze(isoflop_sweep(), n_resamples=20)
    # Everything is fitted but the data-constrained law, which needs epochs this table lacks.
    assert [r.analysis for r in result.refusals] == ["data-constrained L(N, D')"]
    frontier = result.isoflop["hstu"].frontier
    assert frontier.exponent == pytest.approx(LAW["beta"] / (LAW["alpha"] + LAW["beta"]), abs=0.01)
    for profile in result.isoflop["hstu"].profiles:
        assert profile.n_opt == pytest.approx(optimal_n(profile.budget), rel=0.1)
    law = result.parametric["hstu"].law
    assert law.alpha == pytest.approx(LAW["alpha"], rel=0.02)
    assert law.beta == pytest.approx(LAW["beta"], rel=0.02)
    assert law.E == pytest.approx(LAW["E"], rel=0.02)


def test_frontier_interval_brackets_truth_with_noise():
    rng = np.random.default_rng(4)
    result = analyze(isoflop_sweep(seeds=3, noise=0.005, rng=rng), n_resamples=200)
    interval = result.isoflop["hstu"].frontier.exponent_interval
    truth = LAW["beta"] / (LAW["alpha"] + LAW["beta"])
    # A parabola in log N is only approximately the true profile (approach 2's own bias, ~0.005 here).
    assert interval.low - 0.01 < truth < interval.high + 0.01
    assert 0 < interval.high - interval.low < 0.05


def test_profile_without_interior_minimum_is_refused():
    # Every size far below N*: the error still falls at the largest size of each budget.
    result = analyze(isoflop_sweep(spread=0.3, centre_shift=-1.5), n_resamples=10)
    messages = [r.message for r in result.refusals if r.analysis == "IsoFLOP"]
    assert len(messages) == 1
    assert "has no interior minimum" in messages[0]
    assert "hstu" in messages[0] and "1e+15" in messages[0]
    assert "hstu" not in result.isoflop


def test_a_profile_without_interior_minimum_is_left_out_of_a_frontier_the_others_determine():
    # At 1e15 every size is far below N*; the four larger budgets bracket theirs.
    result = analyze(isoflop_sweep(spread=0.3, centre_shift=-1.5, shifted=(BUDGETS[0],)), n_resamples=20)
    assert [r.analysis for r in result.refusals] == ["data-constrained L(N, D')"]
    iso = result.isoflop["hstu"]
    assert iso.edge_budgets == (BUDGETS[0],)
    assert [p.budget for p in iso.profiles] == list(BUDGETS[1:])
    assert iso.frontier.exponent == pytest.approx(LAW["beta"] / (LAW["alpha"] + LAW["beta"]), abs=0.01)
    md = render_markdown(build_blocks(result, {}))
    assert "from 4 IsoFLOP profiles; left out: the profiles at C = 1e+15, whose error is lowest" in md


def test_a_frontier_with_fewer_than_three_interior_minima_is_refused():
    result = analyze(isoflop_sweep(spread=0.3, centre_shift=-1.5, shifted=tuple(BUDGETS[:3])), n_resamples=10)
    (message,) = [r.message for r in result.refusals if r.analysis == "IsoFLOP"]
    assert message.startswith("IsoFLOP profile of family 'hstu' at C = 1e+15, 1e+16, 1e+17 FLOPs has no interior minimum")
    assert "2 of 5 profiles have one and the frontier needs 3" in message
    assert "hstu" not in result.isoflop


def test_single_size_sweep_has_no_isoflop_analysis():
    table = results_table(chinchilla(**LAW), family="hstu", sizes={"hstu-s": 1e7}, budgets=BUDGETS)
    result = analyze(table, n_resamples=10)
    assert "hstu" in result.fits
    (refusal,) = [r for r in result.refusals if r.analysis == "IsoFLOP"]
    assert refusal.message == "IsoFLOP analysis needs at least 3 sizes at a budget; family 'hstu' has at most 1"
