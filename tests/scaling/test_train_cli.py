import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scaling.cli import main

REPO = Path(__file__).resolve().parents[2]
TINY_FLAGS = ["--family", "hstu", "--size", "hstu-xs", "--users", "120", "--items", "60", "--mean-seq-len", "10"]


def test_train_cli_runs_a_trial_from_flags_and_config(tmp_path, capsys):
    config = tmp_path / "trial.yaml"
    config.write_text("data: {max_seq_len: 16}\noptim: {batch_size: 32}\nmodel: {loss: {num_negatives: 16}}\n"
                      "eval: {num_evals: 3}\n")
    out = tmp_path / "run"
    code = main(["train", "--config", str(config), *TINY_FLAGS, "--budget", "2e8", "--ties", "shuffle",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "hstu-xs retrieval on synthetic" in printed and "test/ndcg@10=" in printed
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["eval_kind"] == "final" and rows[-1]["size"] == "xs" and len(rows) == 3
    info = json.loads((out / "run_info.json").read_text())
    assert info["config"]["data"]["synthetic"]["num_users"] == 120 and info["config"]["optim"]["batch_size"] == 32
    assert info["config"]["data"]["ties"] == "shuffle" and info["config"]["runtime"]["progress"] is False
    # the same command again would overwrite the run: refused, the rows kept
    assert main(["train", *TINY_FLAGS, "--budget", "2e8", "--out", str(out)]) == 2
    assert "already holds a run: pass --resume" in capsys.readouterr().err
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3


def test_train_cli_names_what_is_missing(capsys):
    assert main(["train", "--family", "hstu", "--out", "unused"]) == 2
    assert "missing --size, --budget" in capsys.readouterr().err


@pytest.mark.parametrize("budget", ["0", "-1e9", "inf", "nan", "lots"])
def test_every_bad_budget_gets_the_same_one_line_error(budget, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *TINY_FLAGS, "--budget", budget, "--out", "unused"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"grscale train: error: argument --budget: expected a positive, finite number of FLOPs "
                       f"(e.g. 3e13), got '{budget}'")


def test_out_that_is_a_file_or_inside_a_file_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for out in (blocker, blocker / "run"):
        assert main(["train", *TINY_FLAGS, "--budget", "2e8", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(blocker) in err[0]
    assert blocker.read_text() == "not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_in_a_read_only_folder_is_one_line(tmp_path, capsys):
    tmp_path.chmod(0o555)
    try:
        assert main(["train", *TINY_FLAGS, "--budget", "2e8", "--out", str(tmp_path / "run")]) == 2
    finally:
        tmp_path.chmod(0o755)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path / "run") in err[0]


def test_a_full_disk_is_one_line_and_leaves_no_half_written_file(tmp_path, capsys, monkeypatch):
    import errno

    import scaling.files

    def full_disk(path, write):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(scaling.files, "atomic_write", full_disk)
    out = tmp_path / "run"
    assert main(["train", *TINY_FLAGS, "--budget", "2e8", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"grscale train: error: {out / 'run_info.json'}: No space left on device"]
    assert sorted(p.name for p in out.iterdir()) == []


def test_a_full_disk_while_appending_a_row_leaves_the_rows_file_whole(tmp_path, monkeypatch):
    import errno

    from scaling.reporting import JsonlReporter, read_rows

    path = tmp_path / "metrics.jsonl"
    JsonlReporter(path).report({"step": 1})
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left")))
    with pytest.raises(OSError):
        JsonlReporter(path).report({"step": 2, "padding": "x" * 1000})
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert read_rows(path) == [{"step": 1}]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "scaling.cli", *args]


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_checkpoints_exits_with_its_code_and_prints_the_resume_command(tmp_path, sig, code):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    args = ["train", *TINY_FLAGS, "--budget", "1.5e9", "--no-progress", "--out", str(tmp_path / "run")]
    process = subprocess.Popen(_cli(*args), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.2)  # signal it once it is training
    process.send_signal(sig)
    out, err = process.communicate(timeout=120)
    assert process.returncode == code, err
    assert "Traceback" not in err
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["status"] == "interrupted" and f"interrupted by {sig.name} at step {status['step']}" in err
    resume = err.strip().splitlines()[-1]
    assert resume == "resume with: grscale " + " ".join(args) + " --resume"
    if sig != signal.SIGTERM:
        return  # one resume is enough
    resumed = subprocess.run(_cli(*args, "--resume"), cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith(f"resuming {tmp_path / 'run'} from step {status['step']} (")
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "done"
