"""The end-to-end sweep that several test modules read (a sweep is the slow part of the suite: it runs once)."""
from __future__ import annotations

import pytest

from tests.sweeps.helpers import E2E_FAILING, E2E_SPEC, run_cli, write_spec



@pytest.fixture(scope="session")
def e2e_sweep(tmp_path_factory):
    """A small sweep under a real local Ray with W&B offline and --dashboard: one trial fails (its
    checkpoint is corrupt), two diverge (an lr-grid value of 1e6), the rest finish.
    Returns (root, spec path, the finished `sweep run` process)."""
    root = tmp_path_factory.mktemp("sweep")
    spec_path = write_spec(root, E2E_SPEC)
    # A corrupt checkpoint for one trial only: under --resume that trial raises when it loads it.
    broken = root / "runs" / "e2e" / "trials" / E2E_FAILING
    broken.mkdir(parents=True)
    (broken / "checkpoint.pt").write_bytes(b"not a checkpoint")
    proc = run_cli("sweep", "run", str(spec_path), "--out", str(root / "runs"), "--resume", "--dashboard")
    return root, spec_path, proc
