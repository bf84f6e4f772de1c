"""What the report shows a researcher: measured curves even with nothing fitted, fitted laws with
their legend outside, the task's other metrics, the trials with N, tokens, epochs and learning rate,
and a caption under every figure."""
import html
import json

import numpy as np
import pandas as pd
import pytest

from analysis import tables
from analysis.family import MIN_BUDGETS
from analysis.plots import MIN_WIDTH_IN, all_figures
from analysis.report import write_report
from analysis.study import analyze
from tests.analysis.synth import chinchilla, failed_trial, results_table
from tests.analysis.test_report import run_cli

LAW = chinchilla(E=1.69, A=406.4, alpha=0.34, B=410.7, beta=0.28)
SIZES = {"hstu-0": 1e6, "hstu-1": 1e7, "hstu-2": 1e8}
PAST_EPOCHS_TRIAL = "hstu-0-C1e+18-seed0-peak_lr0.001"


def sweep_table(budgets: np.ndarray, sizes: dict[str, float] = SIZES) -> pd.DataFrame:
    """Two seeds per size; HR@10 and NDCG@10 that differ by trial, and epochs = tokens / 1e9 up to 3
    but for one trial, past 4 epochs."""
    table = results_table(LAW, family="hstu", sizes=sizes, budgets=budgets, seeds=2, noise=0.01,
                          rng=np.random.default_rng(3), setting={"peak_lr": 1e-3})
    table["test/hr@10"] = 0.5 - table["test/nll"].fillna(0) / 100
    table["test/ndcg@10"] = table["test/hr@10"] / 2
    table["epochs"] = np.minimum(table["tokens"] / 1e9, 3.0)
    table.loc[table["trial_id"] == PAST_EPOCHS_TRIAL, "epochs"] = 6.5
    return table


@pytest.fixture(scope="module")
def fitted():
    table = sweep_table(np.logspace(15, 18, 4))
    table = table.assign(flops=table["flops"] * np.where(table["seed"] == 1, 1.05, 1.0))  # overshoots differ by seed
    return analyze(table, n_resamples=20)


@pytest.fixture(scope="module")
def report_dir(fitted, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    write_report(fitted, out)
    return out


def png_width(path) -> int:
    return int.from_bytes(path.read_bytes()[16:20], "big")  # the IHDR chunk's width field


def test_every_figure_is_wide_and_captioned_in_markdown_and_html(fitted, report_dir):
    figures = all_figures(fitted)
    assert list(figures) == ["quality_vs_flops", "metrics_vs_flops", "fitted_laws", "residuals", "isoflop", "frontier"]
    md, page = (report_dir / "report.md").read_text(), (report_dir / "report.html").read_text()
    for stem, drawn in figures.items():
        assert png_width(report_dir / f"{stem}.png") >= 1200 and MIN_WIDTH_IN * 110 >= 1200
        assert f"![{stem}]({stem}.png)\n\n*{drawn.caption}*" in md
        assert f"<figcaption>{html.escape(drawn.caption)}</figcaption>" in page
    laws = figures["fitted_laws"].caption
    assert "90% pointwise bootstrap band (20 resamples)" in laws and "2 seeds per point" in laws
    assert "Measurements only" in figures["quality_vs_flops"].caption


def test_legends_sit_outside_every_plot_area(fitted):
    for stem, drawn in all_figures(fitted).items():
        fig = drawn.figure
        fig.draw_without_rendering()
        legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
        assert legends, stem
        for legend in legends:
            box = legend.get_window_extent()
            for ax in fig.axes:
                assert not box.overlaps(ax.get_window_extent()), f"{stem}: legend over a plot"


def test_measured_best_sizes_are_the_fits_and_the_other_metrics_are_their_seed_means(fitted):
    fit = fitted.fits["hstu"]
    best = tables.best_size_table(fitted)
    assert list(best["size"]) == list(fit.best_sizes)
    assert list(best.columns) == ["family", "budget", "size", "seeds", "val/nll (selects)", "test/nll (fitted)",
                                  "test/hr@10", "test/ndcg@10", "epochs"]
    trials = fitted.trials
    top = trials[(trials["size"] == best["size"].iloc[-1]) & (trials["budget"] == best["budget"].iloc[-1])]
    assert best["test/hr@10"].iloc[-1] == pytest.approx(top["test/hr@10"].mean())
    assert best["test/nll (fitted)"].to_numpy() == pytest.approx(fit.losses)
    assert tables.reported_metrics(fitted) == ["test/nll", "test/hr@10", "test/ndcg@10"]


def test_trials_table_shows_n_tokens_epochs_and_rate_and_marks_past_four_epochs(fitted, report_dir):
    trials = tables.trials_for_report(fitted)
    for column in ("N", "tokens", "epochs", tables.EPOCHS_MARK, "peak_lr", "flops"):
        assert column in trials.columns
    marked = trials.loc[trials[tables.EPOCHS_MARK] == "yes", "trial_id"]
    assert list(marked) == [PAST_EPOCHS_TRIAL]
    row = trials[trials["trial_id"] == PAST_EPOCHS_TRIAL].iloc[0]
    assert row["epochs"] == 6.5 and row["peak_lr"] == 1e-3 and row["N"] == 1e6
    md = (report_dir / "report.md").read_text()
    assert "1 trials went past 4 epochs" in md and "Muennighoff et al. 2023" in md
    assert f"| {PAST_EPOCHS_TRIAL} | hstu | hstu-0 | one setting | 0 | 1e+18 | 1e+18 | 1000000 |" in md
    assert "Hollow markers are trials past 4 epochs" in all_figures(fitted)["quality_vs_flops"].caption


def test_a_table_without_epochs_analyses_with_them_unknown():
    table = sweep_table(np.logspace(15, 18, 4)).drop(columns="epochs")
    result = analyze(table, n_resamples=5)
    trials = tables.trials_for_report(result)
    assert trials["epochs"].isna().all() and trials[tables.EPOCHS_MARK].eq("").all()
    assert "Hollow" not in all_figures(result)["quality_vs_flops"].caption


def test_report_with_nothing_fittable_still_shows_the_curves_and_what_is_needed(tmp_path, capsys):
    sweep = tmp_path / "three"
    sweep.mkdir()
    # One size at three budgets: too few budgets for a law, sizes for IsoFLOP and points for L(N, D).
    table = pd.concat([sweep_table(np.logspace(15, 17, 3), {"hstu-0": 1e6}),
                       failed_trial("hstu", "diverged", "loss is NaN at step 3", budget=1e15)])
    table.to_parquet(sweep / "results.parquet")
    assert run_cli(["report", str(sweep), "--bootstrap", "5", "--no-wandb"]) == 0
    out = capsys.readouterr().out
    assert "nothing was fittable: family 'hstu' has usable runs at only 3 budgets" in out
    report = sweep / "report"
    md = (report / "report.md").read_text()
    assert "## What more is needed" in md
    assert f"usable runs at 3 budgets; a law needs at least {MIN_BUDGETS} budgets per family: 1 more budget." in md
    assert (report / "quality_vs_flops.png").exists() and not (report / "fitted_laws.png").exists()
    assert "## Trials" in md and "loss is NaN at step 3" in md
    assert json.loads((report / "fits.json").read_text())["fits"] == {}
    # `fit` keeps refusing the same table
    with pytest.raises(Exception, match="has usable runs at only 3 budgets"):
        run_cli(["fit", str(sweep), "--bootstrap", "5"])


def test_report_of_trials_that_all_failed_lists_them_without_figures(tmp_path):
    table = pd.concat([failed_trial("dlrm", "diverged", "loss is NaN at step 3", budget=c) for c in (1e13, 1e14)])
    result = analyze(table, n_resamples=5)
    paths = write_report(result, tmp_path)
    assert sorted(paths) == ["report.html", "report.md"]
    md = (tmp_path / "report.md").read_text()
    assert "No law could be fitted" in md and md.count("loss is NaN at step 3") == 2


def test_tables_and_curves_hold_only_the_families_analysed():
    other = results_table(LAW, family="dlrm", sizes={"dlrm-0": 1e6}, budgets=np.logspace(15, 18, 4))
    result = analyze(pd.concat([sweep_table(np.logspace(15, 18, 4)), other]), families=["hstu"], n_resamples=5)
    assert set(tables.best_size_table(result)["family"]) == {"hstu"}
    assert set(tables.measured_cells(result)["family"]) == {"hstu"}
    assert set(tables.trials_for_report(result)["family"]) == {"hstu", "dlrm"}  # every trial is still listed
