"""Kill a running sweep for real (SIGKILL of its process group) once one trial has finished and
another has checkpointed, resume it, and compare with uninterrupted runs of the same trials."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pandas as pd
import pytest

from scaling.train import train_to_budget
from sweeps.grid import expand
from sweeps.spec import spec_from_dict
from tests.sweeps.helpers import REPO, cli_command, cli_env, read_offline_run, tiny_spec, write_spec

pytestmark = pytest.mark.slow

# One trial at a time, each long enough (~40-80 steps) to be caught between two checkpoints.
SPEC = tiny_spec(name="killed", families={"hstu": ["xs"]}, budgets=[6e8], seeds=[0, 1, 2],
                 max_concurrent_trials=1)
COMPARED = ["flops", "step", "train_loss", "val/nll", "val/hr@10"]  # on every row
COMPARED_FINAL = ["test/nll", "test/ndcg@10", "test_last/nll", "best_step"]


def _wait_for_kill_point(trials, proc, timeout=120.0) -> None:
    """Until one trial has finished and another has a checkpoint but no status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the sweep ended before it could be killed"
        folders = [d for d in trials.iterdir()] if trials.exists() else []
        finished = [d for d in folders if (d / "status.json").exists()]
        midway = [d for d in folders if (d / "checkpoint.pt").exists() and not (d / "status.json").exists()]
        if finished and midway:
            return
        time.sleep(0.05)
    raise AssertionError("no trial finished and checkpointed in time")


def test_killed_sweep_resumes_to_the_uninterrupted_result(tmp_path):
    spec_path = write_spec(tmp_path, SPEC)
    out = tmp_path / "runs"
    trials = out / "killed" / "trials"
    proc = subprocess.Popen(cli_command("sweep", "run", str(spec_path), "--out", str(out)), cwd=REPO,
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        _wait_for_kill_point(trials, proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    interrupted = {d.name for d in trials.iterdir() if not (d / "status.json").exists()}
    assert interrupted, "every trial had finished: the kill came too late"

    resumed = subprocess.run(cli_command("sweep", "run", str(spec_path), "--out", str(out), "--resume"), cwd=REPO,
                             env=cli_env(), capture_output=True, text=True, timeout=150)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert "finished before" in resumed.stdout and "(0 finished before" not in resumed.stdout

    table = pd.read_parquet(out / "killed/results.parquet")
    finals = table[table["eval_kind"] == "final"]
    plans = expand(spec_from_dict(SPEC))
    assert sorted(finals["trial_id"]) == sorted(p.trial_id for p in plans)  # every trial exactly once
    os.environ["GRSCALE_TORCH_THREADS"] = "1"  # as in the sweep's workers (1 cpu per trial)
    try:
        for plan in plans:
            reference = train_to_budget(plan.config, tmp_path / "reference" / plan.trial_id).rows
            rows = table[table["trial_id"] == plan.trial_id]
            assert len(rows) == len(reference)
            for column in COMPARED:
                assert list(rows[column]) == [r[column] for r in reference], (plan.trial_id, column)
            for column in COMPARED_FINAL:
                assert rows.iloc[-1][column] == reference[-1][column], (plan.trial_id, column)
    finally:
        del os.environ["GRSCALE_TORCH_THREADS"]

    # The resumed trial's W&B run replays its checkpointed rows: it holds the whole curve.
    trial_id = sorted(interrupted)[0]
    history = read_offline_run(trials / trial_id)["history"]
    metrics = [json.loads(line) for line in (trials / trial_id / "metrics.jsonl").read_text().splitlines()]
    assert [h["flops"] for h in history] == [m["flops"] for m in metrics]
