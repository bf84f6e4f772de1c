"""The README's "Watching a sweep in W&B" commands, verbatim and in order, on a tiny sweep folder: the
dashboard ones with W&B offline (they write the spec and say how to save it), the --from-wandb ones
with the group's runs served by a local source in place of wandb.Api (built from a synthetic table
as the trials log it). Nothing reaches the network: W&B stays offline for everything else."""
from __future__ import annotations

import re
import shlex

import numpy as np
import pandas as pd
import pytest
import yaml

import analysis.from_wandb
from scaling.cli import main
from scaling.schema import DASHBOARD_FILE, RESULTS_FILE, SPEC_FILE
from sweeps.spec import spec_from_dict
from tests.analysis.synth import results_table, saturating
from tests.sweeps.helpers import REPO, FakeRuns, runs_logged_from, tiny_spec


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"### Watching a sweep in W&B\n\n```bash\n(.*?)```", text, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.startswith("grscale ")]


def test_every_readme_dashboard_command_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    sweep_dir = tmp_path / "runs" / "synthetic-small"
    sweep_dir.mkdir(parents=True)
    spec = spec_from_dict(tiny_spec(name="synthetic-small"))
    (sweep_dir / SPEC_FILE).write_text(yaml.safe_dump(spec.to_dict()))
    table = pd.concat([results_table(saturating(E, 400.0, 0.3), family=family, sizes={f"{family}-xs": 1e6},
                                     budgets=np.logspace(15, 18, 4), seeds=2, noise=0.01, rng=np.random.default_rng(0),
                                     sweep="synthetic-small") for family, E in (("hstu", 1.5), ("dlrm", 2.5))])
    source = FakeRuns(runs_logged_from(table))
    monkeypatch.setattr(analysis.from_wandb, "WandbRuns", lambda: source)
    monkeypatch.setattr(analysis.from_wandb, "resolve_mode", lambda enabled: "online")  # only the read-back

    commands = readme_commands()
    assert len(commands) == 4
    for command in commands:
        args = shlex.split(command)[1:]
        if "--from-wandb" in args:
            args += ["--bootstrap", "20"]
        assert main(args) == 0, (command, capsys.readouterr().err)
        out = capsys.readouterr().out
        if args[0] == "dashboard":
            assert "grscale dashboard --spec runs/synthetic-small/dashboard.json" in out
    assert (sweep_dir / DASHBOARD_FILE).exists()
    assert source.asked == [("my-team/grscale", "synthetic-small")] * 2
    snapshot = tmp_path / "runs" / "synthetic-small-wandb"
    assert (snapshot / "fits.json").exists() and (snapshot / "report" / "report.md").exists()
    assert pd.read_parquet(snapshot / RESULTS_FILE)["trial_id"].nunique() == table["trial_id"].nunique()


@pytest.fixture(autouse=True)
def _close_wandb():
    yield
    import wandb

    wandb.teardown()
