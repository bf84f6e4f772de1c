"""One training trial on a GPU, in-process, at fp32 and bf16 autocast: tokens/s and MFU against the
device's data-sheet peak (the one-worker GPU rows of benchmarks/multiworker.md; the Ray Train rows
need Ray, which the lent GPU machine lacks, and two GPUs for NCCL).

Run on a CUDA machine from the repository root: python benchmarks/gpu_trial.py [--seconds 20]
Prints a markdown table; each configuration trains at growing budgets until one takes --seconds.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from scaling.config import TrialConfig
from scaling.train import train_to_budget

PRESETS = (("hstu", "m", 200), ("hstu", "l", 200), ("sasrec", "l", 200), ("dlrm", "l", 200))
SYNTHETIC = {"num_users": 10000, "num_items": 10000, "mean_seq_len": 100.0}


def trial(family: str, size: str, length: int, precision: str, budget: float, out: Path) -> dict:
    cfg = TrialConfig.from_dict({
        "model": {"family": family, "size": size}, "budget": budget, "task": "retrieval",
        "data": {"synthetic": SYNTHETIC, "max_seq_len": length, "val_users": 256},
        "optim": {"batch_size": 128}, "eval": {"num_evals": 1},
        "runtime": {"device": "cuda", "precision": precision, "progress": False}})
    return train_to_budget(cfg, out).final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}\n")
    print("| trial | precision | budget | steps | train s | tokens/s | useful TFLOP/s | MFU | basis |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for family, size, length in PRESETS:
            for precision in ("fp32", "bf16"):
                budget, row = 5e13, None
                while row is None or row["train_s"] < args.seconds / 4:
                    started = time.perf_counter()
                    out = Path(tmp) / f"{family}-{size}-{precision}-{budget:g}"
                    row = trial(family, size, length, precision, budget, out)
                    if time.perf_counter() - started > args.seconds:
                        break
                    budget *= 8
                print(f"| {family}-{size} L{length} | {precision} | {budget:.2g} | {row['step']} | "
                      f"{row['train_s']:.1f} | "
                      f"{row['tokens'] / row['train_s']:,.0f} | {row['flops'] / row['train_s'] / 1e12:.1f} | "
                      f"{row['mfu']:.1%} | {row['mfu_basis']} |", flush=True)


if __name__ == "__main__":
    main()
