"""A small sweep end to end under a real local Ray with W&B offline: one trial fails (its
checkpoint is corrupt), two diverge (an lr-grid value of 1e6), the rest finish; results table,
W&B runs, status table and the no-overwrite rule are checked on that one sweep (tests/sweeps/conftest.py,
shared with the dashboard's tests)."""
from __future__ import annotations

import json
import math
import os

import pandas as pd
import pytest

from tests.sweeps.helpers import E2E_DIVERGING, E2E_DONE, E2E_FAILING, read_offline_run, run_cli

pytestmark = pytest.mark.slow

FAILING, DIVERGING, DONE = E2E_FAILING, E2E_DIVERGING, E2E_DONE


@pytest.fixture(scope="module")
def sweep(e2e_sweep):
    return e2e_sweep


def test_every_trial_ends_and_is_reported_once(sweep):
    _, _, proc = sweep
    assert proc.returncode == 1, proc.stderr[-3000:]  # 1: a trial failed, the sweep went on
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    assert len(lines) == 6 and lines[-1].startswith("[6/6]")
    by_trial = {line.split()[1]: line for line in lines}
    assert set(by_trial) == {FAILING, *DIVERGING, *DONE}
    assert " done  test/nll=" in by_trial[DONE[0]]
    assert " failed  " in by_trial[FAILING] and " diverged  non-finite" in by_trial[DIVERGING[0]]


def test_results_table_has_every_trial_with_its_outcome(sweep):
    root, _, _ = sweep
    table = pd.read_parquet(root / "runs/e2e/results.parquet")
    assert {"sweep", "trial_id", "peak_lr", "flops", "status", "eval_kind", "val/nll", "test/nll"} <= set(table)
    assert set(table["sweep"]) == {"e2e"}
    finals = table[table["eval_kind"] == "final"].set_index("trial_id")
    assert len(finals) == table["trial_id"].nunique() == 6
    assert set(finals.loc[list(DONE), "status"]) == {"done"}
    assert all(math.isfinite(v) for v in finals.loc[list(DONE), "test/nll"])
    assert set(finals.loc[list(DIVERGING), "status"]) == {"diverged"}
    assert finals.loc[DIVERGING[0], "error"].startswith("non-finite ")  # training loss or validation metric
    failed = finals.loc[FAILING]
    assert failed["status"] == "failed" and "\n" not in failed["error"] and failed["error"].startswith("Unpickling")
    for trial_id, rows in table.groupby("trial_id"):
        metrics = (root / "runs/e2e/trials" / trial_id / "metrics.jsonl").read_text().splitlines()
        assert len(rows) == len(metrics) and list(rows["flops"]) == [json.loads(m)["flops"] for m in metrics]
    assert finals.loc["hstu-xs-C1e8-seed0-lr3e-3", "peak_lr"] == 3e-3
    assert set(table["node"]) == {os.uname().nodename}  # every row, the failed trial's too


def test_one_wandb_run_per_trial_logged_against_flops(sweep):
    root, _, _ = sweep
    trials = root / "runs/e2e/trials"
    run = read_offline_run(trials / DONE[0])
    assert run["name"] == DONE[0] and run["group"] == "e2e" and run["project"] == "grscale"
    assert {"hstu", "xs", "kernel:pytorch"} <= set(run["tags"])
    assert ("*", "flops") in run["metrics"]
    assert run["config"]["budget"] == 1e8 and run["config"]["params_nonembedding"] > 0
    rows = [json.loads(line) for line in (trials / DONE[0] / "metrics.jsonl").read_text().splitlines()]
    assert [h["flops"] for h in run["history"]] == [r["flops"] for r in rows]
    assert run["history"][-1]["test/nll"] == pytest.approx(rows[-1]["test/nll"])
    assert run["exit_code"] == 0
    assert read_offline_run(trials / FAILING)["exit_code"] == 1
    assert read_offline_run(trials / DIVERGING[0])["exit_code"] == 1


def test_status_counts_and_flops(sweep):
    root, _, _ = sweep
    proc = run_cli("sweep", "status", str(root / "runs/e2e"))
    assert proc.returncode == 0, proc.stderr
    total = proc.stdout.splitlines()[-1].split()
    # done running interrupted pending diverged failed
    assert total[0] == "total" and total[1:7] == ["3", "0", "0", "0", "2", "1"]
    assert total[-3:-1] == ["/", "9e8"]  # budgets: 3 x 1e8 + 3 x 2e8; the diverged and failed trials spent little


def test_finished_sweep_is_never_overwritten_and_resume_reruns_nothing(sweep):
    root, spec_path, _ = sweep
    before = (root / "runs/e2e/results.parquet").read_bytes()
    proc = run_cli("sweep", "run", str(spec_path), "--out", str(root / "runs"))
    assert proc.returncode == 2 and "pass --resume" in proc.stderr
    proc = run_cli("sweep", "run", str(spec_path), "--out", str(root / "runs"), "--resume", "--no-wandb")
    assert "(6 finished before, 0 to run)" in proc.stdout
    assert pd.read_parquet(root / "runs/e2e/results.parquet").equals(pd.read_parquet(pd.io.common.BytesIO(before)))
