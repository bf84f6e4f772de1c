"""The learning-rate profile per cell and lr*(N) = a N^-b, against bowls with known optima."""
import numpy as np
import pandas as pd
import pytest

from analysis.plots import DPI, all_figures
from analysis.report import build_blocks, report_tables
from analysis.study import analyze
from tests.analysis.synth import results_table

SIZES = {"s": 1e5, "m": 1e6, "l": 1e7}
BUDGETS = np.logspace(13, 16, 4)
A, B = 2.0, 0.3  # lr*(N) = 2 N^-0.3: 0.063, 0.032, 0.016


def bowl_table(rates, sizes=SIZES) -> pd.DataFrame:
    """Validation and test error quadratic in log rate around lr*(N), on top of a saturating law."""
    tables = []
    for rate in rates:
        def quality(n, d, c, rate=rate):
            return 2.0 + 3e4 * c**-0.3 + 0.05 * (np.log(rate) - np.log(A * n**-B)) ** 2
        tables.append(results_table(quality, family="hstu", sizes=sizes, budgets=BUDGETS, setting={"peak_lr": rate}))
    return pd.concat(tables, ignore_index=True)


def test_optimal_rate_law_recovers_a_and_b():
    result = analyze(bowl_table([3e-3, 1e-2, 3e-2, 1e-1, 3e-1]), n_resamples=50)
    profiles = [p for p in result.rate_profiles if p.size == "m"]
    assert len(profiles) == len(BUDGETS)
    # A quadratic bowl in log rate: the three-point parabola's vertex is the true optimum.
    assert profiles[0].optimum == pytest.approx(A * 1e6**-B, rel=1e-6)
    assert profiles[0].best == 3e-2 and not profiles[0].at_edge
    law = result.rate_laws["hstu"]
    assert law.b == pytest.approx(B, rel=1e-6) and law.a == pytest.approx(A, rel=1e-5)
    assert law.n_cells == 12 and law.n_sizes == 3
    assert law.b_interval.contains(B) and law.b_interval.high - law.b_interval.low < 1e-6
    text = " ".join(str(b[1]) for b in build_blocks(result, {}))
    assert "lr*(N) = a N^-b with b = 0.3" in text
    table = report_tables(result)["learning_rate_profile"]
    assert len(table) == 12 and set(table["rates"]) == {"3e-3, 1e-2, 3e-2, 1e-1, 3e-1"}
    figure = all_figures(result)["learning_rate"]
    assert "N^-0.30 [0.30, 0.30]" in figure.figure.axes[0].get_title()
    assert figure.figure.get_size_inches()[0] * DPI >= 1200 and "1 seed per point" in figure.caption


def test_a_best_rate_at_the_grid_edge_is_flagged_and_refuses_the_law():
    # Every size's optimum (0.016 to 0.063) lies above a grid that stops at 1e-2.
    result = analyze(bowl_table([1e-3, 3e-3, 1e-2]), n_resamples=20)
    assert all(p.at_edge and np.isnan(p.optimum) and p.best == 1e-2 for p in result.rate_profiles)
    assert "hstu" not in result.rate_laws
    refusal = next(r for r in result.refusals if r.analysis == "lr*(N)")
    assert "at 2 sizes or more; it has 0 (12 cells whose best rate is at the grid's edge" in refusal.message
    table = report_tables(result)["learning_rate_profile"]
    assert table["note"].str.contains("edge of its grid").all()


def test_one_rate_per_cell_has_no_profile():
    result = analyze(bowl_table([1e-2]), n_resamples=10)
    assert result.rate_profiles == () and result.rate_laws == {}
    assert not any(r.analysis == "lr*(N)" for r in result.refusals)
