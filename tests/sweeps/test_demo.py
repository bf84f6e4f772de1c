"""`grscale demo` end to end, on a tiny spec: sweep under Ray, fits, report, exponents printed."""
import re

import pytest

from tests.sweeps.helpers import run_cli, tiny_spec, write_spec


@pytest.mark.slow
def test_demo_runs_sweep_fits_and_report(tmp_path):
    spec = write_spec(tmp_path, tiny_spec(name="demo-tiny", budgets=[1e8, 2e8, 4e8, 8e8]))
    args = ("demo", "--spec", str(spec), "--out", str(tmp_path / "runs"), "--no-wandb", "--bootstrap", "50")
    done = run_cli(*args, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = tmp_path / "runs" / "demo-tiny" / "report"
    assert (report / "report.md").is_file() and (report / "report.html").is_file()
    assert (report / "quality_vs_flops.png").stat().st_size > 0
    for family in ("hstu", "dlrm"):
        assert re.search(rf"{family}\s+saturating alpha = -?\d+\.\d+ \[", done.stdout), done.stdout[-1500:]
    assert f"report: {report / 'report.md'}" in done.stdout
    # A second run finds every trial finished and only redoes the analysis.
    again = run_cli(*args, timeout=240)
    assert again.returncode == 0 and "8 finished before, 0 to run" in again.stdout
