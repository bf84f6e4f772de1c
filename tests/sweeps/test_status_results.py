"""Trial folders -> states, status table, results table and failure records, without Ray; W&B mode."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from scaling.errors import GrscaleError
from sweeps.grid import expand
from sweeps.outcome import error_line, read_outcome, record_failure
from sweeps.results import write_results
from sweeps.spec import spec_from_dict
from sweeps.status import format_status, sweep_status
from sweeps.wandb_logging import resolve_mode
from tests.sweeps.helpers import tiny_spec

PLANS = expand(spec_from_dict(tiny_spec(budgets=[1e8, 2e8], seeds=[0, 1])))  # 8 trials


def _row(flops, status="running", eval_kind="val", **extra):
    return {"family": "hstu", "size": "xs", "flops": flops, "step": 1, "status": status, "eval_kind": eval_kind,
            "error": None, "wall_s": 0.1, **extra}


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
    _write(trials / ids[2], [_row(3e7)])  # started, unfinished
    record_failure(trials / ids[3], PLANS[3].config, "boom")  # failed before its first row
    return tmp_path


def test_states_and_status_table(sweep_dir):
    table = sweep_status(sweep_dir, PLANS)
    assert list(table) == ["hstu-xs", "dlrm-xs", "total"]
    hstu = table["hstu-xs"]
    assert hstu.counts == {"done": 1, "running": 1, "pending": 0, "diverged": 1, "failed": 1}
    assert hstu.flops_spent == 1e8 + 2e7 + 3e7 and hstu.flops_total == 1e8 + 1e8 + 2e8 + 2e8
    assert table["total"].counts["failed"] == 1 and table["total"].counts["pending"] == 4
    text = format_status("tiny", table)
    assert text.splitlines()[0].split()[:7] == ["sweep", "tiny", "done", "running", "pending", "diverged", "failed"]
    assert text.splitlines()[-1].startswith("total")


def test_results_hold_finished_trials_only_with_sweep_columns(sweep_dir):
    path = write_results(sweep_dir, "tiny", PLANS)
    table = pd.read_parquet(path)
    assert sorted(set(table["trial_id"])) == sorted(p.trial_id for p in PLANS[:2] + [PLANS[3]])
    assert list(table.columns[:3]) == ["sweep", "trial_id", "peak_lr"] and set(table["sweep"]) == {"tiny"}
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
