"""What cannot be fitted is refused with one clear message, never drawn as a curve."""
import numpy as np
import pandas as pd
import pytest

from analysis.results import choose_metric, load_results
from analysis.study import analyze
from scaling.errors import GrscaleError
from tests.analysis.synth import failed_trial, results_table, saturating

LAW = saturating(2.0, 3e4, 0.3)


def refusal(result, analysis="quality vs compute"):
    (message,) = [r.message for r in result.refusals if r.analysis == analysis]
    return message


def test_fewer_than_four_budgets():
    table = results_table(LAW, family="hstu", sizes={"hstu-s": 1e6}, budgets=np.array([1e13, 1e14, 1e15]))
    assert refusal(analyze(table, n_resamples=5)) == (
        "family 'hstu' has usable runs at only 3 budgets (1e+13, 1e+14, 1e+15); a fit needs at least 4"
    )


def test_no_spread_in_compute():
    sizes = {f"hstu-{i}": n for i, n in enumerate([1e5, 1e6, 1e7, 1e8])}
    table = results_table(LAW, family="hstu", sizes=sizes, budgets=np.array([1e14]))
    assert refusal(analyze(table, n_resamples=5)) == (
        "no spread in compute: every usable run of family 'hstu' has C = 1e+14 FLOPs"
    )


def test_all_runs_diverged():
    table = pd.concat([failed_trial("dlrm", "diverged", "loss is NaN at step 3", budget=c) for c in (1e13, 1e14)])
    result = analyze(table, n_resamples=5)
    assert refusal(result, "all") == (
        "all 2 runs of family 'dlrm' diverged, failed or lack the metric; nothing to fit "
        "(see the trials table for their reasons)"
    )
    assert not result.fits
    reasons = result.excluded()["note"].tolist()
    assert reasons == ["diverged: loss is NaN at step 3"] * 2


def test_failed_trials_are_listed_not_dropped():
    table = pd.concat([
        results_table(LAW, family="hstu", sizes={"hstu-s": 1e6}, budgets=np.logspace(13, 17, 5)),
        failed_trial("hstu", "failed", "CUDA out of memory"),
    ])
    result = analyze(table, n_resamples=5)
    assert "hstu" in result.fits
    (row,) = result.excluded().itertuples()
    assert row.status == "failed" and row.note == "failed: CUDA out of memory"


def test_loader_and_argument_errors(tmp_path):
    with pytest.raises(GrscaleError, match="holds no results.parquet or results.csv"):
        load_results(tmp_path)
    pd.DataFrame({"sweep": ["s"]}).to_csv(tmp_path / "results.csv", index=False)
    with pytest.raises(GrscaleError, match="lacks the columns trial_id, family"):
        load_results(tmp_path)
    table = results_table(LAW, family="hstu", sizes={"hstu-s": 1e6}, budgets=np.logspace(13, 17, 5))
    with pytest.raises(GrscaleError, match="metric 'test/auc' is not in the table"):
        analyze(table, metric="test/auc")
    with pytest.raises(GrscaleError, match="family dlrm not in the table; it has hstu"):
        analyze(table, families=["dlrm"])


def test_metric_direction_is_declared_not_guessed():
    table = results_table(LAW, family="hstu", sizes={"hstu-s": 1e6}, budgets=np.logspace(13, 17, 5))
    table["test/coverage"] = table["test/nll"]
    with pytest.raises(GrscaleError, match=r"^metric 'test/coverage' has no known direction: pass --lower-is-better "
                                           r"or --higher-is-better$"):
        choose_metric(table, "test/coverage")
    assert choose_metric(table, "test/coverage", higher=True).fitted == "1 - test/coverage"
    assert choose_metric(table, "test/coverage", higher=False).fitted == "test/coverage"
    with pytest.raises(GrscaleError, match=r"^test/nll is lower-is-better, but --higher-is-better says it is "
                                           r"higher-is-better$"):
        choose_metric(table, "test/nll", higher=True)
    assert choose_metric(table, "test/ndcg@10", higher=True).fitted == "1 - test/ndcg@10"


def test_loss_is_lower_is_better_and_fitted_as_it_is():
    table = results_table(LAW, family="hstu", sizes={"hstu-s": 1e6}, budgets=np.logspace(13, 18, 8), metric="test/loss")
    result = analyze(table, metric="test/loss", n_resamples=5)
    assert (result.metric.higher_is_better, result.metric.fitted) == (False, "test/loss")
    assert result.fits["hstu"].saturating.E == pytest.approx(2.0, rel=0.01)
