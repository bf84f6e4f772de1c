"""Where an hstu-ml1m training step's time goes on this CPU (issue 26: useful FLOP/s at 25% of the matmul rate).

ML-1M retrieval at the paper's length 200, batch 128, one thread, the default path (tiled attention,
shuffled batches, freed memory kept as the Trainer does). Steps on batches 3-8 of the epoch, twice over
after one warm-up pass: batches whose activations outgrow the heap fault pages in and are left out, so
the figures are the steady state of a long trial. Per step: the forward's attention (all layers,
`kernels.hstu_attention_tiles.hstu_attention_tiled`), the forward's sampled-softmax loss, the rest of the
forward, the backward, the optimizer; then useful GFLOP/s against an fp32 1024^3 matmul, and the step time
that 25% of that rate would need.
Run: GRSCALE_DATA_DIR=../shared/data .venv/bin/python benchmarks/hstu_step_breakdown.py
Writes benchmarks/hstu_step_breakdown.md beside this file.
"""
from __future__ import annotations

import os
import platform
import time
from collections import defaultdict
from datetime import date
from pathlib import Path
from unittest import mock

import torch

import kernels.hstu_attention_tiles as tiles
import models.sequential as sequential
from scaling.allocator import keep_freed_memory
from scaling.data.dataset import load_dataset
from scaling.data.splits import leave_one_out
from train_throughput import StepRunner, git_sha, matmul_rate  # run as a script: benchmarks/ is on the path

BATCHES = range(3, 9)
REPEATS = 2
OUT = Path(__file__).parent / "hstu_step_breakdown.md"


def timed(function, seconds: dict, key: str):
    """`function`, adding its wall time to seconds[key] on every call."""
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        seconds[key] += time.perf_counter() - start
        return result
    return wrapper


def breakdown() -> dict[str, float]:
    runner = StepRunner("hstu", "ml1m", "retrieval", 200, leave_one_out(load_dataset("ml-1m")),
                        buckets=False, before=False)
    model, optimizer = runner.model, runner.optimizer
    for i in BATCHES:  # warm-up pass: the heap grows to these batches' peak
        runner.step(i, timed=False)
    seconds: dict[str, float] = defaultdict(float)
    with mock.patch.object(tiles, "hstu_attention_tiled", timed(tiles.hstu_attention_tiled, seconds, "attention")), \
            mock.patch.object(sequential, "sampled_softmax_loss",
                              timed(sequential.sampled_softmax_loss, seconds, "loss")):
        for _ in range(REPEATS):
            for i in BATCHES:
                start = time.perf_counter()
                loss, _ = model.training_loss(runner.batches[i], "retrieval", runner.generator)
                forward = time.perf_counter()
                optimizer.zero_grad()
                loss.backward()
                backward = time.perf_counter()
                optimizer.step()
                seconds["forward"] += forward - start
                seconds["backward"] += backward - forward
                seconds["optimizer"] += time.perf_counter() - backward
    steps = REPEATS * len(BATCHES)
    per_step = {key: value / steps for key, value in seconds.items()}
    per_step["step"] = per_step["forward"] + per_step["backward"] + per_step["optimizer"]
    per_step["useful"] = sum(runner.counts[i].useful for i in BATCHES) / len(BATCHES)
    return per_step


def main() -> None:
    keep_freed_memory()  # as the Trainer does on the CPU
    torch.set_num_threads(1)
    t = breakdown()
    rate = sorted(matmul_rate() for _ in range(5))[2]
    rows = [("forward: attention (2 layers, tiles)", t["attention"]), ("forward: sampled-softmax loss", t["loss"]),
            ("forward: the rest (embeddings, projections, norms)", t["forward"] - t["attention"] - t["loss"]),
            ("backward", t["backward"]), ("optimizer (AdamW)", t["optimizer"]), ("step", t["step"])]
    lines = [
        "# Where an hstu-ml1m training step's time goes (CPU)", "",
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, 1 thread; date {date.today()}; "
        f"git {git_sha()}. ML-1M retrieval, length 200, batch 128, default path; mean of {REPEATS} passes over "
        f"batches {BATCHES.start}-{BATCHES.stop - 1} after a warm-up pass.", "",
        "| part | ms per step | share |", "|---|---|---|",
        *[f"| {name} | {value * 1e3:.1f} | {value / t['step']:.0%} |" for name, value in rows], "",
        f"Useful work {t['useful'] / 1e9:.2f} GFLOP per step: {t['useful'] / t['step'] / 1e9:.1f} GFLOP/s, "
        f"{t['useful'] / t['step'] / rate:.0%} of the fp32 1024^3 matmul rate ({rate / 1e9:.0f} GFLOP/s, median of 5). "
        f"25% of that rate needs a step of {t['useful'] / (0.25 * rate) * 1e3:.0f} ms.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    OUT.write_text(text)


if __name__ == "__main__":
    main()
