"""Sweeps whose trials are 2-worker Ray Train jobs (spec `resources: {workers: 2, ...}`), for real under
a local Ray: a SIGKILL of the whole sweep mid-trial and `--resume` end exactly as an uninterrupted
2-worker run; one worker dying fails its trial with one line naming it, and loses no earlier trial.
The ranks' arithmetic itself is tested without Ray in tests/scaling/test_distributed.py."""
from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from scaling.errors import GrscaleError
from scaling.reporting import read_rows
from sweeps.grid import expand
from sweeps.spec import spec_from_dict
from sweeps.train_workers import DRIVER_BUNDLE, concurrent_trials, trial_resources
from tests.scaling.local_ranks import run_ranks
from tests.sweeps.helpers import REPO, ray_processes_of, run_cli, tiny_spec, write_spec
from tests.sweeps.test_resume import _rows_written, _start


def readme_resources() -> dict:
    """The spec keys the README's "Trials on several workers" shows."""
    text = (REPO / "README.md").read_text()
    return yaml.safe_load(re.search(r"### Trials on several workers\n.*?```yaml\n(.*?)```", text, re.S).group(1))


# The README's resources on tiny data. Largest budget first, one trial at a time: LONG is killed
# mid-way and resumed; then a worker of SHORT is killed.
SPEC = tiny_spec(name="multi", families={"hstu": ["xs"]}, budgets=[1.5e9, 3e9], **readme_resources())
LONG, SHORT = "hstu-xs-C3e9-seed0", "hstu-xs-C1.5e9-seed0"
COMPARED = ["flops", "step", "tokens", "train_loss", "val/nll", "val/hr@10", "workers"]
COMPARED_FINAL = ["test/nll", "test/ndcg@10", "test_last/nll", "best_step"]


def test_spec_workers_reach_the_trials_and_their_resources(monkeypatch):
    assert readme_resources() == {"resources": {"workers": 2, "cpus_per_worker": 1, "gpus_per_worker": 0},
                                  "max_concurrent_trials": 1}
    plans = expand(spec_from_dict(SPEC))
    assert {(p.config.runtime.workers, p.config.runtime.threads) for p in plans} == {(2, 1)}
    spec = spec_from_dict(SPEC)
    assert trial_resources(spec.resources) == DRIVER_BUNDLE
    one = spec_from_dict(tiny_spec(resources={"cpus": 2}))  # the one-worker form, as before
    assert trial_resources(one.resources) == {"cpu": 2.0, "gpu": 0.0}
    assert {p.config.runtime.workers for p in expand(one)} == {1}
    import ray

    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 5.0})
    assert concurrent_trials(spec_from_dict({**SPEC, "max_concurrent_trials": None})) == 2  # 5 CPUs // (2 x 1)
    assert concurrent_trials(spec) == 1  # the spec's cap
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 1.0})
    with pytest.raises(GrscaleError, match=r"^spec.resources: a trial's 2 workers need 2 CPU and 0 GPU together; "
                                           r"the cluster has 1 CPU, 0 GPU$"):
        concurrent_trials(spec)


def _wait_for_rows(trial_dir: Path, proc, rows: int, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while _rows_written(trial_dir) < rows:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{trial_dir.name} did not reach {rows} rows"
        time.sleep(0.05)
    assert not (trial_dir / "status.json").exists(), f"{trial_dir.name} ended before the kill"


@pytest.mark.slow
def test_killed_sweep_resumes_exactly_and_a_dead_worker_fails_only_its_trial(tmp_path):
    spec_path = write_spec(tmp_path, SPEC)
    out = tmp_path / "runs"
    trials = out / "multi" / "trials"
    long_cfg = next(p.config for p in expand(spec_from_dict(SPEC)) if p.trial_id == LONG)

    # 1. The whole sweep (driver, Ray, both workers) killed mid-trial.
    proc = _start(spec_path, out, "--no-wandb")
    _wait_for_rows(trials / LONG, proc, 3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert not (trials / LONG / "status.json").exists()

    # 2. Resumed: LONG ends as an uninterrupted 2-worker run of it (two local gloo ranks, no Ray).
    #    Then SHORT starts, and one of its workers is killed.
    proc = _start(spec_path, out, "--resume", "--no-wandb")
    run_ranks(long_cfg, tmp_path / "reference", 2)
    _wait_for_rows(trials / SHORT, proc, 2)
    workers = ray_processes_of(proc.pid, b"ray::RayTrainWorker")
    assert len(workers) == 2, workers
    os.kill(max(workers), signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 1, stdout[-2000:] + stderr[-2000:]

    expected = read_rows(tmp_path / "reference" / "metrics.jsonl")
    table = pd.read_parquet(out / "multi" / "results.parquet")
    rows = table[table["trial_id"] == LONG]
    assert len(rows) == len(expected)
    for column in COMPARED:
        assert list(rows[column]) == [r[column] for r in expected], column
    for column in COMPARED_FINAL:
        assert rows.iloc[-1][column] == expected[-1][column], column

    status = json.loads((trials / SHORT / "status.json").read_text())
    assert status["status"] == "failed"
    assert status["error"].startswith("worker rank ") and " of 2 died (its process ended" in status["error"]
    assert "\n" not in status["error"]
    assert f"{SHORT}  failed  worker rank" in stdout
    assert set(table["trial_id"]) == {LONG, SHORT}  # the failed trial's rows are kept, LONG's untouched
    assert table[table["trial_id"] == SHORT].iloc[-1]["status"] == "failed"
    listing = run_cli("sweep", "status", str(out / "multi")).stdout.splitlines()[-1].split()
    assert listing[:7] == ["total", "1", "0", "0", "0", "0", "1"], listing


def test_a_failed_job_is_one_line_naming_its_cause():
    """What Ray Train reports when a worker's process dies (its health check failed on the dead actor;
    the other rank's collective broke), and when every rank met a bad input of ours."""
    from ray.exceptions import ActorDiedError
    from ray.train import WorkerGroupError
    from ray.train.v2._internal.exceptions import WorkerHealthCheckFailedError

    from sweeps.train_workers import failure_line

    broken = RuntimeError("[gloo/transport/tcp/pair.cc:537] Read error: Connection reset by peer")
    died = WorkerGroupError("...", {0: broken, 1: WorkerHealthCheckFailedError("A worker health check failed.",
                                                                              ActorDiedError())})
    assert failure_line(died, 2) == ("worker rank 1 of 2 died (its process ended: killed, out of memory or its "
                                     "node lost); the trial stopped")
    bad = GrscaleError("budget 1 FLOPs is smaller than one training step of hstu-xs")
    assert failure_line(WorkerGroupError("...", {0: broken, 1: bad}), 2) == str(bad)
    assert failure_line(WorkerGroupError("...", {1: broken}), 2) == f"worker rank 1 of 2 failed: RuntimeError: {broken}"
