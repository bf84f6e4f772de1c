"""Your own log at industrial size: streaming preparation and the memory-mapped cache.

Generates a Parquet log (default 100M interactions, 10M users, 1M items; `--interactions` etc. for
smaller runs) under --workdir (not in the repo), then measures, each in a fresh process:
preparation time and peak resident memory, cache bytes per interaction, cold load (the cache
entry's pages evicted first) and warm load, and what two processes mapping the same cache each hold
privately (USS) versus shared, after touching every array.
Targets (issue 24, 2-core CPU, 23 GB RAM): peak < 8 GB, warm load < 1 s, per-worker extra ~ 0.
Run: .venv/bin/python benchmarks/own_data.py [--interactions 100000000] [--workdir /tmp/grscale-own-data]
Writes benchmarks/own_data.md beside this file (only for the full default size).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FULL = {"interactions": 100_000_000, "users": 10_000_000, "items": 1_000_000}
WRITE_ROWS = 5_000_000


def generate(path: Path, interactions: int, users: int, items: int, seed: int = 0) -> None:
    """A log as an export writes it: sparse int64 user IDs, popularity-skewed int64 item IDs,
    millisecond times over a year, a click label; rows in time order across users."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    start_ms = 1_700_000_000_000
    step_ms = 365 * 86400 * 1000 // max(interactions, 1)
    schema = pa.schema([("user_id", pa.int64()), ("item_id", pa.int64()), ("ts", pa.int64()), ("clicked", pa.int8())])
    tmp = path.with_suffix(".tmp")
    with pq.ParquetWriter(tmp, schema) as writer:
        for first in range(0, interactions, WRITE_ROWS):
            n = min(WRITE_ROWS, interactions - first)
            user = rng.integers(0, users, n) * 37 + 1_000_003
            item = np.minimum((rng.pareto(1.2, n) * items / 50).astype(np.int64), items - 1) * 11 + 500
            ts = start_ms + (first + np.arange(n)) * step_ms + rng.integers(0, step_ms + 1, n)
            clicked = (rng.random(n) < 0.3).astype(np.int8)
            writer.write_table(pa.table([user, item, ts, clicked], schema=schema), row_group_size=1 << 20)
    os.replace(tmp, path)


NOTES = """Notes.
- The generator draws item IDs from a Pareto tail, so not every one of the 1M IDs occurs.
- Preparation includes hashing the file once (the cache key); later loads find the digest remembered
  for that file version. A load maps the arrays (`np.load(mmap_mode="r")`): the load times are the
  mapping; pages are read on first touch, once per machine (the two-worker rows touch every array).
- 24.8 B/interaction: item id and time int64 (8 + 8), label and rating float32 (4 + 4; the rating is
  NaN without a rating column), offsets. The layout is the named datasets' one; int32 item ids and no
  rating array would halve it, not done.
- Shared is the prepared log. A trial's split (`scaling.data.splits`) still gathers its training and
  evaluation sequences into arrays of its own: about the log's size again per worker process.
"""


CHILD = r'''
import json, os, resource, sys, time
import numpy as np
from scaling.data.dataset import load_dataset
import scaling.data.generic  # its imports (pyarrow, pandas) are not the data
from scaling.data.logspec import LogSpec
spec = LogSpec(path=sys.argv[2], user="user_id", item="item_id", time="ts", label="clicked")
mode = sys.argv[1]
if mode == "cold":  # evict the cache entry's pages, as after a reboot
    from scaling.data.generic import entry_path, source_digest, source_files
    files, _ = source_files(spec)
    for f in entry_path(spec, source_digest(files, files[0])).iterdir():
        fd = os.open(f, os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
def private():
    fields = dict(line.split(":", 1) for line in open("/proc/self/smaps_rollup").read().splitlines()[1:])
    kb = lambda k: int(fields[k].split()[0]) * 1024
    return fields, kb, kb("Private_Clean") + kb("Private_Dirty")
before = private()[2]
start = time.perf_counter()
log = load_dataset(spec)
seconds = time.perf_counter() - start
out = {"seconds": seconds, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
       "interactions": log.num_interactions, "users": log.num_users, "items": log.num_items}
if mode == "worker":  # touch every array, as a worker iterating over the data does
    total = sum(float(np.asarray(a).sum()) for a in log.arrays().values() if np.asarray(a).ndim)
    print("ready", flush=True)
    sys.stdin.readline()  # measured once both workers map the cache
    fields, kb, after = private()
    out.update(rss=kb("Rss"), pss=kb("Pss"), private=after - before, shared=kb("Shared_Clean") + kb("Shared_Dirty"))
print(json.dumps(out), flush=True)
if mode == "worker":
    sys.stdin.readline()  # exit only once the other worker has measured too
'''


def child(mode: str, path: Path, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(path)], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def two_workers(path: Path, env: dict) -> list[dict]:
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, "worker", str(path)], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:
        proc.stdin.write("\n")
        proc.stdin.flush()
    measured = [json.loads(proc.stdout.readline()) for proc in procs]
    for proc in procs:
        proc.communicate("\n")
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for key, value in FULL.items():
        parser.add_argument(f"--{key}", type=int, default=value)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/grscale-own-data"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    log_path = args.workdir / f"events-{args.interactions}.parquet"
    if not log_path.exists():
        start = time.perf_counter()
        generate(log_path, args.interactions, args.users, args.items)
        print(f"generated {log_path} ({log_path.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - start:.0f} s")
    cache = args.workdir / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "GRSCALE_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO)}
    prep = child("prepare", log_path, env)
    n = prep["interactions"]
    entry = next((cache / "prepared").iterdir())
    arrays = sum(f.stat().st_size for f in entry.glob("*.npy"))
    mapping = sum(f.stat().st_size for f in entry.glob("*.parquet"))
    cold = child("cold", log_path, env)
    warm = min(child("warm", log_path, env)["seconds"] for _ in range(3))
    workers = two_workers(log_path, env)
    gb = 1e9
    rows = [
        ("log", (f"{n:,} interactions, {prep['users']:,} users, {prep['items']:,} items; "
                 f"Parquet {log_path.stat().st_size / gb:.2f} GB"), ""),
        ("preparation (file -> cache entry)", f"{prep['seconds']:.0f} s", ""),
        ("peak resident memory while preparing", f"{prep['peak_rss'] / gb:.2f} GB", "< 8 GB"),
        ("final arrays (item, time, label, rating, offsets)", f"{arrays / gb:.2f} GB = {arrays / n:.1f} B/interaction", ""),
        ("ID mapping (users.parquet, items.parquet)", f"{mapping / 1e6:.0f} MB", ""),
        ("cold load (entry's pages evicted)", f"{cold['seconds']:.3f} s", ""),
        ("warm load (best of 3 fresh processes)", f"{warm:.3f} s", "< 1 s"),
        ("2 workers touching every array: RSS each", " / ".join(f"{w['rss'] / gb:.2f} GB" for w in workers), ""),
        ("  of which shared page cache (one copy)", " / ".join(f"{w['shared'] / gb:.2f} GB" for w in workers), ""),
        ("  private memory the load added (per-worker extra)", " / ".join(f"{w['private'] / 1e6:.0f} MB" for w in workers), "~ 0"),
    ]
    table = "| measure | result | target |\n|---|---|---|\n" + "".join(f"| {a} | {b} | {c} |\n" for a, b, c in rows)
    print(table)
    if (args.interactions, args.users, args.items) == tuple(FULL.values()):
        machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"
        (HERE / "own_data.md").write_text(
            f"# Your own log at 100M interactions\n\n`benchmarks/own_data.py`, {date.today()} on {machine}.\n\n"
            f"{table}\n{NOTES}")


if __name__ == "__main__":
    main()
