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

from scaling.allocator import keep_freed_memory
from scaling.config import TrialConfig
from scaling.data.dataset import load_dataset
from scaling.data.loader import TrainBatches
from scaling.data.splits import leave_one_out
from scaling.flops import training_flops
from scaling.train import build_trial_model

CASES = [  # family, size, task, negatives drawn per
    ("hstu", "ml1m", "retrieval", "sequence"), ("hstu", "large-ml1m", "retrieval", "sequence"),
    ("sasrec", "ml1m", "retrieval", "sequence"), ("dlrm", "s", "retrieval", "sequence"),
    ("hstu", "ml1m", "retrieval", "prediction"), ("sasrec", "ml1m", "retrieval", "prediction"),
    ("hstu", "ml1m", "ranking", "sequence"), ("dlrm", "s", "ranking", "sequence"),
]


def matmul_rate(n: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def measure(family: str, size: str, task: str, negatives_per: str, split, steps: int) -> dict:
    cfg = TrialConfig.from_dict({"model": {"family": family, "size": size, "loss": {"negatives_per": negatives_per}},
                                 "task": task, "data": {"dataset": "ml-1m"}, "budget": 1e18})
    torch.manual_seed(0)
    model = build_trial_model(cfg, split)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98))
    batches = TrainBatches(split.train, cfg.optim.batch_size, cfg.data.max_seq_len, seed=0)
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
    epoch_tokens = sum(min(int(n), cfg.data.max_seq_len) for n in split.train.lengths() if n >= 2)
    return {"preset": f"{family}-{size}", "task": task, "negatives_per": negatives_per if task == "retrieval" else "-",
            "tokens_per_s": tokens / elapsed,
            "useful_flops_per_s": useful / elapsed, "executed_flops_per_s": executed / elapsed,
            "epoch_s": epoch_tokens / (tokens / elapsed)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    keep_freed_memory()  # as the Trainer does on the CPU
    split = leave_one_out(load_dataset("ml-1m"))
    peak = matmul_rate()
    rows = [measure(*case, split, args.steps) for case in CASES]
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = [
        "# Training throughput on ML-1M (CPU)", "",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; date {date.today()}; git {sha}",
        f"measured fp32 matmul rate (1024^3): {peak / 1e9:.1f} GFLOP/s", "",
        "batch 128, max length 200; useful = jagged causal FLOPs, executed = padded FLOPs as run", "",
        "| preset | task | negatives per | tokens/s | useful GFLOP/s | executed GFLOP/s | executed / matmul rate "
        "| ML-1M epoch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['preset']} | {r['task']} | {r['negatives_per']} | {r['tokens_per_s']:,.0f} | {r['useful_flops_per_s'] / 1e9:.2f} | "
                     f"{r['executed_flops_per_s'] / 1e9:.2f} | {r['executed_flops_per_s'] / peak:.0%} | {r['epoch_s']:.0f} s |")
    lines += ["", "Target: an ML-1M epoch of hstu-ml1m (retrieval) in under 60 s.", ""]
    text = "\n".join(lines)
    print(text)
    (Path(__file__).parent / "train_throughput.md").write_text(text)


if __name__ == "__main__":
    main()
