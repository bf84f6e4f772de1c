"""A trial whose Ray worker process dies under it (a signal, the kernel's OOM killer, Ray's memory
monitor): the sweep says so in one line, keeps every other trial, and prints no Ray traceback."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from sweeps.launcher import worker_death_line
from tests.sweeps.helpers import REPO, cli_command, cli_env, ray_processes_of, tiny_spec, write_spec
from tests.sweeps.test_resume import _rows_written

# What Tune records for a trial whose actor Ray's memory monitor killed, and for one whose process ended.
RAY_OOM = ("Failure # 1 (occurred at 2026-12-03_21-01-21)\n1 worker(s) were killed due to the node running low on "
           "memory. Memory on the node (IP: 192.0.2.2, ID: 4351) was 1.42GB used / 23.54GB limit (0.060311)\n"
           "OOM kill reason: Memory usage 1524461568B exceeded threshold of 1516564224B\n")
ACTOR_DIED = ("Failure # 1 (occurred at 2026-12-03_21-00-36)\nThe actor died unexpectedly before finishing this "
              "task.\n\tclass_name: ImplicitFunc\n\tpid: 2595\nThe actor is dead because its worker process has died.")


def test_a_dead_worker_is_one_line_naming_its_cause():
    assert worker_death_line(RAY_OOM) == (
        "Ray's memory monitor killed the trial's worker: the node ran out of memory (1.42GB used of 23.54GB); "
        "run fewer trials at once (max_concurrent_trials) or on a machine with more memory")
    assert worker_death_line(ACTOR_DIED) == ("the trial's Ray worker process died (killed by a signal or the "
                                             "kernel's out-of-memory killer, or crashed)")
    assert worker_death_line("") == worker_death_line(ACTOR_DIED)
    other = "Failure # 1 (occurred at x)\nTuneError: something else\nmore"
    assert worker_death_line(other) == "TuneError: something else"


def _start(spec_path: Path, out: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(cli_command("sweep", "run", str(spec_path), "--out", str(out), "--no-wandb"), cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


@pytest.mark.slow
def test_a_killed_trial_process_fails_only_its_trial(tmp_path):
    spec = tiny_spec(name="kill", families={"hstu": ["xs"]}, budgets=[1e9, 3e9, 6e9], max_concurrent_trials=1)
    out = tmp_path / "runs"
    proc = _start(write_spec(tmp_path, spec), out, cli_env())
    killed = out / "kill" / "trials" / "hstu-xs-C6e9-seed0"  # largest budget first
    deadline = time.monotonic() + 120
    while _rows_written(killed) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    actors = ray_processes_of(proc.pid, b"ray::ImplicitFunc")
    assert len(actors) == 1, actors
    os.kill(actors[0], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 1, stdout + stderr
    assert "Traceback" not in stdout + stderr, stdout + stderr
    assert "[1/3] hstu-xs-C6e9-seed0  failed  the trial's Ray worker process died (killed by a signal" in stdout
    assert "[2/3] hstu-xs-C3e9-seed0  done" in stdout and "[3/3] hstu-xs-C1e9-seed0  done" in stdout


@pytest.mark.slow
def test_rays_memory_monitor_stops_the_sweep_with_one_line_and_no_traceback(tmp_path):
    # A threshold the node is over as soon as a trial starts: Ray kills trial actors, at start-up or
    # while training (Tune's loop survives only the latter); either way one line names it.
    env = dict(cli_env(), RAY_memory_usage_threshold="0.01", RAY_memory_monitor_refresh_ms="100")
    spec = tiny_spec(name="oom", families={"hstu": ["xs"]}, budgets=[1e9, 3e9], max_concurrent_trials=1)
    proc = _start(write_spec(tmp_path, spec), tmp_path / "runs", env)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1, stdout + stderr
    assert "Traceback" not in stdout + stderr, stdout + stderr
    said = "Ray's memory monitor killed the trial's worker: the node ran out of memory ("
    assert f"the sweep stopped: {said}" in stderr or f"failed  {said}" in stdout, stdout + stderr
    assert "done" not in [line.split()[2] for line in stdout.splitlines() if line.startswith("[")]
