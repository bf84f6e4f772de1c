"""Training throughput per family on this CPU: tokens/s, achieved FLOP/s, ML-1M epoch time.

Target (issue 3): an ML-1M epoch of hstu-ml1m in under 60 s on the 2-core CPU.
Achieved FLOP/s is set beside the CPU's measured fp32 matmul rate (the ceiling for this work).
Run: GRSCALE_DATA_DIR=../shared/data .venv/bin/python benchmarks/train_throughput.py [--steps N]
Writes benchmarks/train_throughput.md beside this file.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from datetime import date
from pathlib import Path

import torch

from scaling.config import TrialConfig
from scaling.data.dataset import load_dataset
from scaling.data.loader import TrainBatches
from scaling.data.splits import leave_one_out
from scaling.flops import training_flops
from scaling.train import build_trial_model

CASES = [("hstu", "ml1m", "retrieval"), ("hstu", "large-ml1m", "retrieval"), ("sasrec", "ml1m", "retrieval"),
         ("dlrm", "s", "retrieval"), ("hstu", "ml1m", "ranking"), ("dlrm", "s", "ranking")]


def matmul_rate(n: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def measure(family: str, size: str, task: str, split, steps: int) -> dict:
    cfg = TrialConfig(family=family, size=size, task=task, dataset="ml-1m", budget=1e18, progress=False)
    torch.manual_seed(0)
    model = build_trial_model(cfg, split)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98))
    batches = TrainBatches(split.train, cfg.batch_size, cfg.max_seq_len, seed=0)
    generator = torch.Generator().manual_seed(0)
    tokens = useful = executed = 0.0
    elapsed = 0.0
    for i, batch in enumerate(batches.epoch(0)):
        if i == steps + 2:
            break
        start = time.perf_counter()
        loss, _ = model.training_loss(batch, task, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i >= 2:  # the first steps warm up allocators
            elapsed += time.perf_counter() - start
            count = training_flops(model.config, task, batch.lengths())
            tokens += batch.num_tokens
            useful += count.useful
            executed += count.executed
    epoch_tokens = sum(min(int(n), cfg.max_seq_len) for n in split.train.lengths() if n >= 2)
    return {"preset": f"{family}-{size}", "task": task, "tokens_per_s": tokens / elapsed,
            "useful_flops_per_s": useful / elapsed, "executed_flops_per_s": executed / elapsed,
            "epoch_s": epoch_tokens / (tokens / elapsed)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    split = leave_one_out(load_dataset("ml-1m"))
    peak = matmul_rate()
    rows = [measure(f, s, t, split, args.steps) for f, s, t in CASES]
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = [
        "# Training throughput on ML-1M (CPU)", "",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; date {date.today()}; git {sha}",
        f"measured fp32 matmul rate (1024^3): {peak / 1e9:.1f} GFLOP/s", "",
        "batch 128, max length 200; useful = jagged causal FLOPs, executed = padded FLOPs as run", "",
        "| preset | task | tokens/s | useful GFLOP/s | executed GFLOP/s | executed / matmul rate | ML-1M epoch |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['preset']} | {r['task']} | {r['tokens_per_s']:,.0f} | {r['useful_flops_per_s'] / 1e9:.2f} | "
                     f"{r['executed_flops_per_s'] / 1e9:.2f} | {r['executed_flops_per_s'] / peak:.0%} | {r['epoch_s']:.0f} s |")
    lines += ["", "Target: an ML-1M epoch of hstu-ml1m (retrieval) in under 60 s.", ""]
    text = "\n".join(lines)
    print(text)
    (Path(__file__).parent / "train_throughput.md").write_text(text)


if __name__ == "__main__":
    main()
