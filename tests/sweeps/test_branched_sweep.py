"""A branched WSD sweep under a real local Ray: one constant-rate trunk per (size, seed), each budget
a branch that is offered to Tune as soon as the trunk's snapshot exists; stopped and resumed, it
ends where the uninterrupted sweep ends."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pandas as pd
import pytest
from ray.tune.search import Searcher

from analysis.results import load_results
from scaling import schema
from sweeps.branching import planned_cost
from sweeps.check import plan_trials
from sweeps.ready import ReadyTrials
from sweeps.spec import spec_from_dict
from tests.sweeps.helpers import REPO, cli_command, cli_env, read_offline_run, run_cli, tiny_spec, write_spec

pytestmark = pytest.mark.slow

# The trunk runs to 0.8 * 8e9 (about 900 steps, some 20 s); the 1e8 branch can start after 8 of them.
SPEC = tiny_spec(name="branched", families={"hstu": ["xs"]}, budgets=[1e8, 2e8, 8e9],
                 schedule={"kind": "wsd-branched", "cooldown": 0.2, "shape": "1-sqrt"},
                 trial={**tiny_spec()["trial"], "optim": {"batch_size": 32, "warmup_fraction": 0.0, "warmup_steps": 3}})
TRUNK = "hstu-xs-trunk-seed0"
BRANCHES = ["hstu-xs-C1e8-seed0", "hstu-xs-C2e8-seed0", "hstu-xs-C8e9-seed0"]


def _finals(sweep_dir) -> pd.DataFrame:
    table = pd.read_parquet(sweep_dir / schema.RESULTS_FILE)
    return table[table["eval_kind"] == "final"].set_index("trial_id")


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    root = tmp_path_factory.mktemp("branched")
    proc = run_cli("sweep", "run", str(write_spec(root, SPEC)), "--out", str(root / "runs"))  # W&B offline
    return root / "runs" / "branched", proc


def test_the_plan_is_a_trunk_and_its_branches_at_a_fraction_of_the_compute():
    plans = plan_trials(spec_from_dict(SPEC))
    assert [p.trial_id for p in plans] == [TRUNK, *BRANCHES]
    trunk = plans[0].config
    assert trunk.budget == pytest.approx(6.4e9) and trunk.optim.schedule == "constant"
    assert trunk.branch.snapshots == pytest.approx([8e7, 1.6e8, 6.4e9])
    for plan, budget in zip(plans[1:], (1e8, 2e8, 8e9)):
        cfg = plan.config
        assert (cfg.budget, cfg.branch.trunk, cfg.optim.schedule, cfg.optim.decay_shape) == (budget, TRUNK, "wsd",
                                                                                              "1-sqrt")
        assert cfg.branch.start == pytest.approx(0.8 * budget) and cfg.optim.decay_fraction == 0.2
    cost = planned_cost(plans)
    assert cost.spent == pytest.approx(6.4e9 + 0.2 * 8.3e9) and cost.independent == pytest.approx(8.3e9)


def test_a_branch_is_offered_once_its_snapshot_exists_or_its_trunk_has_ended(tmp_path):
    todo = sorted(plan_trials(spec_from_dict(SPEC)), key=lambda p: -p.config.budget)  # as the launcher orders
    ready = ReadyTrials(todo, tmp_path, lambda: None)
    assert ready.suggest("a") == {"trial_id": TRUNK}  # the 8e9 branch comes first, but its snapshot is not there
    assert ready.suggest("b") is None  # nothing else can start: Tune asks again at its next step
    snapshot = tmp_path / TRUNK / schema.snapshot_name(1.6e8)
    snapshot.parent.mkdir(parents=True)
    snapshot.touch()
    assert ready.suggest("c") == {"trial_id": BRANCHES[1]}
    assert ready.suggest("d") is None
    ready.on_trial_complete("a")  # the trunk ended without the other snapshots: its branches start, and fail saying so
    assert [ready.suggest(x) for x in "ef"] == [{"trial_id": BRANCHES[2]}, {"trial_id": BRANCHES[0]}]
    assert ready.suggest("g") == Searcher.FINISHED
    assert ReadyTrials(todo, tmp_path, lambda: "SIGINT").suggest("h") == Searcher.FINISHED  # a stopping sweep


def test_branches_carry_their_lineage_and_the_sweep_reports_its_compute(whole):
    sweep_dir, proc = whole
    assert proc.returncode == 0, proc.stderr[-3000:]
    ended = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("[")]
    assert sorted(ended) == sorted([TRUNK, *BRANCHES])
    finals = _finals(sweep_dir)
    for trial_id, budget in zip(BRANCHES, (1e8, 2e8, 8e9)):
        row = finals.loc[trial_id]
        assert row["branch_role"] == "branch" and row["trunk"] == TRUNK and row["status"] == "done"
        assert row["flops"] >= budget and 0.8 * budget <= row["branch_flops"] < budget
    assert finals.loc[TRUNK, "branch_role"] == "trunk" and pd.isna(finals.loc[TRUNK, "test/nll"])
    planned = next(line for line in proc.stdout.splitlines() if line.startswith("compute planned: "))
    spent = next(line for line in proc.stdout.splitlines() if line.startswith("compute spent by the finished trials"))
    assert "(1.03x less)" in planned and "x less)" in spent
    # The status counts what each trial computes itself: the trunk once, then the cooldowns.
    status = run_cli("sweep", "status", str(sweep_dir)).stdout.splitlines()[-1].split()
    assert status[:4] == ["total", "4", "0", "0"] and status[-1] == "(100%)"
    assert float(status[-2]) == pytest.approx(planned_cost(plan_trials(spec_from_dict(SPEC))).spent, rel=1e-2)
    # In W&B a branch is its own run, its trunk's rows before its own: each curve whole.
    metrics = sweep_dir / "trials" / BRANCHES[2] / schema.METRICS_FILE
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    run = read_offline_run(sweep_dir / "trials" / BRANCHES[2])
    assert [h["flops"] for h in run["history"]] == [r["flops"] for r in rows] and len(rows) >= 5
    assert f"trunk:{TRUNK}" in run["tags"] and run["config"]["trunk"] == TRUNK
    # The analysis reads the branches; the trunk is no point of the grid.
    assert set(load_results(sweep_dir)["trial_id"]) == set(BRANCHES)


def test_a_stopped_branched_sweep_resumes_to_the_uninterrupted_end(whole, tmp_path):
    reference, _ = whole
    spec_path = write_spec(tmp_path, SPEC)
    trials = tmp_path / "runs" / "branched" / schema.TRIALS_DIR
    proc = subprocess.Popen(cli_command("sweep", "run", str(spec_path), "--out", str(tmp_path / "runs"), "--no-wandb"),
                            cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    snapshot = trials / TRUNK / schema.snapshot_name(1.6e8)
    deadline = time.monotonic() + 150
    while not snapshot.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=150)
    assert proc.returncode == 130, err[-3000:]
    assert json.loads((trials / TRUNK / schema.STATUS_FILE).read_text())["status"] == "interrupted"
    resumed = run_cli("sweep", "run", str(spec_path), "--out", str(tmp_path / "runs"), "--no-wandb", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    mine, theirs = _finals(tmp_path / "runs" / "branched"), _finals(reference)
    for trial_id in BRANCHES:
        for column in ("flops", "step", "branch_flops"):
            assert mine.loc[trial_id, column] == theirs.loc[trial_id, column]
        assert mine.loc[trial_id, "test_last/nll"] == pytest.approx(theirs.loc[trial_id, "test_last/nll"], rel=1e-5)
