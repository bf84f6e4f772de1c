"""Quality-vs-compute fits against laws with known parameters."""
import numpy as np
import pandas as pd
import pytest

from analysis.bootstrap import Batch, best_per_budget, family_points, percentile_interval, resample
from analysis.powerlaw import fit_batch
from analysis.results import choose_metric, trial_table
from analysis.selection import choose_settings, selection_policy
from analysis.study import analyze
from tests.analysis.synth import results_table, saturating

E, A, ALPHA = 2.0, 3e4, 0.3
BUDGETS = np.logspace(13, 18, 8)
ONE_SIZE = {"hstu-s": 1e6}


def test_noise_free_fit_recovers_parameters_within_one_percent():
    table = results_table(saturating(E, A, ALPHA), family="hstu", sizes=ONE_SIZE, budgets=BUDGETS)
    fit = analyze(table, n_resamples=10).fits["hstu"]
    law = fit.saturating
    assert law.alpha == pytest.approx(ALPHA, rel=0.01)
    assert law.E == pytest.approx(E, rel=0.01)
    assert law.A == pytest.approx(A, rel=0.01)
    assert fit.preferred_by_aic == "saturating"
    assert law.predict(BUDGETS) == pytest.approx(E + A * BUDGETS**-ALPHA, rel=1e-6)


def test_interval_covers_true_alpha_in_most_noisy_draws():
    """50 independent noisy sweeps (5 seeds a budget), 200 resamples each, fitted in one batch."""
    rng = np.random.default_rng(123)
    draws, n_resamples = 50, 200
    values, weights = [], []
    for _ in range(draws):
        table = results_table(saturating(E, A, ALPHA), family="hstu", sizes=ONE_SIZE, budgets=BUDGETS,
                              seeds=5, noise=0.02, rng=rng)
        metric = choose_metric(table, None)
        trials = trial_table(table, metric)
        trials, _ = choose_settings(trials, metric, selection_policy(trials, metric))
        batch = resample(family_points(trials, "hstu"), n_resamples, rng)
        values.append(batch.values)
        weights.append(batch.weights)
    # Every draw has the same design (one size), so one best_per_budget and one fit serve them all.
    points = family_points(trials, "hstu")
    stacked = np.concatenate(values)
    best = best_per_budget(points, Batch(stacked, stacked, np.concatenate(weights), batch.scheme))
    alphas = fit_batch("saturating", np.log(points.flops), np.log(stacked), best.weights,
                       groups=draws)[:, 2].reshape(draws, n_resamples + 1)
    covered = sum(percentile_interval(alphas[d, 1:], 0.9).contains(ALPHA) for d in range(draws))
    assert covered >= 40, f"90% intervals covered the true alpha in only {covered}/50 draws"


def test_extrapolation_error_small_where_law_holds_and_large_where_it_breaks():
    holds = results_table(saturating(E, A, ALPHA), family="hstu", sizes=ONE_SIZE, budgets=BUDGETS)
    assert abs(analyze(holds, n_resamples=10).fits["hstu"].extrapolation.relative_error) < 0.01

    def bends(n, d, c):  # the law until the second-largest budget, then a much steeper gain
        return np.where(c > BUDGETS[-2] * 1.01, 0.6, 1.0) * (E + A * c**-ALPHA)

    breaks = results_table(bends, family="hstu", sizes=ONE_SIZE, budgets=BUDGETS)
    ex = analyze(breaks, n_resamples=10).fits["hstu"].extrapolation
    assert ex.budget == BUDGETS[-1]
    assert ex.relative_error > 0.3


def test_model_selection_prefers_saturating_on_noisy_saturating_data():
    rng = np.random.default_rng(5)
    table = results_table(saturating(E, A, ALPHA), family="hstu", sizes=ONE_SIZE, budgets=BUDGETS,
                          seeds=3, noise=0.01, rng=rng)
    fit = analyze(table, n_resamples=20).fits["hstu"]
    scores = {s.form: s for s in fit.scores}
    assert fit.preferred_by_aic == "saturating"
    assert scores["saturating"].heldout_rmse < scores["loglinear"].heldout_rmse


def test_higher_is_better_metric_is_fitted_as_one_minus_metric():
    table = results_table(saturating(0.2, 50.0, 0.25), family="hstu", sizes=ONE_SIZE, budgets=BUDGETS, metric="test/hr@10")
    result = analyze(table, metric="test/hr@10", n_resamples=10)
    assert result.metric.fitted == "1 - test/hr@10"
    assert result.fits["hstu"].saturating.alpha == pytest.approx(0.25, rel=0.01)


def test_same_seed_gives_same_intervals():
    rng = np.random.default_rng(9)
    table = results_table(saturating(E, A, ALPHA), family="hstu", sizes=ONE_SIZE, budgets=BUDGETS,
                          seeds=2, noise=0.02, rng=rng)
    first, second = (analyze(table, n_resamples=50, seed=3).fits["hstu"] for _ in range(2))
    assert first.intervals == second.intervals
    other = analyze(table, n_resamples=50, seed=4).fits["hstu"]
    assert other.intervals != first.intervals


def test_case_bootstrap_without_seed_replicates():
    rng = np.random.default_rng(2)
    table = results_table(saturating(E, A, ALPHA), family="hstu", sizes=ONE_SIZE, budgets=BUDGETS, noise=0.01, rng=rng)
    fit = analyze(table, n_resamples=100).fits["hstu"]
    assert "no seed replicates" in fit.scheme
    assert fit.n_valid > 90  # a resample with fewer than 4 distinct budgets is dropped, and rare here
    assert fit.exponent_interval("saturating").low < fit.saturating.alpha < fit.exponent_interval("saturating").high


def test_trials_table_keeps_the_best_size_per_budget():
    small = results_table(saturating(E, A, ALPHA), family="hstu", sizes={"hstu-s": 1e6}, budgets=BUDGETS)
    worse = results_table(saturating(E * 2, A, ALPHA), family="hstu", sizes={"hstu-l": 1e8}, budgets=BUDGETS)
    fit = analyze(pd.concat([small, worse]), n_resamples=10).fits["hstu"]
    assert set(fit.best_sizes) == {"hstu-s"}
    assert fit.saturating.E == pytest.approx(E, rel=0.01)


def test_batched_lbfgs_reaches_scipy_minimum():
    """Each batched fit is at least as good as scipy's L-BFGS-B run per problem from a grid."""
    from scipy.optimize import minimize

    from analysis.optimize import logsumexp_terms_objective

    rng = np.random.default_rng(11)
    log_c = np.log(BUDGETS)
    log_q = np.log(E + A * BUDGETS**-ALPHA)[None, :] + rng.normal(0, 0.02, (5, len(BUDGETS)))
    w = np.ones_like(log_q)
    ours = fit_batch("saturating", log_c, log_q, w)
    x = (log_c - log_c.mean())[:, None]
    for i in range(len(log_q)):
        objective = logsumexp_terms_objective(x[None], log_q[i : i + 1], w[i : i + 1])

        def fun(p):
            value, grad = objective(p[None], np.array([0]))
            return value[0], grad[0]

        e, amp, alpha = ours[i]
        mine = fun(np.array([np.log(e), np.log(amp) - alpha * log_c.mean(), alpha]))[0]
        best = min(
            minimize(fun, [e0, 0.0, a0], jac=True, method="L-BFGS-B", options={"gtol": 1e-12, "ftol": 1e-15}).fun
            for e0 in np.log([0.1, 1.0, 1.9]) for a0 in (0.1, 0.5, 1.0)
        )
        assert mine <= best * (1 + 1e-6) + 1e-12
