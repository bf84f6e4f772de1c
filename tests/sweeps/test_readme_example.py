"""The README's "Running a real study" commands, verbatim and in order, at a tiny scale: in a scratch
folder holding a copy of the spec they name with only its scale reduced (its trial block, lr grid
and extra seeds untouched), and the trial on ML-1M given a budget of a few steps and one validation
point. On the same sweep folder: one sweep per folder (a lock a killed holder cannot leave stuck),
`sweep status`, and a `--resume` with a spec that dropped a family."""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.sweeps.helpers import REPO, cli_command, cli_env, run_cli

pytestmark = pytest.mark.slow

SPEC = "sweeps/specs/synthetic-small.yaml"
# Four budgets as shipped (the fits need four), a few to 40 steps of every size on tiny data.
BUDGETS = {"min": 1e9, "max": 1e10}


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"## Running a real study\n\n```bash\n(.*?)```", text, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.startswith("grscale ")]


def _at_test_scale(**changes) -> dict:
    spec = yaml.safe_load((REPO / SPEC).read_text())
    spec["synthetic"] = {**spec["synthetic"], "num_users": 60, "num_items": 40, "mean_seq_len": 8}
    spec["budgets"] = {**spec["budgets"], **BUDGETS}
    spec["extra_seeds"]["below"] = 2e9
    return {**spec, **changes}


def _at_tiny_scale(command: str, root: Path) -> list[str]:
    args = shlex.split(command)[1:]
    if args[0] == "train":  # a budget of a few steps, one validation point on a sample of users
        (root / "tiny.yaml").write_text("eval: {num_evals: 1}\ndata: {val_users: 200}\n")
        args[args.index("--budget") + 1] = "2e10"
        args += ["--config", "tiny.yaml", "--no-progress"]
    return args


def _hold_lock(sweep_dir: Path) -> subprocess.Popen:
    """Another process holding the sweep folder, as a running `sweep run` does."""
    code = ("import sys, time; from pathlib import Path; from sweeps.status import hold_sweep; "
            "hold_sweep(Path(sys.argv[1])); print('held', flush=True); time.sleep(600)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(sweep_dir)], cwd=REPO, env=cli_env(),
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def _needs_missing_data(command: str) -> bool:
    data = Path(os.environ.get("GRSCALE_DATA_DIR", "/nonexistent"))
    return "ml-1m" in command and not (data / "ml-1m").is_dir()


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme")
    spec = _at_test_scale()
    (root / SPEC).parent.mkdir(parents=True)
    (root / SPEC).write_text(yaml.safe_dump(spec))
    sweep_dir = root / "runs" / spec["name"]
    sweep_dir.mkdir(parents=True)
    holder = _hold_lock(sweep_dir)
    try:
        refused = run_cli("sweep", "run", str(root / SPEC), "--out", str(root / "runs"))
    finally:
        holder.send_signal(signal.SIGKILL)  # a killed holder: the kernel drops its lock
        holder.wait()
    outputs = {}
    for command in readme_commands():
        if _needs_missing_data(command):
            continue  # CI has the real data; elsewhere the commands on it are skipped
        outputs[command] = subprocess.run(cli_command(*_at_tiny_scale(command, root)), cwd=root, env=cli_env(),
                                          capture_output=True, text=True, timeout=300)
    return root, sweep_dir, holder.pid, refused, outputs


def test_a_second_sweep_on_a_held_folder_is_refused_in_one_line(example):
    _, sweep_dir, holder_pid, refused, _ = example
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"grscale sweep: error: {sweep_dir} is in use")
    assert f"pid {holder_pid} on host " in lines[0] and "since " in lines[0]
    assert refused.stdout == ""  # it launched nothing


def test_every_readme_command_runs(example):
    _, _, _, _, outputs = example
    commands = [shlex.split(c)[1] for c in readme_commands()]
    assert commands == ["data", "presets", "train", "sweep", "sweep", "fit", "report", "report"]
    if len(outputs) < len(commands):
        pytest.skip("ML-1M is not under GRSCALE_DATA_DIR: its commands did not run")
    for command, done in outputs.items():
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    train = next(done.stdout for command, done in outputs.items() if command.startswith("grscale train"))
    assert "hstu-s retrieval on ml-1m" in train and "test at best validation point" in train


def test_the_readme_example_runs_every_trial(example):
    _, sweep_dir, _, _, outputs = example
    assert "synthetic-small: 25 trials (0 finished before, 25 to run)" in outputs[f"grscale sweep run {SPEC}"].stdout
    table = pd.read_parquet(sweep_dir / "results.parquet")
    finals = table[table["eval_kind"] == "final"]
    assert len(finals) == 25 and set(finals["status"]) == {"done"}
    assert set(finals["seed"]) == {0, 1} and set(finals[finals["size"] == "xs"]["peak_lr"]) == {1e-3, 3e-3}
    assert set(table["node"]) == {os.uname().nodename}  # the machine that ran each row
    total = outputs["grscale sweep status runs/synthetic-small"].stdout.splitlines()[-1].split()
    assert total[:7] == ["total", "25", "0", "0", "0", "0", "0"]  # done running interrupted pending diverged failed


def test_the_report_names_the_rate_chosen_on_validation_per_cell(example):
    root, sweep_dir, _, _, _ = example
    report = (sweep_dir / "report" / "report.md").read_text()
    selection = report.split("## Setting selection")[1].split("\n## ")[0]
    assert len(re.findall(r"^\| hstu \| xs \|", selection, re.M)) == 4  # one row per budget of hstu-xs
    assert "lr 1e-3" in selection and "lr 3e-3" in selection
    for name in ("report.md", "report.html", "fits.json", "trials.csv", "results.parquet"):
        assert (root / "studies" / "mine" / name).is_file()


def test_resume_with_a_family_dropped_keeps_its_finished_trials(example):
    root, sweep_dir, _, _, _ = example
    spec = _at_test_scale()
    spec["families"].pop("dlrm")
    spec_path = root / "no-dlrm.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    finals = pd.read_parquet(sweep_dir / "results.parquet").query("eval_kind == 'final'")
    dropped = sorted(finals[finals["family"] == "dlrm"]["trial_id"])
    again = run_cli("sweep", "run", str(spec_path), "--out", str(root / "runs"), "--resume")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "15 trials (15 finished before, 0 to run)" in again.stdout
    assert f"10 finished trial(s) the spec no longer lists, kept in the results: {', '.join(dropped)}" in again.stdout
    table = pd.read_parquet(sweep_dir / "results.parquet")
    assert table["trial_id"].nunique() == 25 and set(dropped) <= set(table["trial_id"])
    status = run_cli("sweep", "status", str(sweep_dir)).stdout.splitlines()
    assert status[-2].split()[:2] == ["total", "15"] and status[-1].startswith("10 finished trial(s) the spec no")
