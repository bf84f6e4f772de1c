"""Trial folders -> states, status table, results table and failure records, without Ray; the
folder's lock; `sweep status` without torch or Ray; W&B mode."""
from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from scaling.errors import GrscaleError
from sweeps.grid import expand
from sweeps.outcome import error_line, read_outcome, record_failure
from sweeps.results import write_results
from sweeps.spec import spec_from_dict
from sweeps.status import (format_status, hold_sweep, load_sweep, planned, sweep_holder, sweep_status,
                           unlisted_finished, write_plan)
from sweeps.wandb_logging import resolve_mode
from tests.sweeps.helpers import REPO, cli_env, tiny_spec

PLANS = expand(spec_from_dict(tiny_spec(budgets=[1e8, 2e8], seeds=[0, 1])))  # 8 trials
TRIALS = [planned(p) for p in PLANS]
DROPPED = "sasrec-xs-C1e8-seed0"  # a finished trial the plan does not list (its family was dropped)


def _row(flops, status="running", eval_kind="val", **extra):
    return {"family": "hstu", "size": "xs", "flops": flops, "step": 1, "status": status, "eval_kind": eval_kind,
            "error": None, "wall_s": 0.1, "node": "node-a", **extra}


def _write(trial_dir, rows, status=None):
    trial_dir.mkdir(parents=True)
    (trial_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if status:
        (trial_dir / "status.json").write_text(json.dumps({"status": status, "error": None,
                                                           "flops": rows[-1]["flops"], "step": 3}))


@pytest.fixture
def sweep_dir(tmp_path):
    trials = tmp_path / "trials"
    ids = [p.trial_id for p in PLANS]
    _write(trials / ids[0], [_row(1e7), _row(1.01e8, "done", "final")], "done")  # overshoots: capped at 1e8
    _write(trials / ids[1], [_row(1e7), _row(2e7, "diverged", "final", error="nan")], "diverged")
    _write(trials / ids[2], [_row(3e7)])  # started, unfinished, no status: running or killed
    record_failure(trials / ids[3], PLANS[3].config, "boom")  # failed before its first row
    _write(trials / ids[4], [_row(1e7)], "interrupted")  # dlrm-xs: stopped by a signal
    _write(trials / DROPPED, [_row(1e7), _row(1e8, "done", "final")], "done")
    (tmp_path / "spec.yaml").write_text("name: tiny\n")
    write_plan(tmp_path, TRIALS)
    return tmp_path


def test_states_and_status_table(sweep_dir):
    table = sweep_status(sweep_dir, TRIALS, live=True)
    assert list(table) == ["hstu-xs", "dlrm-xs", "total"]
    hstu = table["hstu-xs"]
    assert hstu.counts == {"done": 1, "running": 1, "interrupted": 0, "pending": 0, "diverged": 1, "failed": 1}
    assert hstu.flops_spent == 1e8 + 2e7 + 3e7 and hstu.flops_total == 1e8 + 1e8 + 2e8 + 2e8
    assert table["dlrm-xs"].counts["interrupted"] == 1 and table["total"].counts["pending"] == 3
    text = format_status("tiny", table)
    assert text.splitlines()[0].split()[:8] == ["sweep", "tiny", "done", "running", "interrupted", "pending",
                                                "diverged", "failed"]
    assert text.splitlines()[-1].startswith("total")


def test_a_started_trial_runs_only_while_a_sweep_holds_the_folder(sweep_dir):
    """Without the lock held, a started trial without a status is one whose sweep died: interrupted."""
    assert sweep_holder(sweep_dir) is None
    assert sweep_status(sweep_dir, TRIALS, live=False)["hstu-xs"].counts["running"] == 0
    assert sweep_status(sweep_dir, TRIALS, live=False)["hstu-xs"].counts["interrupted"] == 1
    with hold_sweep(sweep_dir):
        assert "pid " in sweep_holder(sweep_dir)
        with pytest.raises(GrscaleError, match=r"in use by another `grscale sweep run` \(pid \d+ on host "):
            hold_sweep(sweep_dir, wait_s=0)  # a second open file description conflicts, as another process's
    assert sweep_holder(sweep_dir) is None


def test_plan_round_trip_and_unlisted_finished_trials(sweep_dir):
    name, trials = load_sweep(sweep_dir)
    assert name == "tiny" and trials == TRIALS
    assert unlisted_finished(sweep_dir, trials) == [DROPPED]
    text = format_status(name, sweep_status(sweep_dir, trials, live=False), [DROPPED])
    assert text.splitlines()[-1].startswith("1 finished trial(s) the spec no longer lists") and DROPPED in text


def test_status_cli_loads_neither_torch_nor_ray(sweep_dir):
    code = ("import sys; from scaling.cli import main; code = main(['sweep', 'status', sys.argv[1]]); "
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'ray', 'wandb', 'pandas'}); "
            "print('HEAVY', heavy); sys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", code, str(sweep_dir)], cwd=REPO, env=cli_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout
    assert proc.stdout.splitlines()[-3].split()[0] == "total"  # then the unlisted line, then HEAVY


def test_results_hold_every_finished_trial_folder_with_sweep_columns(sweep_dir):
    path = write_results(sweep_dir, "tiny")
    table = pd.read_parquet(path)
    assert sorted(set(table["trial_id"])) == sorted([p.trial_id for p in PLANS[:2] + [PLANS[3]]] + [DROPPED])
    assert list(table.columns[:3]) == ["sweep", "trial_id", "select_on"] and set(table["sweep"]) == {"tiny"}
    assert set(table["node"].dropna()) == {"node-a"}
    assert not list(sweep_dir.glob(".*tmp"))  # the temp file was renamed over the table


def test_failure_record(sweep_dir):
    trial_dir = sweep_dir / "trials" / PLANS[3].trial_id
    outcome = read_outcome(trial_dir)
    assert (outcome.state, outcome.error) == ("failed", "boom")
    row = json.loads((trial_dir / "metrics.jsonl").read_text())
    assert (row["status"], row["eval_kind"], row["error"], row["flops"]) == ("failed", "final", "boom", 0.0)
    assert error_line(GrscaleError("bad dataset\nmore")) == "bad dataset"
    assert error_line(ValueError("x must be 1\ndetails")) == "ValueError: x must be 1"


@pytest.mark.parametrize("env, enabled, expected", [
    ({"WANDB_MODE": "offline", "WANDB_API_KEY": "k" * 40}, True, "offline"),
    ({"WANDB_API_KEY": "k" * 40}, True, "online"),
    ({}, True, "offline"),
    ({"WANDB_API_KEY": "k" * 40}, False, None),
    ({"WANDB_MODE": "disabled"}, True, None),
])
def test_wandb_mode(monkeypatch, tmp_path, env, enabled, expected):
    for name in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))  # no login on file
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert resolve_mode(enabled) == expected
