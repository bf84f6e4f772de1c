"""`grscale fit|report --from-wandb`, the report run's law series and its link to the dashboard, and the
report's table of trials that missed their budget. W&B runs come from a local RunsSource built as the
trials log them (tests/sweeps/helpers.runs_logged_from); the report run is a real offline W&B run."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import analysis.from_wandb
from analysis.cli import report_sweep
from analysis.tables import law_curves, law_points
from analysis.wandb_log import SCALING_X, law_key
from scaling.cli import main
from scaling.schema import DASHBOARD_FILE, RESULTS_FILE
from tests.analysis.synth import failed_trial, results_table, saturating
from tests.sweeps.helpers import FakeRuns, go_online, read_offline_run, runs_logged_from

BUDGETS = np.logspace(15, 18, 4)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    frames = [results_table(saturating(E, 400.0, alpha), family=family, sizes={f"{family}-s": 1e6, f"{family}-m": 1e7},
                            budgets=BUDGETS, noise=0.01, rng=rng, sweep="synth")
              for family, E, alpha in (("hstu", 1.5, 0.3), ("dlrm", 2.5, 0.2))]
    frame = pd.concat([*frames, failed_trial("dlrm", "diverged", "loss became inf", budget=1e16, sweep="synth")],
                      ignore_index=True)
    late = frame["trial_id"].eq("hstu-m-C1e+18-seed0") & frame["eval_kind"].eq("final")
    frame.loc[late, "flops"] = 1.05e18  # 5% past its budget: the report lists it
    return frame


@pytest.fixture
def wandb_runs(table, monkeypatch):
    """W&B 'online', its runs served by a local source in place of wandb.Api."""
    go_online(monkeypatch)
    source = FakeRuns(runs_logged_from(table))
    monkeypatch.setattr(analysis.from_wandb, "WandbRuns", lambda: source)
    return source


def test_fit_from_wandb_fits_the_same_laws_as_the_table(table, wandb_runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--from-wandb", "team/grscale", "--group", "synth", "--bootstrap", "20"]) == 0
    folder = tmp_path / "runs" / "synth-wandb"
    (tmp_path / "direct").mkdir()
    table.to_parquet(tmp_path / "direct" / RESULTS_FILE)
    snapshot = pd.read_parquet(folder / RESULTS_FILE)
    direct_table = pd.read_parquet(tmp_path / "direct" / RESULTS_FILE)
    in_trial_order = direct_table.sort_values("trial_id", kind="stable").reset_index(drop=True)  # as read back
    pd.testing.assert_frame_equal(snapshot[table.columns], in_trial_order, check_dtype=False)
    assert main(["fit", str(tmp_path / "direct"), "--bootstrap", "20"]) == 0
    from_wandb, direct = (json.loads((d / "fits.json").read_text()) for d in (folder, tmp_path / "direct"))
    assert from_wandb["fits"] == direct["fits"] and set(direct["fits"]) == {"hstu", "dlrm"}


def test_report_from_wandb_writes_beside_its_snapshot(wandb_runs, tmp_path):
    out = tmp_path / "mine"
    assert main(["report", "--from-wandb", "team/grscale", "--group", "synth", "--out", str(out), "--bootstrap", "20",
                 "--no-wandb"]) == 0
    assert (out / RESULTS_FILE).exists() and (out / "wandb_snapshot.json").exists() and (out / "report.md").exists()


@pytest.mark.parametrize("argv, says", [
    (["fit", "--from-wandb", "team/grscale", "--group", "synth"], "cannot read team/grscale from W&B: W&B is offline"),
    (["fit", "--from-wandb", "team/grscale"], "--from-wandb needs --group SWEEP"),
    (["fit", "--from-wandb", "grscale", "--group", "synth"], "--from-wandb: expected ENTITY/PROJECT, got 'grscale'"),
    (["fit", "runs/x", "--from-wandb", "team/grscale", "--group", "synth"], "not both"),
    (["report"], "give either a results table / sweep folder or --from-wandb"),
])
def test_from_wandb_misuse_is_one_line(argv, says, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WANDB_MODE", "offline")  # never reaches the network: offline is refused up front
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert says in line


def test_group_with_no_runs_is_one_line(wandb_runs, capsys):
    assert main(["fit", "--from-wandb", "team/grscale", "--group", "nothing-here"]) == 2
    assert capsys.readouterr().err == ("grscale fit: error: W&B project team/grscale has no trial runs in group "
                                       "'nothing-here'\n")


def test_report_run_logs_the_laws_as_series_and_links_the_dashboard(table, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    sweep_dir = tmp_path / "synth"
    sweep_dir.mkdir()
    table.to_parquet(sweep_dir / RESULTS_FILE)
    url = "https://wandb.test/team/grscale?nw=abc"
    (sweep_dir / DASHBOARD_FILE).write_text(json.dumps({"url": url, "view": {}}))
    result, out_dir = report_sweep(sweep_dir, n_resamples=20, wandb_project="grscale-test")
    import wandb

    wandb.teardown()  # the offline transaction log is complete once the W&B service has closed it
    run = read_offline_run(out_dir)
    assert run["summary"]["dashboard"] == url and run["config"]["dashboard"] == url
    series = [h for h in run["history"] if SCALING_X in h]
    xs = [h[SCALING_X] for h in series]
    assert xs == sorted(xs)
    curves, points = law_curves(result), law_points(result)
    for family in ("hstu", "dlrm"):
        fit = [(h[SCALING_X], h[law_key(family, "fit")], h[law_key(family, "low")], h[law_key(family, "high")])
               for h in series if law_key(family, "fit") in h]
        mine = curves[curves["family"] == family]
        np.testing.assert_allclose(np.array(fit), mine[["flops", "saturating", "low", "high"]].to_numpy(), rtol=1e-12)
        measured = [(h[SCALING_X], h[law_key(family, "measured")]) for h in series if law_key(family, "measured") in h]
        np.testing.assert_allclose(np.array(measured), points[points["family"] == family][["flops", "loss"]].to_numpy())
        assert len(measured) == len(BUDGETS)
    logged = {k: v for h in run["history"] for k, v in h.items()}
    assert (logged["tables/law_curves/nrows"], logged["tables/law_points/nrows"]) == (len(curves), len(points))
    assert logged["tables/budget_missed/nrows"] == 2  # the diverged trial and the one 5% past its budget


def test_report_lists_the_trials_that_missed_their_budget(table, tmp_path):
    sweep_dir = tmp_path / "synth"
    sweep_dir.mkdir()
    table.to_parquet(sweep_dir / RESULTS_FILE)
    _, out_dir = report_sweep(sweep_dir, n_resamples=20, wandb=False)
    md = (out_dir / "report.md").read_text()
    section = md.split("## Budget missed\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert section[0] == "| trial_id | family | size | status | planned | achieved | ratio |"
    assert [line.split(" | ")[0].lstrip("| ") for line in section[2:]] == ["dlrm-bad-C1e+16-diverged",
                                                                          "hstu-m-C1e+18-seed0"]
    assert "| 1.05 |" in section[3]
