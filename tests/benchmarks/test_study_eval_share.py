"""benchmarks/study_eval_share.py on a small results table: each trial's share, those over 25%."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "study_eval_share.py"


def run(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True, cwd=REPO)


def test_shares_per_trial_and_the_trials_over_the_target(tmp_path):
    rows = [
        {"trial_id": "hstu-xs-C1e10-seed0", "eval_kind": "val", "wall_s": 1.0, "eval_s": 0.5, "val_users": 500},
        {"trial_id": "hstu-xs-C1e10-seed0", "eval_kind": "final", "wall_s": 4.0, "eval_s": 2.0, "val_users": 500},
        {"trial_id": "hstu-s-C1e12-seed0", "eval_kind": "final", "wall_s": 80.0, "eval_s": 8.0, "val_users": 6040},
    ]
    pd.DataFrame(rows).to_parquet(tmp_path / "results.parquet")
    result = run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "| hstu-xs-C1e10-seed0 | 500 | 4.0 | 2.0 | 50% |" in result.stdout
    assert "| hstu-s-C1e12-seed0 | 6040 | 80.0 | 8.0 | 10% |" in result.stdout
    assert "2 trials; 1 over 25% of their wall time in evaluation (hstu-xs-C1e10-seed0)" in result.stdout
    assert "trials' wall time summed: 1.4 min" in result.stdout


def test_a_folder_without_results_is_named(tmp_path):
    result = run(tmp_path)
    assert result.returncode == 1 and f"no results table at {tmp_path / 'results.parquet'}" in result.stderr
    pd.DataFrame([{"trial_id": "a", "eval_kind": "final", "wall_s": 1.0}]).to_parquet(tmp_path / "results.parquet")
    result = run(tmp_path)
    assert result.returncode == 1 and "has no eval_s column" in result.stderr
