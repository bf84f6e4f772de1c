"""Settings and sizes are chosen on validation, the test metric is what is fitted: values, not just shapes."""
import numpy as np
import pandas as pd
import pytest

from analysis.bootstrap import (
    Points, as_measured, best_per_budget, centred_on_curve, huber_delta, percentile_interval, resample, residual_dof,
    small_sample_widening,
)
from analysis.family import fit_forms
from analysis.powerlaw import fit_batch, predict_log
from analysis.report import build_blocks
from analysis.results import choose_metric, setting_labels, trial_table
from analysis.study import analyze
from analysis.tables import best_size_table, setting_table
from scaling.errors import GrscaleError
from tests.analysis.synth import results_table, saturating

BUDGETS = np.logspace(13, 18, 6)
ONE_SIZE = {"hstu-s": 1e6}
GOOD, BAD = saturating(2.0, 3e4, 0.3), saturating(2.4, 3e4, 0.3)


def two_settings(winner: dict, loser: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The trials of setting `winner`, better on validation and worse on test than those of `loser`;
    3 noisy seeds each."""
    common = dict(family="hstu", sizes=ONE_SIZE, budgets=BUDGETS, seeds=3, noise=0.02, rng=np.random.default_rng(1))
    return (results_table(BAD, validation=GOOD, setting=winner, **common),
            results_table(GOOD, validation=BAD, setting=loser, **common))


def final_means(table: pd.DataFrame, column: str) -> pd.Series:
    return table[table["eval_kind"] == "final"].groupby("budget")[column].mean()


@pytest.mark.parametrize("winner, loser, label, runner_up", [
    ({"peak_lr": 1e-3}, {"peak_lr": 3e-3}, "lr 1e-3", "lr 3e-3"),
    ({"variant": "paper"}, {"variant": "grscale"}, "variant paper", "variant grscale"),
])
def test_setting_that_wins_on_validation_is_fitted_on_its_own_seeds(winner, loser, label, runner_up):
    alone, other = two_settings(winner, loser)
    table = pd.concat([alone, other], ignore_index=True)
    result = analyze(table, n_resamples=200, seed=7)
    fit = result.fits["hstu"]
    final = alone[alone["eval_kind"] == "final"]
    # The winner's test means, seeds in table order, as the fits average them.
    expected = [np.mean(g.to_numpy()) for _, g in final.groupby("budget")["test/nll"]]
    np.testing.assert_array_equal(fit.losses, expected)
    assert set(fit.best_settings) == {label}
    # Intervals from the winner's seeds only: the same as a table that never held the loser.
    only = analyze(alone, n_resamples=200, seed=7).fits["hstu"]
    assert fit.intervals == only.intervals
    for form in fit.samples:
        np.testing.assert_array_equal(fit.samples[form], only.samples[form])
    # Averaging the two settings as seeds would have fitted other points.
    assert not np.allclose(fit.losses, final_means(table, "test/nll"), rtol=1e-3)
    assert len(result.settings) == len(BUDGETS)
    won, lost = final_means(alone, "val/nll"), final_means(other, "val/nll")
    for cell in result.settings:
        assert (cell.chosen, cell.runner_up, cell.settings, cell.seeds) == (label, runner_up, 2, 3)
        assert (cell.chosen_value, cell.runner_up_value) == pytest.approx((won[cell.budget], lost[cell.budget]))
        assert cell.gap == pytest.approx(lost[cell.budget] - won[cell.budget])
        assert cell.at_edge == ("peak_lr" in winner)


def test_best_size_per_budget_is_chosen_on_validation():
    # hstu-l wins on test at every budget but loses on validation: hstu-s must be chosen.
    small = results_table(BAD, validation=GOOD, family="hstu", sizes={"hstu-s": 1e6}, budgets=BUDGETS)
    large = results_table(GOOD, validation=BAD, family="hstu", sizes={"hstu-l": 1e8}, budgets=BUDGETS)
    table = pd.concat([small, large], ignore_index=True)
    fit = analyze(table, n_resamples=10).fits["hstu"]
    assert fit.best_sizes == ("hstu-s",) * len(BUDGETS)
    np.testing.assert_allclose(fit.losses, BAD(0, 0, BUDGETS), rtol=1e-12)
    np.testing.assert_allclose(fit.best_selection, GOOD(0, 0, BUDGETS), rtol=1e-12)
    on_test = analyze(table, n_resamples=10, select_on="test").fits["hstu"]
    assert on_test.best_sizes == ("hstu-l",) * len(BUDGETS)


def test_bootstrap_redoes_the_size_choice_on_resampled_validation_pairs():
    # Two sizes at one budget, two seeds each: "s" wins on its measured validation mean (1.075 < 1.1).
    # A resample redraws every trial as its cell's mean plus a pooled (validation, test) residual
    # pair; where s's redrawn validation mean exceeds l's, the budget goes to "l".
    points = Points(
        family="hstu", size=np.array(["s", "l"], dtype=object), budget=np.array([1e13, 1e13]),
        setting=np.array(["one setting"] * 2, dtype=object), cell=np.array([0, 0, 1, 1]), flops=np.full(4, 1e13),
        tokens=np.array([1e6, 1e6, 1e4, 1e4]), n_params=np.array([1e6, 1e6, 1e8, 1e8]), epochs=np.full(4, np.nan),
        loss=np.array([4.0, 6.0, 3.0, 3.0]), selection=np.array([0.9, 1.25, 1.1, 1.1]),
    )
    batch = resample(points, 400, np.random.default_rng(0))
    assert "residual bootstrap" in batch.scheme and "widened 1.775x for the 2 degrees of freedom" in batch.scheme
    # Each trial's pair is one pooled trial's: the log residuals from the cell means move in step.
    mean_v = np.log([24**0.5, 24**0.5, 3.0, 3.0])
    mean_s = np.log([(0.9 * 1.25) ** 0.5, (0.9 * 1.25) ** 0.5, 1.1, 1.1])
    ratio = np.log(4.0 / 24**0.5) / np.log(0.9 / (0.9 * 1.25) ** 0.5)
    np.testing.assert_allclose(np.log(batch.values[1:]) - mean_v, ratio * (np.log(batch.selection[1:]) - mean_s),
                               atol=1e-12)
    # Residuals of a 2-seed cell are widened by sqrt(2) (the noise, not its spread about the mean), and
    # by Student's t over the normal quantile for the 2 degrees of freedom the two cells give (2.920 / 1.645).
    assert residual_dof(points) == 2
    assert np.abs(np.log(batch.values[1:]) - mean_v).max() == pytest.approx(
        2.919986 / 1.644854 * np.sqrt(2) * np.log(24**0.5 / 4), rel=1e-5)
    best = best_per_budget(points, batch)
    assert best.chosen[0, 0] == 0 and best.values[0, 0] == 5.0  # row 0: the data as measured
    picks_l = batch.selection[1:, 2:].mean(axis=1) < batch.selection[1:, :2].mean(axis=1)
    assert 0 < picks_l.sum() < 400
    np.testing.assert_array_equal(best.chosen[1:, 0], np.where(picks_l, 1, 0))
    chosen_values = np.where(picks_l, batch.values[1:, 2:].mean(axis=1), batch.values[1:, :2].mean(axis=1))
    np.testing.assert_allclose(best.values[1:, 0], chosen_values)
    np.testing.assert_array_equal(best.weights[1:] > 0, np.where(picks_l[:, None], [0, 0, 1, 1], [1, 1, 0, 0]) > 0)


def test_validation_value_is_taken_at_the_best_step():
    table = results_table(GOOD, family="hstu", sizes=ONE_SIZE, budgets=BUDGETS[:2])
    metric = choose_metric(table, None)
    val_rows = table[table["eval_kind"] == "val"].set_index("trial_id")["val/nll"]
    final_rows = table[table["eval_kind"] == "final"].set_index("trial_id")["val/nll"]
    at_end = trial_table(table, metric).set_index("trial_id")["validation"]
    pd.testing.assert_series_equal(at_end, final_rows, check_names=False)
    earlier = table.assign(best_step=table["best_step"].where(table["eval_kind"] != "final", 50))
    at_best = trial_table(earlier, metric).set_index("trial_id")["validation"]
    pd.testing.assert_series_equal(at_best, val_rows, check_names=False)
    missing = trial_table(table.drop(columns="best_step"), metric).set_index("trial_id")["validation"]
    pd.testing.assert_series_equal(missing, final_rows, check_names=False)


def test_leave_last_out_refuses_selection_unless_select_on_test():
    sizes = {"hstu-s": 1e6, "hstu-l": 1e8}
    table = results_table(GOOD, family="hstu", sizes=sizes, budgets=BUDGETS, columns={"split": "leave-last-out"})
    with pytest.raises(GrscaleError) as error:
        analyze(table, n_resamples=5)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("cannot select on validation: split 'leave-last-out' has no validation set apart "
                              "from test, and the table has 6 budgets with several sizes to choose between")
    assert "pass --select-on test" in message
    flagged = analyze(table, n_resamples=5, select_on="test")
    assert (flagged.selection.select_on, flagged.selection.source, flagged.selection.column) == (
        "test", "from --select-on", "test/nll")
    from_spec = analyze(table.assign(select_on="test"), n_resamples=5)
    assert from_spec.selection.source == "from the table's select_on column"
    first = build_blocks(from_spec, {})[1]
    assert first[0] == "p" and first[1].startswith("**Selected on test.** select_on is `test` (from the table's "
                                                   "select_on column)")
    # One size and one setting: nothing is selected, so nothing is refused.
    alone = results_table(GOOD, family="hstu", sizes=ONE_SIZE, budgets=BUDGETS, columns={"split": "leave-last-out"})
    assert analyze(alone, n_resamples=5).selection.select_on == "validation"


def test_several_settings_without_validation_values_are_refused():
    table = pd.concat(two_settings({"peak_lr": 1e-3}, {"peak_lr": 3e-3}), ignore_index=True)
    with pytest.raises(GrscaleError, match=r"^cannot select on validation: the table has no val/nll values, and it "
                                           r"has 6 \(family, size, budget\) cells with several settings"):
        analyze(table.drop(columns="val/nll"), n_resamples=5)
    with pytest.raises(GrscaleError, match="select_on column holds test and validation: pass --select-on"):
        analyze(table.assign(select_on=np.where(table["peak_lr"] > 2e-3, "test", "validation")), n_resamples=5)


def test_learning_rate_at_the_edge_of_its_grid_is_flagged():
    parts = []
    for lr, val_scale in ((1e-3, 1.2), (3e-3, 1.0), (1e-2, 1.1)):  # 3e-3 wins at every budget but the largest
        def validation(n, d, c, s=val_scale):
            return (0.9 if (s == 1.1 and c > BUDGETS[-2]) else s) * GOOD(n, d, c)

        parts.append(results_table(GOOD, validation=validation, family="hstu", sizes=ONE_SIZE, budgets=BUDGETS,
                                   seeds=2, setting={"peak_lr": lr}))
    result = analyze(pd.concat(parts, ignore_index=True), n_resamples=5)
    chosen = {c.budget: (c.chosen, c.at_edge) for c in result.settings}
    assert chosen == {**{b: ("lr 3e-3", False) for b in BUDGETS[:-1]}, BUDGETS[-1]: ("lr 1e-2", True)}
    table = setting_table(result)
    assert table["note"].tolist() == [""] * 5 + ["at the edge of its grid: the best rate may lie outside it"]
    assert table.loc[5, "runner_up"] == "lr 3e-3"
    assert table.loc[5, "gap"] == pytest.approx(0.1 * GOOD(0, 0, BUDGETS[-1]), rel=1e-9)
    (unsupported,) = [b for b in build_blocks(result, {}) if b[0] == "ul"][1:]
    assert "hstu hstu-s at C = 1e+18: the chosen lr 1e-2 is at the edge of its grid: the best rate may lie outside " \
           "it." in unsupported[1]


@pytest.mark.parametrize("edge_scale, flat", [(0.999, True), (0.9, False)])
def test_an_edge_choice_within_the_seed_noise_of_the_next_rate_is_called_flat(edge_scale, flat):
    # lr 1e-2, the top of the grid, is better than 3e-3 by 0.1% (inside 2% seed noise) or by 10% (outside it).
    rng = np.random.default_rng(3)
    parts = [results_table(GOOD, validation=lambda n, d, c, s=scale: s * GOOD(n, d, c), family="hstu",
                           sizes=ONE_SIZE, budgets=BUDGETS[:1], seeds=3, noise=0.02, rng=rng, setting={"peak_lr": lr})
             for lr, scale in ((1e-3, 1.2), (3e-3, 1.0), (1e-2, edge_scale))]
    table = pd.concat(parts, ignore_index=True)
    (cell,) = analyze(table, n_resamples=5).settings
    final = table[table["eval_kind"] == "final"]
    by_rate = final.groupby("peak_lr")["val/nll"]
    means, variances = by_rate.mean(), by_rate.var()
    assert (cell.chosen, cell.at_edge, cell.flat_edge) == ("lr 1e-2", True, flat)
    assert cell.edge_gap == pytest.approx(means[3e-3] - means[1e-2])
    assert cell.edge_noise == pytest.approx(2 * np.sqrt((variances[3e-3] + variances[1e-2]) / 3))
    note = setting_table(analyze(table, n_resamples=5))["note"].item()
    assert note.startswith("at the edge of its grid, but flat there") == flat
    assert note == "at the edge of its grid: the best rate may lie outside it" or flat


def test_best_size_table_shows_the_validation_value_that_chose_each_point():
    table = results_table(BAD, validation=GOOD, family="hstu", sizes=ONE_SIZE, budgets=BUDGETS, metric="test/hr@10")
    result = analyze(table, metric="test/hr@10", n_resamples=5)
    best = best_size_table(result)
    # one setting: no setting column; the task's other reported metric beside the fitted one
    assert list(best.columns) == ["family", "budget", "size", "seeds", "val/hr@10 (selects)", "test/hr@10 (fitted)",
                                  "test/ndcg@10", "epochs"]
    np.testing.assert_allclose(best["val/hr@10 (selects)"], 1.0 - GOOD(0, 0, BUDGETS), rtol=1e-12)
    np.testing.assert_allclose(best["test/hr@10 (fitted)"], 1.0 - BAD(0, 0, BUDGETS), rtol=1e-12)


def test_setting_labels_name_the_columns_that_vary():
    frame = pd.DataFrame({"peak_lr": [1e-3, 3.16e-3, 1e-3], "schedule": ["cosine"] * 3,
                          "variant": ["paper", "paper", "grscale"], "overrides": ["{}"] * 3})
    assert setting_labels(frame).tolist() == ["lr 1e-3, variant paper", "lr 3.16e-3, variant paper",
                                              "lr 1e-3, variant grscale"]
    assert setting_labels(frame.iloc[:1]).tolist() == ["one setting"]
    assert setting_labels(pd.DataFrame({"seed": [0, 1]})).tolist() == ["one setting"] * 2



def test_small_sample_widening_is_students_t_over_the_normal_quantile():
    # Reference quantiles (Student's tables): t_8 at 0.95 is 1.8595, t_30 1.6973; the normal's 1.6449.
    assert small_sample_widening(8, 0.9) == pytest.approx(1.859548 / 1.644854, rel=1e-6)
    assert small_sample_widening(30, 0.9) == pytest.approx(1.697261 / 1.644854, rel=1e-6)
    assert small_sample_widening(8, 0.95) == pytest.approx(2.306004 / 1.959964, rel=1e-6)
    assert small_sample_widening(0, 0.9) == 1.0  # no replicates: nothing estimated, nothing widened


def test_huber_threshold_follows_the_noise_the_seeds_measure():
    def points(loss):
        cells = len(loss) // 2
        return Points(family="hstu", size=np.array(["s"] * cells, dtype=object), budget=np.logspace(12, 13, cells),
                      setting=np.array(["one setting"] * cells, dtype=object), cell=np.repeat(np.arange(cells), 2),
                      flops=np.ones(len(loss)), tokens=np.ones(len(loss)), n_params=np.ones(len(loss)),
                      epochs=np.full(len(loss), np.nan), loss=np.asarray(loss), selection=np.asarray(loss))

    # Log residuals +-0.01 and +-0.02 about the cell means, widened by sqrt(2): RMS sqrt(0.0005).
    replicated = points(np.exp([1.01, 0.99, 2.02, 1.98]))
    assert huber_delta(replicated) == pytest.approx(1.345 * np.sqrt(0.0005), rel=1e-9)
    assert resample(replicated, 5, np.random.default_rng(0)).huber_delta == huber_delta(replicated)
    # One seed per cell: no noise measured, Chinchilla's threshold.
    single = Points(**{**replicated.__dict__, "cell": np.arange(4), "size": np.array(["s"] * 4, dtype=object),
                       "budget": np.logspace(12, 13, 4), "setting": np.array(["one setting"] * 4, dtype=object)})
    assert huber_delta(single) == 1e-3 and resample(single, 5, np.random.default_rng(0)).huber_delta == 1e-3


def test_a_curved_laws_resamples_are_centred_on_its_fitted_curve():
    # 2 seeds at 8 budgets of a saturating law, 1% noise: each cell's mean sits off the curve by its
    # own noise, which a resample centred on the cell means carries into every refit.
    rng = np.random.default_rng(4)
    budgets, cell = np.logspace(12, 15, 8), np.repeat(np.arange(8), 2)
    loss = (5.5 + 2000.0 * budgets[cell] ** -0.25) * np.exp(0.01 * rng.normal(size=16))
    points = Points(family="hstu", size=np.array(["s"] * 8, dtype=object), budget=budgets,
                    setting=np.array(["one setting"] * 8, dtype=object), cell=cell, flops=budgets[cell],
                    tokens=budgets[cell], n_params=np.ones(16), epochs=np.full(16, np.nan), loss=loss,
                    selection=loss)
    batch = resample(points, 300, np.random.default_rng(4))
    best = best_per_budget(points, batch)
    log_c = np.log(points.flops)
    params = fit_forms(points, batch, best)
    measured = fit_batch("saturating", log_c, np.log(loss)[None], np.ones((1, 16)), delta=batch.huber_delta)
    np.testing.assert_allclose(params["saturating"][0], measured[0], rtol=1e-6)
    curve = predict_log("saturating", measured, log_c)[0]
    centred = centred_on_curve(batch, curve, np.arange(16) != 5)  # trial 5 left where it is
    np.testing.assert_array_equal(centred[0], loss)  # row 0: the data as measured
    # Every other trial keeps its drawn residual, now about the curve rather than its cell's mean.
    moved = np.log(centred[1:]) - np.where(np.arange(16) != 5, curve, batch.centres)
    np.testing.assert_allclose(moved, np.log(batch.values[1:]) - batch.centres, atol=1e-12)
    # The straight-line forms are fitted to the batch as drawn.
    np.testing.assert_array_equal(params["power"], fit_batch("power", log_c, np.log(batch.values), best.weights))

    # Resamples about the curve scatter about the point estimate; about the cell means, about a law
    # shifted by the means' own noise (here by 7% of E's interval).
    around_means = fit_batch("saturating", log_c, np.log(batch.values), best.weights, delta=batch.huber_delta)
    for j in (0, 2):  # E and alpha
        for rows, most in ((params["saturating"], 0.02), (around_means, None)):
            interval = percentile_interval(rows[1:, j])
            offset = abs(np.median(rows[1:, j]) - rows[0, j]) / (interval.high - interval.low)
            if most is not None:
                assert offset < most
            else:
                assert offset > 0.05
    # The data alone, or a case bootstrap (which redraws the trials themselves): nothing to centre.
    alone = as_measured(points)
    assert centred_on_curve(alone, curve, np.ones(16, dtype=bool)) is alone.values
    distinct = {"cell": np.arange(16), "size": np.array(["s"] * 16, dtype=object),
                "budget": budgets[cell] * (1 + 1e-9 * np.arange(16)),
                "setting": np.array(["one setting"] * 16, dtype=object)}
    single = resample(Points(**{**points.__dict__, **distinct}), 5, rng)
    assert single.centres is None and centred_on_curve(single, curve, np.ones(16, dtype=bool)) is single.values
