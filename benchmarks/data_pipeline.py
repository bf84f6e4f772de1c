"""Data pipeline speed on ML-1M: raw file -> cached arrays, cached load, jagged batch iteration.

Targets (issue 2, 2-core CPU): cold prepare < 5 s, cached load < 0.5 s, batches >= 2M tokens/s.
Run: GRSCALE_DATA_DIR=../shared/data .venv/bin/python benchmarks/data_pipeline.py
Writes benchmarks/data_pipeline.md beside this file.
"""
from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import date
from pathlib import Path

from scaling.data.dataset import load_dataset
from scaling.data.loader import TrainBatches, eval_batches
from scaling.data.splits import leave_one_out


def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        os.environ["GRSCALE_CACHE_DIR"] = cache

        def cold():
            for entry in Path(cache).glob("prepared/*"):
                shutil.rmtree(entry)
            return load_dataset("ml-1m")

        cold_s, log = timed(cold, 3)
        rows.append(("ML-1M raw file -> cached arrays", f"{cold_s:.2f} s", "< 5 s"))
        warm_s, _ = timed(lambda: load_dataset("ml-1m"), 5)
        rows.append(("ML-1M cached load", f"{warm_s:.3f} s", "< 0.5 s"))
    split = leave_one_out(log)
    batches = TrainBatches(split.train, batch_size=128, max_seq_len=200, seed=0)

    def one_epoch():
        return sum(b.num_tokens for b in batches.epoch(0))

    epoch_s, tokens = timed(one_epoch, 3)
    rows.append(("train batches (B=128, L<=200), tokens/s", f"{tokens / epoch_s / 1e6:.1f} M", ">= 2 M"))
    eval_s, _ = timed(lambda: sum(b.batch_size for b in eval_batches(split.test, 256, 200)), 3)
    rows.append(("eval batches, full test split", f"{eval_s:.3f} s", ""))

    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    header = f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; date {date.today()}; git {sha}"
    table = ["| what | measured | target |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    text = "\n".join(["# Data pipeline benchmark (ML-1M)", "", header, "", *table, ""])
    print(text)
    (Path(__file__).parent / "data_pipeline.md").write_text(text)


if __name__ == "__main__":
    main()
