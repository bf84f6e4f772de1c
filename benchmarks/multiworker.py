"""Data-parallel trials on this CPU: tokens/s and MFU at 1 and 2 workers, what the Ray Train path
costs at one worker against the in-process trainer, and a sweep on a two-node Ray cluster whose
2-worker trials span both nodes.

- in-process: `train_to_budget` in this process, as a one-worker sweep trial runs (2 threads, and 1).
- ray-train-1: the same trial as a Ray Train job of one worker (2 CPUs, 2 threads), the path a
  `workers: N` spec takes: worker start-up, the process group, rank-0 files.
- ray-train-2: two workers of 1 CPU (1 thread) each, gloo all-reduce of the gradients every step.
tokens/s and MFU are over the trial's training steps (`train_s`); MFU's peak is the measured fp32
matmul rate of each worker's threads, summed over the workers (scaling/peak.py). `wall` is the
whole trial from the call to its end (for Ray Train: job start-up included, Ray itself excluded).

Two nodes: a head (`ray start --head --num-cpus 1`) and a second node joining it (`ray start
--address 127.0.0.1:PORT --num-cpus 1`), both on this machine with their own temp folder; `grscale
sweep run --address` runs a spec of 2-worker trials (1 CPU each): no node holds both workers, so each
trial spans both; Ray Train's log naming `node_rank=1` confirms it.
Run: .venv/bin/python benchmarks/multiworker.py   (writes benchmarks/multiworker.md)
"""
from __future__ import annotations

import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import yaml

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("WANDB_MODE", "offline")

REPO = Path(__file__).resolve().parents[1]
SYNTHETIC = {"num_users": 1000, "num_items": 500, "mean_seq_len": 30, "seed": 0}
TRIAL = {"model": {"family": "hstu", "size": "xs"}, "budget": 2e10, "task": "retrieval",
         "data": {"synthetic": SYNTHETIC, "max_seq_len": 50}, "optim": {"batch_size": 64},
         "eval": {"num_evals": 2}, "runtime": {"progress": False}}
CLUSTER_SPEC = {"name": "two-nodes", "synthetic": {"num_users": 120, "num_items": 60, "mean_seq_len": 10, "seed": 1},
                "families": {"hstu": ["xs"]}, "budgets": [1e8, 2e8], "seeds": [0],
                "trial": {"data": {"max_seq_len": 16}, "optim": {"batch_size": 32},
                          "model": {"loss": {"num_negatives": 16}}},
                "resources": {"workers": 2, "cpus_per_worker": 1}}


def _final(trial_dir: Path) -> dict:
    from scaling.reporting import read_rows

    return read_rows(trial_dir / "metrics.jsonl")[-1]


def _row(path: str, workers: int, final: dict, wall: float) -> dict:
    return {"path": path, "workers": workers, "tokens_per_s": final["tokens"] / final["train_s"],
            "mfu": final["mfu"], "train_s": final["train_s"], "wall_s": wall, "basis": final["mfu_basis"]}


def in_process(root: Path, threads: int) -> dict:
    import torch

    from scaling.config import TrialConfig
    from scaling.train import train_to_budget

    name = f"in-process-{threads}-thread"
    torch.set_num_threads(threads)
    start = time.perf_counter()
    train_to_budget(TrialConfig.from_dict(TRIAL), root / name)
    return _row(name, 1, _final(root / name), time.perf_counter() - start)


def ray_train(root: Path, workers: int) -> dict:
    from scaling import typed
    from scaling.config import TrialConfig
    from sweeps.spec import Resources
    from sweeps.train_workers import worker_group_trainer
    from sweeps.trainable import TrialPayload

    name = f"ray-train-{workers}"
    cpus = 2 // workers
    config = typed.merge(TRIAL, {"runtime": {"threads": cpus, "workers": workers}})
    payload = TrialPayload(trial_id=name, config=TrialConfig.from_dict(config).to_dict(),
                           trial_dir=str(root / name), stop_file=str(root / ".stop"), resume=False, wandb=None,
                           resources=Resources(workers=workers, cpus_per_worker=cpus))
    (root / name).mkdir()
    start = time.perf_counter()
    worker_group_trainer(payload, "cpu", root / "train").fit()
    return _row(name, workers, _final(root / name), time.perf_counter() - start)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop_ray(temp_dir: str) -> None:
    """Our own Ray processes only (their command lines name our temp folder): never `ray stop`."""
    mine = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and temp_dir in (entry / "cmdline").read_bytes().decode(errors="replace"):
                mine.append(int(entry.name))
        except OSError:
            continue
    for pid in mine:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def two_nodes(root: Path) -> dict:
    ray = str(Path(sys.executable).with_name("ray"))
    head_dir = tempfile.mkdtemp(prefix="grs-mw-", dir="/tmp")
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    try:
        for args in (["--head", "--port", str(port), "--include-dashboard", "false"],
                     ["--address", f"127.0.0.1:{port}"]):
            subprocess.run([ray, "start", *args, "--node-ip-address", "127.0.0.1", "--num-cpus", "1",
                            "--disable-usage-stats", "--temp-dir", head_dir], env=env, check=True,
                           capture_output=True, timeout=120)
        spec = root / "two-nodes.yaml"
        spec.write_text(yaml.safe_dump(CLUSTER_SPEC))
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "scaling.cli", "sweep", "run", str(spec), "--out",
                               str(root / "runs"), "--address", f"127.0.0.1:{port}", "--no-wandb"],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        wall = time.perf_counter() - start
        # Each node has 1 CPU and a trial's workers 1 CPU each: a trial that ran had one worker on each node.
        # (Ray Train's own node_rank cannot show it here: it numbers nodes by IP, and both are 127.0.0.1.)
        nodes = proc.stdout.count("sweep folder shared by the cluster's 2 node(s)")
        done = sum(line.startswith("[") and "  done  " in line for line in proc.stdout.splitlines())
        return {"exit": proc.returncode, "wall_s": wall, "two_nodes_probed": nodes == 1, "trials_done": done,
                "out": proc.stdout[-1500:] + proc.stderr[-1500:]}
    finally:
        _stop_ray(head_dir)
        shutil.rmtree(head_dir, ignore_errors=True)


def main() -> None:
    import ray
    import torch

    root = Path(tempfile.mkdtemp(prefix="grs-mw-bench-"))
    rows = [in_process(root, 2), in_process(root, 1)]
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1")
    try:
        rows += [ray_train(root, 1), ray_train(root, 2)]
    finally:
        ray.shutdown()
    ray_one = rows[2]
    cluster = two_nodes(root)
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    load = os.getloadavg()[0]
    base = rows[0]
    lines = [
        "# Data-parallel trials on the CPU (benchmarks/multiworker.py)", "",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, gloo; date "
        f"{date.today()}; git {sha.strip()}; load average at the end {load:.1f} (a machine shared with other jobs: "
        f"absolute figures are noisy, the ratios less so)", "",
        f"trial: hstu-xs retrieval on synthetic data ({SYNTHETIC['num_users']} users, {SYNTHETIC['num_items']} items), "
        f"batch {TRIAL['optim']['batch_size']}, max length {TRIAL['data']['max_seq_len']}, budget "
        f"{TRIAL['budget']:.3g} FLOPs", "",
        "MFU on a CPU is relative to the *measured* fp32 matmul rate of each worker's threads (summed over the "
        "workers), not to a data-sheet peak: `mfu_basis` in every row says which.", "",
        "| path | workers | tokens/s (training steps) | MFU | train s | wall s (trial) | vs in-process tokens/s | MFU basis |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['path']} | {r['workers']} | {r['tokens_per_s']:,.0f} | {r['mfu']:.1%} | {r['train_s']:.1f} "
                     f"| {r['wall_s']:.1f} | {r['tokens_per_s'] / base['tokens_per_s']:.2f}x | {r['basis']} |")
    lines += ["", "This machine is shared with other jobs: the same row moved up to 10x between runs of this script "
              "on the day (load average 3 to 9), and the measured matmul peak is taken per process at its start, under "
              "the load of that moment, so MFU across rows is noisy too. Rerun on an idle machine for figures to "
              "compare.", "",
              "Overhead of the Ray Train path at one worker: "
              f"{ray_one['wall_s'] - ray_one['train_s'] - (base['wall_s'] - base['train_s']):.1f} s more per trial "
              "outside its training steps (the job's start-up: workers, process group), "
              f"{ray_one['tokens_per_s'] / base['tokens_per_s'] - 1:+.1%} tokens/s in its training steps against "
              "in-process at the same 2 threads (one worker takes no collective: a difference there is the process's, "
              "not the arithmetic's).", "",
              "## Two-node cluster on this machine", "",
              f"head and a second node of 1 CPU each; `grscale sweep run --address` of 2 trials of 2 workers x 1 CPU: "
              f"exit {cluster['exit']}, {cluster['wall_s']:.0f} s; the launcher probed 2 nodes: "
              f"{cluster['two_nodes_probed']}; trials done: {cluster['trials_done']} of 2. No node holds both of a "
              f"trial's workers (1 CPU each, 1 CPU per node), so every trial that ran spanned both nodes.", "",
              "GPU rows (NCCL, bf16 autocast, data-sheet MFU) are owed: this session had no GPU.", ""]
    out = Path(__file__).with_suffix(".md")
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    if cluster["exit"] != 0:
        print(cluster["out"], file=sys.stderr)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
