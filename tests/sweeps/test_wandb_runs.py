"""What the session's end-to-end sweep (tests/sweeps/conftest.py, W&B offline, --dashboard) logged
to W&B: runs sliced by tags and flat config keys, planned vs achieved FLOPs in each summary, and
rows that read back (analysis/from_wandb.py, through a local RunsSource built from the offline run
files) into a table equal to the sweep's own results.parquet."""
from __future__ import annotations

import json
import time

import pandas as pd
import pytest

from analysis.budget import BUDGET_TOLERANCE
from analysis.from_wandb import LoggedRun, results_frame, snapshot_from_wandb
from scaling.config import TrialConfig
from scaling.errors import GrscaleError
from scaling.schema import DASHBOARD_FILE, REQUIRED_COLUMNS, RESULTS_FILE, SETTING_COLUMNS
from sweeps.wandb_logging import TOKENS_PER_S, WandbReporter, WandbSettings
from tests.sweeps.helpers import (E2E_DIVERGING, E2E_DONE, E2E_FAILING, FakeRuns, go_online, offline_logged_run,
                                  read_offline_run)

pytestmark = pytest.mark.slow

# What the fits read of the table (analysis/results.py, analysis/selection.py).
FIT_COLUMNS = [*REQUIRED_COLUMNS, *SETTING_COLUMNS, "split", "select_on", "step", "best_step", "val/nll", "test/nll",
               "val/hr@10", "test/hr@10", "val/ndcg@10", "test/ndcg@10"]


@pytest.fixture(scope="module")
def sweep_dir(e2e_sweep):
    root, _, proc = e2e_sweep
    assert proc.returncode == 1, proc.stderr[-3000:]  # one trial fails by design
    return root / "runs" / "e2e"


@pytest.fixture(scope="module")
def logged(sweep_dir):
    return [offline_logged_run(trial_dir) for trial_dir in sorted((sweep_dir / "trials").iterdir())]


def test_sweep_run_dashboard_wrote_the_workspace_first(e2e_sweep, sweep_dir):
    _, _, proc = e2e_sweep
    first = proc.stdout.splitlines()[:2]
    assert first[0].startswith("W&B is offline") and first[1].endswith(f"--spec {sweep_dir / DASHBOARD_FILE}")
    assert json.loads((sweep_dir / DASHBOARD_FILE).read_text())["view"]["displayName"] == "e2e (grscale sweep)"


def test_runs_are_tagged_and_configured_for_slicing(sweep_dir):
    run = read_offline_run(sweep_dir / "trials" / E2E_DONE[0])
    assert {"hstu", "xs", "budget:1e8", "lr:3e-3", "variant:default", "seed:0", "kernel:pytorch"} <= set(run["tags"])
    config = run["config"]
    assert (config["family"], config["size"], config["budget_bucket"], config["peak_lr"], config["variant"]) == (
        "hstu", "xs", "1e8", 3e-3, "default")
    assert (config["trial_id"], config["sweep"], config["select_on"]) == (E2E_DONE[0], "e2e", "validation")
    assert "trunk" not in config  # no row names a trunk


@pytest.mark.parametrize("trial_id", [E2E_DONE[0], E2E_DONE[2], E2E_DIVERGING[0], E2E_FAILING])
def test_summary_holds_planned_and_achieved_flops(sweep_dir, trial_id):
    trial_dir = sweep_dir / "trials" / trial_id
    summary = read_offline_run(trial_dir)["summary"]
    rows = [json.loads(line) for line in (trial_dir / "metrics.jsonl").read_text().splitlines()]
    planned, achieved = rows[-1]["budget"], rows[-1]["flops"]
    assert (summary["flops_planned"], summary["flops_achieved"]) == (planned, achieved)
    assert summary["flops_ratio"] == pytest.approx(achieved / planned)
    assert summary["budget_missed"] is (abs(achieved / planned - 1) > BUDGET_TOLERANCE)
    if trial_id in E2E_DIVERGING or trial_id == E2E_FAILING:
        assert summary["budget_missed"] is True  # stopped far short of the budget


def test_history_carries_tokens_per_second(sweep_dir):
    history = read_offline_run(sweep_dir / "trials" / E2E_DONE[0])["history"]
    assert all(h[TOKENS_PER_S] == pytest.approx(h["tokens"] / h["wall_s"]) for h in history)


def test_runs_read_back_into_the_sweeps_results_table(sweep_dir, logged, tmp_path, monkeypatch):
    go_online(monkeypatch)
    source = FakeRuns(logged)
    folder = snapshot_from_wandb("team/grscale", "e2e", tmp_path / "snap", source=source)
    assert source.asked == [("team/grscale", "e2e")]
    want = pd.read_parquet(sweep_dir / RESULTS_FILE)
    got = pd.read_parquet(folder / RESULTS_FILE)
    assert set(got.columns) == set(want.columns)  # every column, not only those the fits use
    pd.testing.assert_frame_equal(got[FIT_COLUMNS], want[FIT_COLUMNS], check_dtype=False)
    pd.testing.assert_frame_equal(got[want.columns], want, check_dtype=False)
    info = json.loads((folder / "wandb_snapshot.json").read_text())
    assert (info["source"], info["group"], info["trials"], info["rows"]) == ("team/grscale", "e2e", 6, len(want))


def test_read_back_keeps_one_finished_run_per_trial(logged):
    done = next(r for r in logged if r.config["trial_id"] == E2E_DONE[0])
    older = LoggedRun(name=done.name, config=done.config, summary=done.summary,
                      history=[{**h, "test/nll": -1.0} for h in done.history], created_at="2020-01-01T00:00:00")
    newer = [LoggedRun(r.name, r.config, r.summary, r.history, created_at="2026-12-03T00:00:00") for r in logged]
    running = LoggedRun(name="x", config={**done.config, "trial_id": "x"}, summary={"status": "interrupted"},
                        history=done.history)
    frame = results_frame([*newer, older, running])
    assert set(frame["trial_id"]) == {r.config["trial_id"] for r in logged}  # the interrupted one is left out
    assert (frame["test/nll"].dropna() > 0).all()  # the older run of a rerun sweep is dropped


def test_no_runs_or_unreachable_w_and_b_is_one_clear_error(tmp_path, monkeypatch):
    class Unreachable:
        def trial_runs(self, path, group):
            raise ConnectionError("Max retries exceeded with url: /graphql\n(traceback follows)")

    with pytest.raises(GrscaleError, match="W&B is offline"):
        snapshot_from_wandb("team/grscale", "e2e", tmp_path, source=FakeRuns([]))  # WANDB_MODE=offline: no try
    go_online(monkeypatch)
    with pytest.raises(GrscaleError, match=r"^W&B project team/grscale has no trial runs in group 'e2e'$"):
        snapshot_from_wandb("team/grscale", "e2e", tmp_path, source=FakeRuns([]))
    with pytest.raises(GrscaleError, match=r"^cannot read team/grscale from W&B: Max retries exceeded with url: /graphql$"):
        snapshot_from_wandb("team/grscale", "e2e", tmp_path, source=Unreachable())
    with pytest.raises(GrscaleError, match="expected ENTITY/PROJECT"):
        snapshot_from_wandb("grscale", "e2e", tmp_path, source=FakeRuns([]))


def test_lineage_is_carried_and_logging_stays_cheap(sweep_dir, tmp_path, monkeypatch):
    """A branch's rows name its trunk, which tags its run; reporting a row costs milliseconds, not the run's time."""
    monkeypatch.setenv("WANDB_SILENT", "true")
    source = sweep_dir / "trials" / E2E_DONE[0]
    cfg = TrialConfig.from_dict(json.loads((source / "run_info.json").read_text())["config"])
    rows = [json.loads(line) | {"trunk": "hstu-xs-trunk-seed0", "branch_role": "branch"} for line in
            (source / "metrics.jsonl").read_text().splitlines()]
    trial_dir = tmp_path / "child"
    trial_dir.mkdir()
    reporter = WandbReporter(WandbSettings(mode="offline", project="grscale", group="lineage"), "child", cfg, trial_dir)
    started = time.perf_counter()
    with open(trial_dir / "metrics.jsonl", "a") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
            handle.flush()
            reporter.report(row)
    per_row = (time.perf_counter() - started) / len(rows)
    reporter.finish("done", None)
    run = read_offline_run(trial_dir)
    assert "trunk:hstu-xs-trunk-seed0" in run["tags"] and run["config"]["trunk"] == "hstu-xs-trunk-seed0"
    assert len(run["history"]) == len(rows)
    assert per_row < 0.05, f"{per_row * 1000:.1f} ms per row"
