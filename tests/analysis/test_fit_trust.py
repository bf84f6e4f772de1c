"""Fits a researcher can trust: each trial at its own coordinates, the best basin as the point
estimate, undetermined fits said as such, the data-constrained law and Chinchilla's approaches."""
import json

import numpy as np
import pandas as pd
import pytest

from analysis.data_constrained import R_STAR_GRID, effective_tokens
from analysis.optimize import lbfgs_batch, logsumexp_terms_objective
from analysis.study import analyze
from tests.analysis.synth import chinchilla, results_table, saturating
from tests.analysis.test_isoflop import LAW as CHINCHILLA, isoflop_sweep
from tests.analysis.test_report import run_cli

E, A, ALPHA = 2.0, 3e4, 0.3
BUDGETS = np.logspace(13, 18, 8)
ONE_SIZE = {"hstu-s": 1e6}


def overshot(table: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Each trial's final row spends 0 to 8% more than its budget, as a last step crossing it does,
    and its metric follows the law at the FLOPs it spent."""
    table = table.copy()
    final = table["eval_kind"].eq("final")
    over = 1.0 + rng.uniform(0.0, 0.08, final.sum())
    table.loc[final, "flops"] = table.loc[final, "budget"] * over
    table.loc[final, "test/nll"] = E + A * table.loc[final, "flops"] ** -ALPHA
    return table


def test_each_trial_is_fitted_at_the_flops_it_spent():
    table = overshot(results_table(saturating(E, A, ALPHA), family="hstu", sizes=ONE_SIZE, budgets=BUDGETS, seeds=2),
                     np.random.default_rng(0))
    fit = analyze(table, n_resamples=10).fits["hstu"]
    # Keyed on the nominal budgets, overshoots of up to 8% would bend alpha by several percent.
    assert fit.saturating.alpha == pytest.approx(ALPHA, rel=1e-3)
    assert fit.saturating.E == pytest.approx(E, rel=1e-3)
    assert len(fit.point_flops) == 2 * len(BUDGETS)
    np.testing.assert_allclose(np.sort(fit.point_flops),
                               np.sort(table.loc[table["eval_kind"].eq("final"), "flops"].to_numpy()))


def test_rounded_budgets_fit_the_same_as_the_runs_they_hold():
    rng = np.random.default_rng(1)
    table = overshot(results_table(saturating(E, A, ALPHA), family="hstu", sizes=ONE_SIZE, budgets=BUDGETS, seeds=2,
                                   noise=0.01, rng=rng), rng)
    rounded = table.assign(budget=table["budget"].map(lambda c: float(f"{c:.1g}")))
    exact, coarse = (analyze(t, n_resamples=200, seed=5).fits["hstu"] for t in (table, rounded))
    assert exact.saturating == coarse.saturating
    assert exact.intervals == coarse.intervals


def two_basin_quality(n, d, c):
    """Fast early gains (E = 5, alpha = 0.5) over the four smallest budgets, then a slow law."""
    fast = 5.0 + 2.5e6 * c**-0.5
    slow = 3.0 + 4.5 * 1e12**0.05 * c**-0.05
    return np.where(c < 1e13 * 1.5, fast, slow)


def test_point_estimate_is_the_best_basin_and_lies_in_its_interval():
    budgets = np.logspace(12, 15, 8)
    table = results_table(two_basin_quality, family="hstu", sizes=ONE_SIZE, budgets=budgets, seeds=2, noise=0.002,
                          rng=np.random.default_rng(3))
    fit = analyze(table, n_resamples=200).fits["hstu"]
    # Random starts find the two basins: one with alpha near 2, one with alpha below 0.1.
    log_c = np.log(fit.point_flops)
    x = (log_c - log_c.mean())[:, None]
    log_q = np.log(fit.point_losses)
    n = 400
    rng = np.random.default_rng(0)
    starts = np.stack([np.log(rng.uniform(0.001, 0.99, n) * fit.point_losses.min()), rng.uniform(-3, 3, n),
                       rng.uniform(0.01, 2, n)], axis=1)
    objective = logsumexp_terms_objective(np.broadcast_to(x[None], (n,) + x.shape), np.broadcast_to(log_q, (n, len(x))),
                                          np.ones((n, len(x))), fit.huber_delta)
    found, loss = lbfgs_batch(objective, starts)  # the iterations the fit itself allows
    steep, shallow = found[:, 2] > 1.0, found[:, 2] < 0.15
    assert steep.any() and shallow.any()
    best_steep, best_shallow = loss[steep].min(), loss[shallow].min()
    assert best_steep < 0.9 * best_shallow  # two basins, the steep one clearly better
    law = fit.saturating
    ours = objective(np.array([[np.log(law.E), np.log(law.A) - law.alpha * log_c.mean(), law.alpha]]), np.array([0]))
    assert ours[0][0] <= best_steep * (1 + 1e-6)
    for name in ("E", "A", "alpha"):
        assert fit.intervals[f"saturating.{name}"].contains(getattr(law, name)), name


def test_undetermined_fit_is_said_so_in_fits_json_report_and_console(tmp_path, capsys):
    rng = np.random.default_rng(4)
    # A pure power law: nothing to saturate towards, so the saturating law's E runs to 0.
    table = results_table(saturating(0.0, 60.0, 0.08), family="sasrec", sizes=ONE_SIZE, budgets=BUDGETS, seeds=2,
                          noise=0.01, rng=rng)
    path = tmp_path / "results.parquet"
    table.to_parquet(path)
    assert run_cli(["fit", str(path), "--bootstrap", "100"]) == 0
    out = capsys.readouterr().out
    assert "not determined" in out and "sasrec Q = E + A C^-alpha: E's interval" in out and "decades" in out
    fits = json.loads((tmp_path / "fits.json").read_text())["fits"]["sasrec"]
    assert any(reason.startswith("E's interval") for reason in fits["undetermined"]["saturating"])
    assert fits["undetermined"]["power"] == []  # the pure power law itself is pinned down
    # A saturating law with a clear floor is determined.
    clear = analyze(results_table(saturating(E, A, ALPHA), family="hstu", sizes=ONE_SIZE, budgets=BUDGETS, seeds=2,
                                  noise=0.01, rng=rng), n_resamples=100).fits["hstu"]
    assert clear.undetermined["saturating"] == ()


def test_comparison_says_when_it_rests_on_an_undetermined_fit():
    rng = np.random.default_rng(5)
    table = pd.concat([
        results_table(saturating(E, A, ALPHA), family="hstu", sizes=ONE_SIZE, budgets=BUDGETS, seeds=2, noise=0.01,
                      rng=rng),
        results_table(saturating(0.0, 60.0, 0.08), family="dlrm", sizes={"dlrm-s": 1e6}, budgets=BUDGETS, seeds=2,
                      noise=0.01, rng=rng),
    ])
    result = analyze(table, n_resamples=100)
    (caveat,) = result.comparison.caveats
    assert caveat.startswith("dlrm's saturating law is not determined")
    from analysis.report import build_blocks

    text = json.dumps(build_blocks(result, {}), default=str)
    assert "comparison rests on a fit the data do not determine" in text


def test_three_approaches_agree_on_a_chinchilla_law():
    result = analyze(isoflop_sweep(seeds=2, noise=0.003, rng=np.random.default_rng(6)), n_resamples=100)
    agreement = result.approaches["hstu"]
    names = [e.approach for e in agreement.estimates]
    assert names == ["envelope of final points", "IsoFLOP profiles", "parametric L(N, D)"]
    truth = CHINCHILLA["beta"] / (CHINCHILLA["alpha"] + CHINCHILLA["beta"])
    parametric = agreement.estimates[2]
    assert parametric.exponent == pytest.approx(truth, abs=0.02)
    assert agreement.agree
    assert "agree" in agreement.summary


def test_data_constrained_law_finds_how_long_repeated_data_pays():
    r_star, unique = float(R_STAR_GRID[4]), 3e5  # every trial has the same 3e5 unique examples
    law = dict(E=1.69, A=406.4, alpha=0.34, B=410.7, beta=0.28)

    def quality(n, d, c):
        epochs = d / unique
        return chinchilla(**law)(n, effective_tokens(d, epochs, r_star), c)

    sizes = {f"hstu-{i}": n for i, n in enumerate(np.logspace(5, 6.5, 4))}
    table = results_table(quality, family="hstu", sizes=sizes, budgets=np.logspace(11, 13.5, 6))
    table["epochs"] = table["tokens"] / unique
    assert (table["epochs"] > 4).any() and (table["epochs"] <= 4).any()
    fit = analyze(table, n_resamples=20).data_constrained["hstu"]
    assert fit.r_star == pytest.approx(r_star)
    assert fit.law.beta == pytest.approx(law["beta"], rel=0.05)
    assert fit.n_past_limit == int((table.loc[table["eval_kind"].eq("final"), "epochs"] > 4).sum())
    few = table.assign(epochs=table["epochs"].clip(upper=3.0))
    (refusal,) = [r for r in analyze(few, n_resamples=10).refusals if r.analysis.startswith("data-constrained")]
    assert "needs trials on both sides of 4 epochs" in refusal.message


def test_amplitudes_are_judged_where_the_data_are():
    from analysis.bootstrap import percentile_interval
    from analysis.determinacy import judged_at_the_data, undetermined_reasons

    rng = np.random.default_rng(7)
    alpha = rng.normal(0.25, 0.04, 1000)
    centre = np.log(1e13)
    # The term at the data's centre is known to 5%; A itself (the term at C = 1) spans decades.
    amplitude = 0.5 * np.exp(rng.normal(0, 0.03, 1000)) * np.exp(alpha * centre)
    samples = np.stack([np.full(1000, 5.0), amplitude, alpha], axis=1)
    names = ("E", "A", "alpha")
    intervals = {name: percentile_interval(samples[:, j]) for j, name in enumerate(names)}
    assert np.log10(intervals["A"].high / intervals["A"].low) > 1
    point = np.array([5.0, 0.5 * np.exp(0.25 * centre), 0.25])
    judged = judged_at_the_data(names, point, samples, intervals, {"A": ("alpha", "C", centre)})
    assert undetermined_reasons(judged, names, {}) == ()
    # SASRec's law in the ML-1M report: A = 1.7e10 [1.6e4, 1.4e31], with an exponent just as loose.
    loose = samples.copy()
    loose[:, 2] = rng.uniform(0.05, 1.5, 1000)
    loose[:, 1] = 0.5 * np.exp(rng.normal(0, 2.0, 1000)) * np.exp(loose[:, 2] * centre)
    intervals = {name: percentile_interval(loose[:, j]) for j, name in enumerate(names)}
    reasons = undetermined_reasons(judged_at_the_data(names, point, loose, intervals, {"A": ("alpha", "C", centre)}),
                                   names, {})
    assert any(r.startswith("A (as A C^-alpha at C = 1e+13)'s interval") for r in reasons)
    assert any(r.startswith("alpha's interval") for r in reasons)


def test_report_names_the_evaluation_protocol_and_warns_when_trials_differ():
    from analysis.report import build_blocks

    base = results_table(saturating(E, A, ALPHA), family="hstu", sizes=ONE_SIZE, budgets=BUDGETS)

    def text(table):
        return json.dumps(build_blocks(analyze(table, n_resamples=5), {}), default=str)

    assert "Evaluation protocol: not recorded" in text(base)
    assert "Evaluation protocol: `full` (the target ranked against the whole catalog)" in text(
        base.assign(eval_protocol="full"))
    mixed = base.assign(eval_protocol=np.where(base["budget"] > 1e16, "sampled-100", "full"))
    assert "**Evaluation protocols differ between trials (`full`, `sampled-100`)**" in text(mixed)
