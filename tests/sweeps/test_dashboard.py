"""`grscale dashboard`: the workspace spec built from a tiny sweep's spec, written offline and saved
through a local store in place of W&B. No test touches the network (tests/sweeps/helpers.go_online
sets W&B 'online' only where the store is a fake)."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from analysis.wandb_log import LAW_SERIES, SCALING_X, law_key
from scaling.schema import DASHBOARD_FILE, RESULTS_FILE, SPEC_FILE, TASKS
from sweeps.dashboard import (describe, load_sweep_spec, publish, save_command, save_spec_file, workspace_from_spec,
                              workspace_spec)
from sweeps.spec import spec_from_dict
from tests.sweeps.helpers import REPO, cli_env, go_online, run_cli, tiny_spec

SPEC = tiny_spec(name="tiny-dash", families={"hstu": ["xs", "s"], "dlrm": ["xs"]}, wandb={"entity": "team"})


@pytest.fixture
def sweep_dir(tmp_path, monkeypatch):
    """A sweep folder as `sweep run` starts it (its spec.yaml), W&B offline."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    folder = tmp_path / "runs" / SPEC["name"]
    folder.mkdir(parents=True)
    (folder / SPEC_FILE).write_text(yaml.safe_dump(spec_from_dict(SPEC).to_dict()))
    return folder


class Store:
    """A WorkspaceStore that keeps what it is given, as W&B would, and answers with a URL."""

    def __init__(self, fail: Exception | None = None, delay_s: float = 0.0) -> None:
        self.saved: list[tuple[dict, str | None]] = []
        self.fail, self.delay_s = fail, delay_s

    def save(self, view, entity):
        time.sleep(self.delay_s)
        if self.fail:
            raise self.fail
        self.saved.append((view, entity))
        name = view.get("name") or f"view{len(self.saved)}"
        return f"https://wandb.test/{entity or view['entity']}/grscale?nw={name}", dict(view, name=name, id="id-" + name)


def _sections(view: dict) -> dict[str, dict]:
    return {s["name"]: s for s in view["spec"]["section"]["panelBankConfig"]["sections"]}


def _written(sweep_dir) -> dict:
    return json.loads((sweep_dir / DASHBOARD_FILE).read_text())


def test_the_workspace_has_a_section_per_task_metric_on_log_flops(sweep_dir):
    store = Store()
    outcome = publish(load_sweep_spec(sweep_dir), sweep_dir, store=store)
    assert outcome.url is None and not store.saved  # offline: nothing is sent
    view = _written(sweep_dir)["view"]
    sections = _sections(view)
    metrics = list(TASKS["retrieval"].metrics)
    assert list(sections)[: len(metrics)] == ["nll", *(m for m in metrics if m != "nll")]  # the registry's, default first
    assert {"hr@10", "ndcg@10"} <= set(sections)
    assert [name for name, s in sections.items() if s["isOpen"]][0] == "nll"
    for metric in metrics:
        lines = [p["config"] for p in sections[metric]["panels"] if p["viewType"] == "Run History Line Plot"]
        assert [c["metrics"] for c in lines] == [[f"val/{metric}"], [f"test/{metric}"]]
        assert all(c["xAxis"] == "flops" and c["xLogScale"] for c in lines)
        # grouped runs: the best of each (family, size) group at each FLOPs count, by the metric's direction
        assert {c["groupAgg"] for c in lines} == {"min" if metric == "nll" else "max"}
        [scatter] = [p["config"] for p in sections[metric]["panels"] if p["viewType"] == "Scatter Plot"]
        assert (scatter["xAxis"], scatter["yAxis"], scatter["xAxisLogScale"]) == (
            "config:budget.value", f"summary:test/{metric}", True)
    compute = [p["config"] for p in sections["learning rate, throughput and budget"]["panels"]]
    assert [c.get("metrics") for c in compute[:2]] == [["lr"], ["throughput/tokens_per_s"]]
    assert compute[-1]["yAxis"] == "summary:flops_ratio"
    laws = sections["scaling laws (grscale report)"]["panels"]
    assert sorted(p["config"]["metrics"] for p in laws) == [[law_key(f, s) for s in LAW_SERIES] for f in ("dlrm", "hstu")]
    assert all(p["config"]["xAxis"] == SCALING_X and p["config"]["xLogScale"] and p["config"]["yLogScale"]
               for p in laws)
    section = view["spec"]["section"]
    assert section["settings"]["xAxis"] == "flops" and section["settings"]["maxRuns"] >= 6
    runset = section["runSets"][0]
    assert [(f["key"], f["op"], f["value"]) for f in runset["filters"]["filters"]] == [
        ({"section": "run", "name": "group"}, "=", "tiny-dash")]
    assert runset["grouping"] == [{"section": "config", "name": "family.value"}, {"section": "config", "name": "size.value"}]
    colors = {path.segments: color for path, color in workspace_from_spec(view).runset_settings.group_colors.items()}
    assert set(colors) == {("hstu", "xs"), ("hstu", "s"), ("dlrm", "xs")}
    assert colors["hstu", "xs"] == colors["dlrm", "xs"] != colors["hstu", "s"]  # coloured by size
    assert view["entity"] == "team" and view["project"] == "grscale"


def test_ranking_sections_come_from_the_registry(sweep_dir):
    (sweep_dir / SPEC_FILE).write_text(yaml.safe_dump(spec_from_dict({**SPEC, "task": "ranking"}).to_dict()))
    publish(load_sweep_spec(sweep_dir), sweep_dir)
    names = list(_sections(_written(sweep_dir)["view"]))
    assert names[:3] == ["ne", "auc", "logloss"]


def test_mfu_is_charted_only_where_rows_carry_it(sweep_dir):
    def compute_panels():
        publish(load_sweep_spec(sweep_dir), sweep_dir)
        panels = _sections(_written(sweep_dir)["view"])["learning rate, throughput and budget"]["panels"]
        return [p["config"].get("metrics") for p in panels]

    assert ["mfu"] not in compute_panels()
    pd.DataFrame({"trial_id": ["a"], "mfu": [0.4]}).to_parquet(sweep_dir / RESULTS_FILE)
    assert ["mfu"] in compute_panels()


def test_the_written_spec_is_the_workspace_w_and_b_gets(sweep_dir, monkeypatch):
    publish(load_sweep_spec(sweep_dir), sweep_dir)
    view = _written(sweep_dir)["view"]
    assert workspace_spec(workspace_from_spec(view)) == view  # what a later save sends is what was written
    go_online(monkeypatch)
    store = Store()
    outcome = save_spec_file(sweep_dir / DASHBOARD_FILE, entity="other", store=store)
    assert store.saved == [(view, "other")]
    assert outcome.url == "https://wandb.test/other/grscale?nw=view1" == _written(sweep_dir)["url"]
    # Saved again (or rebuilt from the sweep), the same view is updated rather than a second one added.
    publish(load_sweep_spec(sweep_dir), sweep_dir, store=store)
    assert store.saved[-1][0]["name"] == "view1" and store.saved[-1][0]["id"] == "id-view1"


def test_online_save_records_the_url(sweep_dir, monkeypatch):
    go_online(monkeypatch)
    store = Store()
    outcome = publish(load_sweep_spec(sweep_dir), sweep_dir, store=store)
    assert len(store.saved) == 1 and outcome.url.startswith("https://wandb.test/team/")
    assert _written(sweep_dir)["url"] == outcome.url and outcome.url in describe(outcome)


@pytest.mark.parametrize("store, reason", [
    (Store(fail=ConnectionError("Name or service not known")), "could not save to W&B (Name or service not known)"),
    (Store(delay_s=5.0), "could not save to W&B (no answer from W&B within 0.3 s)"),
])
def test_unreachable_w_and_b_leaves_the_spec_and_says_how_to_save_it(sweep_dir, monkeypatch, store, reason):
    go_online(monkeypatch)
    started = time.perf_counter()
    outcome = publish(load_sweep_spec(sweep_dir), sweep_dir, store=store, timeout_s=0.3)
    assert time.perf_counter() - started < 3.0  # bounded: never waits on W&B's own retries
    assert outcome.url is None and outcome.reason == reason
    assert describe(outcome).splitlines()[-1].endswith(save_command(sweep_dir / DASHBOARD_FILE))
    assert _written(sweep_dir)["url"] is None


def test_cli_offline_writes_the_spec_and_prints_the_save_command(sweep_dir):
    proc = run_cli("dashboard", str(sweep_dir), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "W&B is offline" in proc.stdout and f"grscale dashboard --spec {sweep_dir / DASHBOARD_FILE}" in proc.stdout
    proc = run_cli("dashboard", "--spec", str(sweep_dir / DASHBOARD_FILE), timeout=60)
    assert proc.returncode == 0 and "W&B is offline" in proc.stdout


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "holds no spec.yaml: not a sweep folder"),
    (lambda d: (d / DASHBOARD_FILE).write_text("{not json"), "is not a dashboard spec"),
    (lambda d: (d / DASHBOARD_FILE).write_text('{"view": {"entity": 3}}'), "is not a valid workspace spec"),
])
def test_bad_input_is_one_line(tmp_path, setup, message):
    setup(tmp_path)
    args = ["dashboard", str(tmp_path)] if message.startswith("holds") else ["dashboard", "--spec",
                                                                           str(tmp_path / DASHBOARD_FILE)]
    proc = run_cli(*args, timeout=60)
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_start_up_loads_neither_wandb_nor_wandb_workspaces():
    code = ("import sys; from scaling.cli import build_parser; build_parser(); "
            "import analysis.from_wandb, analysis.wandb_log, sweeps.dashboard; "
            "print(sorted(m for m in ('wandb', 'wandb_workspaces', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=cli_env(), capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
