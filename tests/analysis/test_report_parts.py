"""`grscale report DIR DIR ...`: one study run in several sweeps, reported together."""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.results import load_results
from scaling.cli import main
from scaling.schema import RESULTS_FILE
from tests.analysis.synth import results_table, saturating

BUDGETS = np.logspace(15, 18, 4)


def _part(tmp_path, name: str, sizes: dict[str, float]):
    folder = tmp_path / name
    folder.mkdir()
    frame = results_table(saturating(1.5, 400.0, 0.3), family="hstu", sizes=sizes, budgets=BUDGETS, seeds=2,
                          noise=0.01, rng=np.random.default_rng(len(sizes)), sweep=name)
    frame.to_parquet(folder / RESULTS_FILE)
    return folder, frame


def test_a_study_in_two_sweeps_is_reported_over_both(tmp_path):
    large, large_rows = _part(tmp_path, "study", {"hstu-s": 1e6, "hstu-m": 1e7})
    small, small_rows = _part(tmp_path, "study-small", {"hstu-xs": 1e5})
    out = tmp_path / "report"
    assert main(["report", str(large), str(small), "--out", str(out), "--bootstrap", "20", "--no-wandb"]) == 0
    trials = pd.read_csv(out / "trials.csv")
    assert sorted(trials["size"].unique()) == ["hstu-m", "hstu-s", "hstu-xs"]
    assert len(trials) == 3 * len(BUDGETS) * 2
    # The report's own table holds both parts' rows, so it stands on its own.
    together = pd.read_parquet(out / RESULTS_FILE)
    assert len(together) == len(large_rows) + len(small_rows)
    assert set(together["sweep"]) == {"study", "study-small"}
    assert "Scaling report: study,study-small" in (out / "report.md").read_text()
    # The parts are untouched.
    assert len(load_results(large)) == len(large_rows)


def test_a_trial_in_two_parts_is_refused(tmp_path, capsys):
    first, _ = _part(tmp_path, "one", {"hstu-s": 1e6, "hstu-m": 1e7})
    second, _ = _part(tmp_path, "two", {"hstu-s": 1e6})
    assert main(["report", str(first), str(second), "--out", str(tmp_path / "r"), "--no-wandb"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "trial hstu-s-C1e+15-seed0 is in both" in err[0] and "share no trial" in err[0]


def test_reporting_parts_into_one_of_them_is_refused(tmp_path, capsys):
    first, rows = _part(tmp_path, "one", {"hstu-s": 1e6, "hstu-m": 1e7})
    second, _ = _part(tmp_path, "two", {"hstu-xs": 1e5})
    assert main(["report", str(first), str(second), "--out", str(first), "--no-wandb"]) != 0
    assert "is one of the sweep folders reported" in capsys.readouterr().err
    assert len(pd.read_parquet(first / RESULTS_FILE)) == len(rows)
