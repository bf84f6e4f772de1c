"""Does training on length-bucketed batches change a trial's quality? ML-1M retrieval, two HSTU sizes,
two seeds, bucketed batches against today's (shuffled) ones: test NLL and NDCG@10 of each trial, and
the bucketed-minus-shuffled difference beside the seed spread. data.length_buckets is on by default
only if the differences stay within the seed spread.
Run: GRSCALE_DATA_DIR=../shared/data .venv/bin/python benchmarks/length_buckets_quality.py
Writes benchmarks/length_buckets_quality.md beside this file.
"""
from __future__ import annotations

import os
import platform
import subprocess
import tempfile
from datetime import date
from pathlib import Path

import torch

from scaling.config import TrialConfig
from scaling.train import train_to_budget

TRIALS = [("xs", 3e11), ("s", 3e11)]  # size, budget
SEEDS = (0, 1)
MAX_SEQ_LEN = 200  # the default length, where buckets change batches most (ML-1M: 5%..95% = 21..200)
VAL_USERS = 500


def run(size: str, budget: float, seed: int, buckets: bool, root: Path) -> dict:
    cfg = TrialConfig.from_dict({
        "model": {"family": "hstu", "size": size}, "budget": budget, "seed": seed, "task": "retrieval",
        "data": {"dataset": "ml-1m", "max_seq_len": MAX_SEQ_LEN, "val_users": VAL_USERS, "length_buckets": buckets},
        "runtime": {"progress": False, "threads": 1}})
    final = train_to_budget(cfg, root / f"{size}-{seed}-{buckets}").final
    return {"size": size, "budget": budget, "seed": seed, "buckets": buckets, "nll": final["test/nll"],
            "ndcg": final["test/ndcg@10"], "wall_s": final["wall_s"], "eval_s": final["eval_s"],
            "executed": final["executed_flops"] / final["flops"]}


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size, budget in TRIALS:
            for seed in SEEDS:
                for buckets in (False, True):
                    rows.append(run(size, budget, seed, buckets, Path(tmp)))
                    print(rows[-1], flush=True)
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = ["# Length buckets and trial quality (ML-1M retrieval, HSTU)", "",
             f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, 1 thread per trial; "
             f"date {date.today()}; git {sha}", "",
             f"max_seq_len {MAX_SEQ_LEN}, batch 128, {VAL_USERS} validation users, test on all users "
             "(at the best validation point).", "",
             "| trial | seed | shuffled NLL | bucketed NLL | shuffled NDCG@10 | bucketed NDCG@10 | train s shuffled / bucketed |",
             "|---|---|---|---|---|---|---|"]
    by = {(r["size"], r["seed"], r["buckets"]): r for r in rows}
    for size, budget in TRIALS:
        for seed in SEEDS:
            a, b = by[(size, seed, False)], by[(size, seed, True)]
            lines.append(f"| hstu-{size} {budget:.0e} | {seed} | {a['nll']:.4f} | {b['nll']:.4f} | {a['ndcg']:.4f} | "
                         f"{b['ndcg']:.4f} | {a['wall_s'] - a['eval_s']:.0f} / {b['wall_s'] - b['eval_s']:.0f} |")
    lines += ["", "| trial | metric | bucketed - shuffled (mean over seeds) | seed spread (shuffled, bucketed) |",
              "|---|---|---|---|"]
    for size, budget in TRIALS:
        for metric in ("nll", "ndcg"):
            diff = sum(by[(size, s, True)][metric] - by[(size, s, False)][metric] for s in SEEDS) / len(SEEDS)
            spread = [abs(by[(size, 0, k)][metric] - by[(size, 1, k)][metric]) for k in (False, True)]
            lines.append(f"| hstu-{size} {budget:.0e} | {metric} | {diff:+.4f} | {spread[0]:.4f}, {spread[1]:.4f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    (Path(__file__).parent / "length_buckets_quality.md").write_text(text)


if __name__ == "__main__":
    main()
