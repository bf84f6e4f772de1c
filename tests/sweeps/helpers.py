"""Tiny sweep specs, a CLI runner in a subprocess, and a reader of W&B offline run files."""
from __future__ import annotations

import copy
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import yaml

REPO = Path(__file__).resolve().parents[2]

# One step of hstu-xs / dlrm-xs on this data is ~1e7 FLOPs: budgets of 1e8..4e8 are 10..40 steps.
TINY_SPEC: dict[str, Any] = {
    "name": "tiny",
    "synthetic": {"num_users": 120, "num_items": 60, "mean_seq_len": 10, "seed": 1},
    "families": {"hstu": ["xs"], "dlrm": ["xs"]},
    "budgets": [1e8, 2e8],
    "seeds": [0],
    "trial": {"data": {"max_seq_len": 16}, "optim": {"batch_size": 32}, "model": {"loss": {"num_negatives": 16}}},
    "resources": {"cpus": 1},
    "max_concurrent_trials": 2,
}


def tiny_spec(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(TINY_SPEC)
    spec.update(copy.deepcopy(changes))
    return spec


# The session's end-to-end sweep (tests/sweeps/conftest.py): its spec and its trials by outcome.
E2E_SPEC = tiny_spec(name="e2e", lr_grid={"hstu": {"xs": [3e-3, 1e6]}})
E2E_FAILING = "dlrm-xs-C2e8-seed0"
E2E_DIVERGING = ("hstu-xs-C1e8-seed0-lr1e6", "hstu-xs-C2e8-seed0-lr1e6")
E2E_DONE = ("hstu-xs-C1e8-seed0-lr3e-3", "hstu-xs-C2e8-seed0-lr3e-3", "dlrm-xs-C1e8-seed0")


def write_spec(folder: Path, spec: dict[str, Any]) -> Path:
    path = folder / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def cli_env() -> dict[str, str]:
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", RAY_USAGE_STATS_ENABLED="0",
               RAY_AUTH_MODE="disabled", PYTHONPATH=str(REPO))
    env.pop("WANDB_API_KEY", None)  # tests never go online
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "scaling.cli", *args]


def run_cli(*args: str, timeout: float = 150) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*args), cwd=REPO, env=cli_env(), capture_output=True, text=True,
                          timeout=timeout)


def _descendants(pid: int) -> set[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = set(), [pid]
    while frontier:
        parent = frontier.pop()
        children = {child for child, p in parents.items() if p == parent} - found
        found |= children
        frontier.extend(children)
    return found


def ray_processes_of(pid: int, name: bytes) -> list[int]:
    """The Ray worker processes named `name` (b"ray::ImplicitFunc": Tune trials; b"ray::RayTrainWorker")
    that this sweep started (never another Ray's on the machine)."""
    found = []
    for child in _descendants(pid):
        try:
            if Path(f"/proc/{child}/cmdline").read_bytes().startswith(name):
                found.append(child)
        except OSError:
            continue
    return found


# --- W&B offline runs: the .wandb file is a LevelDB-style log of protobuf Records --------------------
_BLOCK, _HEADER = 32768, 7


def _whole_log(path: Path, timeout_s: float = 30.0) -> bytes:
    """The log's bytes once it ends on a whole record and has stopped growing: W&B's service may still
    be flushing its buffered writer after run.finish() returns (measured: 3 of 15 logs read at once
    were short, 2 of them cut inside a record; a full-suite run once failed on one)."""
    deadline = time.monotonic() + timeout_s
    data = path.read_bytes()
    while True:
        time.sleep(0.3)
        again = path.read_bytes()
        if (again == data and _ends_whole(data)) or time.monotonic() > deadline:
            return again
        data = again


def _chunks(data: bytes) -> tuple[list[tuple[int, bytes]], bool]:
    """The log's chunks in order, as (kind, payload), and whether the log ends where a chunk (or a
    block's padding) ends; a chunk cut short comes last, with what it has."""
    chunks, pos = [], _HEADER
    while pos < len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:  # a block's tail too short for a header is padding
            pos += left
            continue
        if pos + _HEADER > len(data):
            return chunks, False
        _checksum, length, kind = struct.unpack("<IHB", data[pos:pos + _HEADER])
        chunks.append((kind, data[pos + _HEADER:pos + _HEADER + length]))
        pos += _HEADER + length
    return chunks, pos == len(data)


def _ends_whole(data: bytes) -> bool:
    """Whether the log ends at the end of a record: a whole chunk, and of a record's last (or only) chunk."""
    chunks, whole = _chunks(data)
    return whole and (not chunks or chunks[-1][0] in (1, 4))


def wandb_records(path: Path) -> Iterator[Any]:
    from wandb.proto import wandb_internal_pb2

    data = _whole_log(path)
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    pending = b""
    for kind, chunk in _chunks(data)[0]:
        pending = chunk if kind in (1, 2) else pending + chunk  # 1 full, 2 first, 3 middle, 4 last
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def _read_run_file(path: Path) -> dict[str, Any]:
    # A part killed before W&B wrote its records holds none (not even the run's id).
    out: dict[str, Any] = {"run_id": None, "history": [], "config": {}, "summary": {}, "metrics": [], "exit_code": None}
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out.update(run_id=record.run.run_id, name=record.run.display_name, group=record.run.run_group,
                       tags=list(record.run.tags), project=record.run.project)
            out["config"].update({i.key: json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            out["config"].update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            out["history"].append({i.key or "/".join(i.nested_key): json.loads(i.value_json)
                                   for i in record.history.item})
        elif kind == "summary":
            out["summary"].update({i.key or "/".join(i.nested_key): json.loads(i.value_json)
                                   for i in record.summary.update})
        elif kind == "metric":
            out["metrics"].append((record.metric.glob_name or record.metric.name, record.metric.step_metric))
        elif kind == "exit":
            out["exit_code"] = record.exit.exit_code
    return out


def read_offline_runs(trial_dir: Path) -> list[dict[str, Any]]:
    """Every offline run (part) under a trial folder, oldest first: run_id, name, group, tags,
    config, history, summary, exit code. A resumed trial adds a part with the same run_id."""
    runs = sorted((trial_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert runs, f"no offline W&B run under {trial_dir}"
    return [_read_run_file(path) for path in runs]


def read_offline_run(trial_dir: Path) -> dict[str, Any]:
    """The latest offline run under a trial folder."""
    return read_offline_runs(trial_dir)[-1]


def offline_logged_run(trial_dir: Path, created_at: str = "") -> Any:
    """A trial's W&B run as the W&B API gives it back, from its offline run files: a resumed trial's
    parts are one run (config and summary updated in order, history by step)."""
    from analysis.from_wandb import LoggedRun

    parts = read_offline_runs(trial_dir)
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    history: dict[int, dict[str, Any]] = {}
    for part in parts:
        config.update(part["config"])
        summary.update(part["summary"])
        history.update({entry["_step"]: entry for entry in part["history"]})
    return LoggedRun(name=parts[-1]["name"], config=config, summary=summary, history=list(history.values()),
                     created_at=created_at)


class FakeRuns:
    """A RunsSource (analysis/from_wandb.py) serving fixed runs; it records what it was asked."""

    def __init__(self, runs: list[Any]) -> None:
        self.runs, self.asked = runs, []

    def trial_runs(self, path: str, group: str) -> list[Any]:
        self.asked.append((path, group))
        return [run for run in self.runs if run.config.get("sweep") == group]


def go_online(monkeypatch) -> None:
    """W&B 'online' for code that decides by WANDB_MODE and the key, while every W&B call is faked."""
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)


def runs_logged_from(frame: Any) -> list[Any]:
    """The W&B runs the trials of a results table would have logged (each row's history entry as
    WandbReporter logs it), as the API gives them back."""
    from analysis.from_wandb import LoggedRun
    from sweeps.wandb_logging import history_entry

    runs = []
    for trial_id, rows in frame.groupby("trial_id", sort=False):
        records = rows.to_dict("records")
        config = {"trial_id": trial_id, "sweep": records[0]["sweep"], "seed": records[0]["seed"],
                  "budget": records[0]["budget"]}
        history = [{**history_entry(row), "_step": i} for i, row in enumerate(records)]
        runs.append(LoggedRun(name=trial_id, config=config, summary={"status": records[-1]["status"]}, history=history))
    return runs
