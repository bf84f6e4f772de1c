"""torch.compile of the training step (runtime.compile) against eager, per family, end to end.

For each family at size s on ML-1M (the CPU study's settings: histories of 50, batch 128 in length
buckets, one thread): seconds of the first compiled steps (compilation included), seconds per step
after, against eager; and the steps a trial must take before compiling pays. The CPU study's median
trial takes 88 steps (studies/ml1m/retrieval/trials.csv).
Run: GRSCALE_DATA_DIR=../shared/data .venv/bin/python benchmarks/compile_step.py
Writes benchmarks/compile_step.md beside this file.
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
from scaling.compile import training_step
from scaling.config import TrialConfig
from scaling.data.dataset import load_dataset
from scaling.data.loader import trial_batches
from scaling.data.splits import leave_one_out
from scaling.train import build_trial_model

FAMILIES = ("hstu", "sasrec", "dlrm")
TYPICAL_STEPS = 88


def step_times(family: str, split, compiled: bool, steps: int) -> list[float]:
    cfg = TrialConfig.from_dict({"model": {"family": family, "size": "s"}, "budget": 1e18,
                                 "data": {"dataset": "ml-1m", "max_seq_len": 50, "length_buckets": True}})
    torch.manual_seed(0)
    model = build_trial_model(cfg, split)
    loss_fn = training_step(model, compiled)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    times = []
    for i, batch in enumerate(trial_batches(split.train, cfg).epoch(0)):
        if i == steps:
            break
        start = time.perf_counter()
        loss, _ = loss_fn(batch, cfg.task, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=24)
    args = parser.parse_args()
    keep_freed_memory()
    torch.set_num_threads(1)
    split = leave_one_out(load_dataset("ml-1m"))
    rows = []
    for family in FAMILIES:
        eager = step_times(family, split, False, args.steps)
        compiled = step_times(family, split, True, args.steps)
        eager_step = sorted(eager[2:])[len(eager[2:]) // 2]
        compiled_step = sorted(compiled[8:])[len(compiled[8:]) // 2]  # after the recompiles of new shapes
        overhead = sum(compiled[:8]) - 8 * compiled_step
        gain = eager_step - compiled_step
        rows.append({"preset": f"{family}-s", "eager": eager_step, "compiled": compiled_step, "overhead": overhead,
                     "break_even": overhead / gain if gain > 0 else float("inf"),
                     "typical": (TYPICAL_STEPS * compiled_step + overhead) / (TYPICAL_STEPS * eager_step)})
        print(rows[-1], flush=True)
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = ["# torch.compile of the training step (CPU)", "",
             f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, 1 thread; "
             f"date {date.today()}; git {sha}", "",
             f"ML-1M, histories of 50, batch 128 in length buckets; {args.steps} steps each; median step times "
             "(compiled: after its first 8 steps, whose excess over the median is the compile overhead).", "",
             "| preset | eager s/step | compiled s/step | compile overhead s | steps to break even "
             f"| compiled / eager, {TYPICAL_STEPS}-step trial |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['preset']} | {r['eager']:.4f} | {r['compiled']:.4f} | {r['overhead']:.1f} | "
                     f"{r['break_even']:.0f} | {r['typical']:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    (Path(__file__).parent / "compile_step.md").write_text(text)


if __name__ == "__main__":
    main()
