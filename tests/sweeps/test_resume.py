"""Stop a running sweep as a user, a scheduler and a crash do, for real: Ctrl-C (SIGINT to the
whole process group, as a terminal sends it), then, resumed, SIGTERM to the driver alone, then,
resumed again, SIGKILL of everything; resume it to the end and compare with uninterrupted runs of
the same trials. On the way: what the terminal shows, `sweep status`, the refusals of a folder
holding started trials, and the trials' W&B runs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from scaling.train import train_to_budget
from sweeps.grid import expand
from sweeps.spec import spec_from_dict
from tests.sweeps.helpers import REPO, cli_command, cli_env, read_offline_runs, run_cli, tiny_spec, write_spec

pytestmark = pytest.mark.slow

# Two long trials run side by side (each ~60-80 steps between its 2nd and last evaluation) and two
# short ones wait: the largest budgets start first.
SPEC = tiny_spec(name="stopped", families={"hstu": ["xs"]}, budgets=[1e8, 6e9], seeds=[0, 1])
LONG = ["hstu-xs-C6e9-seed0", "hstu-xs-C6e9-seed1"]
SHORT = ["hstu-xs-C1e8-seed0", "hstu-xs-C1e8-seed1"]
COMPARED = ["flops", "step", "train_loss", "val/nll", "val/hr@10"]  # on every row
COMPARED_FINAL = ["test/nll", "test/ndcg@10", "test_last/nll", "best_step"]


def _rows(trial_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (trial_dir / "metrics.jsonl").read_text().splitlines()]


def _rows_written(trial_dir: Path) -> int:
    """Whole rows in metrics.jsonl so far (it is read while the trial appends to it)."""
    path = trial_dir / "metrics.jsonl"
    return path.read_text().count("\n") if path.exists() else 0


def _start(spec_path: Path, out: Path, *extra: str) -> subprocess.Popen:
    # Its own session and process group, as a shell gives a foreground job.
    return subprocess.Popen(cli_command("sweep", "run", str(spec_path), "--out", str(out), *extra), cwd=REPO,
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _signal_when(trials: Path, proc: subprocess.Popen, rows_at_least: int, send, timeout: float = 150.0):
    """Once every long trial has this many rows (and is still running), `send`; then the output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the sweep ended before it could be stopped"
        if all(_rows_written(trials / t) >= rows_at_least for t in LONG):
            break
        time.sleep(0.05)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("the long trials did not reach the stop point in time")
    assert not any((trials / t / "status.json").exists() for t in LONG), "a long trial ended before the stop"
    send(proc.pid)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def _assert_stopped_cleanly(code: int, expected: int, err: str, resume: str) -> None:
    assert code == expected, err[-3000:]
    assert f"resume with: {resume}" in err.splitlines()
    # Tune's own handling would advise Tuner.restore; Ray's would print a C++ stack for SIGTERM.
    assert "Tuner.restore" not in err and "*** SIG" not in err and "Traceback" not in err, err[-3000:]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    return {p.trial_id: train_to_budget(p.config, root / p.trial_id).rows for p in expand(spec_from_dict(SPEC))}


def test_stopped_sweep_resumes_to_the_uninterrupted_result(tmp_path, reference):
    spec_path = write_spec(tmp_path, SPEC)
    out = tmp_path / "runs"
    trials = out / "stopped" / "trials"
    resume = f"grscale sweep run {spec_path} --out {out} --resume"

    # 1. Ctrl-C: every running trial checkpoints and says so; the waiting ones never start.
    code, stdout, err = _signal_when(trials, _start(spec_path, out), 2,
                                     lambda pid: os.killpg(pid, signal.SIGINT))
    _assert_stopped_cleanly(code, 130, err, resume)
    for trial_id in LONG:
        status = json.loads((trials / trial_id / "status.json").read_text())
        assert status["status"] == "interrupted" and status["error"].startswith("interrupted by SIGINT at step ")
        assert f"{trial_id}  interrupted  interrupted by SIGINT" in stdout
    assert not any((trials / t).exists() for t in SHORT)
    first_part = {t: _rows_written(trials / t) for t in LONG}
    status = run_cli("sweep", "status", str(out / "stopped"))
    assert status.stdout.splitlines()[-1].split()[:7] == ["total", "0", "0", "2", "2", "0", "0"], status.stdout

    # 2. The folder holds started trials: refused without --resume, and with a spec that changed
    # them, naming the change; both before Ray starts.
    refused = run_cli("sweep", "run", str(spec_path), "--out", str(out))
    assert refused.returncode == 2 and "holds 2 unfinished trial(s): pass --resume" in refused.stderr
    (tmp_path / "changed").mkdir()
    changed = write_spec(tmp_path / "changed", {**SPEC, "trial": {**SPEC["trial"], "optim": {"batch_size": 16}}})
    refused = run_cli("sweep", "run", str(changed), "--out", str(out), "--resume")
    assert refused.returncode == 2 and refused.stdout == ""
    assert f"trial {LONG[0]} started with a different config" in refused.stderr
    assert "optim.batch_size 32 -> 16" in refused.stderr

    # 3. Resumed, then SIGTERM to the driver alone (a scheduler's preemption).
    code, _, err = _signal_when(trials, _start(spec_path, out, "--resume"), max(first_part.values()) + 1,
                                lambda pid: os.kill(pid, signal.SIGTERM))
    _assert_stopped_cleanly(code, 143, err, resume)
    assert all(json.loads((trials / t / "status.json").read_text())["status"] == "interrupted" for t in LONG)
    graceful = {t: _rows_written(trials / t) for t in LONG}  # rows when the last clean stop ended

    # 4. Resumed, then killed outright: the trials keep no status; each resumes from its last checkpoint.
    proc = _start(spec_path, out, "--resume")
    _signal_when(trials, proc, max(graceful.values()) + 1, lambda pid: os.killpg(pid, signal.SIGKILL))
    assert not any((trials / t / "status.json").exists() for t in LONG)
    status = run_cli("sweep", "status", str(out / "stopped"))  # the lock died with its holder
    assert status.stdout.splitlines()[-1].split()[:4] == ["total", "0", "0", "2"], status.stdout

    # 5. Resumed to the end: the same rows as uninterrupted runs, each trial once in the results.
    done = run_cli("sweep", "run", str(spec_path), "--out", str(out), "--resume")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    table = pd.read_parquet(out / "stopped/results.parquet")
    for trial_id, expected in reference.items():
        rows = table[table["trial_id"] == trial_id]
        assert len(rows) == len(expected), trial_id
        for column in COMPARED:
            assert list(rows[column]) == [r[column] for r in expected], (trial_id, column)
        for column in COMPARED_FINAL:
            assert rows.iloc[-1][column] == expected[-1][column], (trial_id, column)

    # 6. One W&B run per trial: its parts share one id, and those that finished hold each row
    # exactly once. The killed part may hold nothing (W&B buffers its file): the next part logs
    # again every row after the last part that finished.
    for trial_id in LONG:
        parts = read_offline_runs(trials / trial_id)
        assert len(parts) == 4
        finished = [parts[0], parts[1], parts[3]]
        assert len({p["run_id"] for p in finished}) == 1 and parts[2]["run_id"] in (None, parts[0]["run_id"])
        steps = [[h["_step"] for h in p["history"]] for p in finished]
        assert steps[0] == list(range(first_part[trial_id]))
        assert steps[0] + steps[1] == list(range(graceful[trial_id])) and steps[1]
        rows = _rows(trials / trial_id)
        assert sum(steps, []) == list(range(len(rows)))
        assert [h["flops"] for p in finished for h in p["history"]] == [r["flops"] for r in rows]
        assert [p["summary"]["status"] for p in finished] == ["interrupted", "interrupted", "done"]
        assert [p["exit_code"] for p in finished] == [1, 1, 0]


def test_a_second_signal_stops_at_once(tmp_path):
    """The first SIGINT or SIGTERM asks the trials to stop (the stop file they watch); the second
    raises KeyboardInterrupt, which ends Tune's loop at once."""
    from scaling.interrupts import StopOnSignal
    from sweeps.trainable import StopFile

    stop = StopFile(tmp_path / ".stop")
    assert stop() is None
    before = signal.getsignal(signal.SIGTERM)
    signals = StopOnSignal("stopping", "stopping at once", on_first=stop.request)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert (signals.received, signals.at_once, stop()) == ("SIGTERM", False, "SIGTERM")
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs between bytecodes of this thread
        assert signals.at_once
    finally:
        signals.restore()
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_trial_polling_the_stop_file_reads_the_whole_reason(tmp_path):
    """A trial polls the stop file after every step, possibly while the driver writes it: it reads
    either no request or the signal's name, never an empty file (CI once saw a trial report
    "a stop request" where SIGINT had been sent)."""
    import threading

    from sweeps.trainable import StopFile

    stop = StopFile(tmp_path / ".stop")
    seen: set[str | None] = set()
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            seen.add(stop())

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        for _ in range(3000):
            stop.request("SIGINT")
            stop.clear()
    finally:
        done.set()
        poller.join()
    assert seen <= {None, "SIGINT"} and "SIGINT" in seen, seen
