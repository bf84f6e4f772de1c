"""What evaluating a user costs against training, per family and size, and the fastest eval batch size.

For each preset on ML-1M (the study's settings: histories of 50, batch 128, one thread per trial as the
CPU sweep runs them): seconds per useful training FLOP over a few steps, seconds per validation user
(full-catalog retrieval) at several eval batch sizes, and the ratio of the two per modelled FLOP
(scaling.flops.evaluation_flops) that scaling.eval_budget.EVAL_COST holds.
Run: GRSCALE_DATA_DIR=../shared/data .venv/bin/python benchmarks/eval_cost.py
Writes benchmarks/eval_cost.md beside this file.
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
from scaling.data.loader import trial_batches
from scaling.data.splits import leave_one_out, sample_users
from scaling.evaluate import evaluate
from scaling.flops import evaluation_flops, training_flops
from scaling.train import build_trial_model

PRESETS = [(family, size) for family in ("hstu", "sasrec", "dlrm") for size in ("xs", "s", "m", "l")]
BATCH_SIZES = (64, 128, 256, 512, 1024, 2048)


def config(family: str, size: str, eval_batch_size: int = 512) -> TrialConfig:
    return TrialConfig.from_dict({"model": {"family": family, "size": size}, "budget": 1e18,
                                  "data": {"dataset": "ml-1m", "max_seq_len": 50, "length_buckets": True},
                                  "runtime": {"eval_batch_size": eval_batch_size}})


def train_seconds_per_flop(cfg: TrialConfig, split, steps: int) -> float:
    torch.manual_seed(0)
    model = build_trial_model(cfg, split)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    elapsed = flops = 0.0
    for i, batch in enumerate(trial_batches(split.train, cfg).epoch(0)):
        if i == steps + 1:
            break
        start = time.perf_counter()
        loss, _ = model.training_loss(batch, cfg.task, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i >= 1:  # the first step warms up allocators
            elapsed += time.perf_counter() - start
            flops += training_flops(model.config, cfg.task, batch.lengths()).useful
    return elapsed / flops


def eval_seconds_per_user(cfg: TrialConfig, split, users) -> float:
    torch.manual_seed(0)
    model = build_trial_model(cfg, split)
    evaluate(model, sample_users(users, 64), cfg, torch.device("cpu"))  # warm up
    start = time.perf_counter()
    evaluate(model, users, cfg, torch.device("cpu"))
    return (time.perf_counter() - start) / users.num_examples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--users", type=int, default=1024)
    args = parser.parse_args()
    keep_freed_memory()
    torch.set_num_threads(1)  # a CPU sweep's trial runs on one thread (resources.cpus: 1)
    split = leave_one_out(load_dataset("ml-1m"))
    users = sample_users(split.val, args.users)
    history = float(users.history.lengths().clip(max=50).mean())
    rows = []
    for family, size in PRESETS:
        cfg = config(family, size)
        per_flop = train_seconds_per_flop(cfg, split, args.steps)
        by_batch = {b: eval_seconds_per_user(config(family, size, b), split, users)
                    for b in (BATCH_SIZES if size == "s" else (512,))}
        model = build_trial_model(cfg, split)
        user_flops = evaluation_flops(model.config, cfg.task, history, split.num_items + 1, 512)
        rows.append({"preset": f"{family}-{size}", "train_gflops": 1e-9 / per_flop, "by_batch": by_batch,
                     "user_flops": user_flops, "cost": by_batch[512] / (user_flops * per_flop)})
        print(rows[-1], flush=True)
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = [
        "# Evaluation cost against training (ML-1M, CPU, one thread)", "",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, 1 thread; "
        f"date {date.today()}; git {sha}", "",
        f"Histories of 50 (mean {history:.1f} items), training batch 128 with length buckets, "
        f"{args.users} validation users, full-catalog retrieval with history exclusion.", "",
        "| preset | training useful GFLOP/s | modelled eval MFLOP per user | eval ms per user (batch 512) "
        "| cost per eval FLOP / per training FLOP |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['preset']} | {r['train_gflops']:.2f} | {r['user_flops'] / 1e6:.2f} | "
                     f"{r['by_batch'][512] * 1e3:.2f} | {r['cost']:.2f} |")
    lines += ["", "Eval ms per user by eval batch size (size s):", "",
              "| preset | " + " | ".join(str(b) for b in BATCH_SIZES) + " |",
              "|---|" + "---|" * len(BATCH_SIZES)]
    for r in rows:
        if len(r["by_batch"]) > 1:
            lines.append(f"| {r['preset']} | " + " | ".join(f"{r['by_batch'][b] * 1e3:.2f}" for b in BATCH_SIZES) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    (Path(__file__).parent / "eval_cost.md").write_text(text)


if __name__ == "__main__":
    main()
