"""Training throughput per family and size on this CPU, before and after issue 26, and the share of a
trial's wall time spent in evaluation.

Throughput: useful (jagged, causal: what the budget counts) and executed (what runs) GFLOP/s of
training steps on ML-1M, their ratio, and useful FLOP/s against the measured fp32 matmul rate.
"before" = shuffled batches and the padded reference attention (batch x Lmax^2 pairs); "after" = the
default now: HSTU's attention over tiles of real lengths (kernels/hstu_attention_tiles.py); "+ buckets"
= after, with length-bucketed batches (data.length_buckets, off by default). Rates are the median over
steps of each step's FLOPs over its time, the three configurations stepped in turn (so that other
processes on a shared CPU load all three alike); the executed / useful ratios are exact, counted over
a whole epoch.
Evaluation share: single trials of sweeps/specs/ml1m-retrieval-cpu.yaml, the smallest budget of each
size (where evaluation weighs most), before (2,000 validation users, eval batch 512, the before path)
and after (the spec as committed: validation sized per trial, tiles, eval batch 256).
Targets (issue 26): executed / useful <= 1.3 for HSTU at ML-1M lengths; useful FLOP/s of hstu-ml1m
>= 25% of the matmul rate; evaluation <= 25% of every trial's wall time.
Run: GRSCALE_DATA_DIR=../shared/data .venv/bin/python benchmarks/train_throughput.py [--steps N] [--only SECTION]
Writes benchmarks/train_throughput.md beside this file.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import subprocess
import tempfile
import time
from datetime import date
from pathlib import Path
from unittest import mock

import torch

from kernels.hstu_attention import hstu_attention_ref
from scaling.allocator import keep_freed_memory
from scaling.config import TrialConfig
from scaling.data.dataset import load_dataset
from scaling.data.loader import trial_batches
from scaling.data.splits import leave_one_out
from scaling.flops import training_flops
from scaling.train import build_trial_model, train_to_budget
from sweeps.check import plan_trials
from sweeps.spec import load_spec

CASES = [  # family, size, task, max_seq_len: the paper's ML-1M presets at its length, the CPU study's at 50
    ("hstu", "ml1m", "retrieval", 200), ("hstu", "large-ml1m", "retrieval", 200), ("sasrec", "ml1m", "retrieval", 200),
    ("dlrm", "s", "retrieval", 200), ("hstu", "ml1m", "ranking", 200),
    *[(family, size, "retrieval", 50) for family in ("hstu", "sasrec", "dlrm") for size in ("xs", "s", "m", "l")],
]
SPEC = Path(__file__).resolve().parents[1] / "sweeps/specs/ml1m-retrieval-cpu.yaml"


@contextlib.contextmanager
def before_issue_26():
    """The padded reference attention, counted as it runs (batch x Lmax^2 pairs)."""
    with mock.patch("kernels.hstu_attention_tiles.hstu_attention_tiled", hstu_attention_ref), \
            mock.patch("scaling.flops.executed_pairs", lambda lengths: len(lengths) * max(lengths, default=0) ** 2):
        yield


def matmul_rate(n: int = 1024, repeats: int = 4) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


class StepRunner:
    """One configuration's model, optimizer and batches, stepped one batch at a time."""

    def __init__(self, family: str, size: str, task: str, max_seq_len: int, split, buckets: bool, before: bool):
        cfg = TrialConfig.from_dict({"model": {"family": family, "size": size}, "task": task, "budget": 1e18,
                                     "data": {"dataset": "ml-1m", "max_seq_len": max_seq_len,
                                              "length_buckets": buckets}})
        torch.manual_seed(0)
        self.task, self.before = task, before
        self.model = build_trial_model(cfg, split)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3, betas=(0.9, 0.98))
        self.generator = torch.Generator().manual_seed(0)
        self.batches = list(trial_batches(split.train, cfg).epoch(0))
        with before_issue_26() if before else contextlib.nullcontext():
            self.counts = [training_flops(self.model.config, task, batch.lengths()) for batch in self.batches]
        self.useful: list[float] = []
        self.executed: list[float] = []

    def step(self, i: int, timed: bool) -> None:
        with before_issue_26() if self.before else contextlib.nullcontext():
            start = time.perf_counter()
            loss, _ = self.model.training_loss(self.batches[i], self.task, self.generator)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            elapsed = time.perf_counter() - start
        if timed:
            self.useful.append(self.counts[i].useful / elapsed)
            self.executed.append(self.counts[i].executed / elapsed)

    def result(self) -> dict:
        return {"useful": median(self.useful), "executed": median(self.executed),
                "ratio": sum(c.executed for c in self.counts) / sum(c.useful for c in self.counts)}


def throughput(case: tuple, split, steps: int) -> dict[str, dict]:
    """Before, after and after with buckets, stepped in turn with the matmul rate measured between, so that
    other processes' load falls on all alike."""
    runners = {"before": StepRunner(*case, split, buckets=False, before=True),
               "after": StepRunner(*case, split, buckets=False, before=False),
               "buckets": StepRunner(*case, split, buckets=True, before=False)}
    rates = []
    for i in range(steps + 2):
        for runner in runners.values():
            runner.step(i, timed=i >= 2)  # the first steps warm up allocators
        rates.append(matmul_rate())
    return {"matmul": median(rates), **{name: runner.result() for name, runner in runners.items()}}


def trial_share(cfg: TrialConfig, out_dir: Path) -> dict:
    final = train_to_budget(cfg, out_dir).final
    return {"wall_s": final["wall_s"], "eval_s": final["eval_s"], "val_users": final["val_users"]}


def eval_shares(root: Path) -> list[dict]:
    """Per size, the spec's smallest-budget trial (seed 0), after and before."""
    smallest: dict[str, TrialConfig] = {}
    for plan in plan_trials(load_spec(SPEC)):
        cfg = plan.config
        if cfg.seed == 0 and cfg.model.preset not in smallest:
            smallest[cfg.model.preset] = dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, threads=1))
    rows = []
    for preset, cfg in smallest.items():
        after = trial_share(cfg, root / f"{preset}-after")
        old = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, val_users=2000, length_buckets=False),
                                  runtime=dataclasses.replace(cfg.runtime, eval_batch_size=512))
        with before_issue_26():
            before = trial_share(old, root / f"{preset}-before")
        rows.append({"preset": preset, "budget": cfg.budget, "before": before, "after": after})
        print(rows[-1], flush=True)
    return rows


SECTIONS = ("throughput", "trials")
OUT = Path(__file__).parent / "train_throughput.md"


def throughput_section(split, steps: int, threads: int) -> str:
    rows = []
    for case in CASES:
        rows.append({"case": case, **throughput(case, split, steps)})
        print(rows[-1], flush=True)
    lines = [
        f"Throughput: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {threads} thread(s); "
        f"date {date.today()}; git {git_sha()}. fp32 1024^3 matmuls timed between the steps of each preset "
        "(median: the matmul rate column).", "",
        f"batch 128, {steps} steps after 2 of warm-up (median step); useful = jagged causal FLOPs (the budget's), "
        "executed = what runs (ratio over a whole epoch). before: shuffled batches, padded attention; after: HSTU "
        "attention over tiles (the default); + buckets: after, with length buckets.", "",
        "| preset | task | length | useful GFLOP/s before / after / + buckets | executed GFLOP/s before / after / "
        "+ buckets | executed / useful before / after / + buckets | useful / matmul rate before / after / "
        "+ buckets | matmul GFLOP/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        family, size, task, length = r["case"]
        runs = (r["before"], r["after"], r["buckets"])
        cells = [" / ".join(fmt(run) for run in runs) for fmt in (
            lambda x: f"{x['useful'] / 1e9:.2f}", lambda x: f"{x['executed'] / 1e9:.2f}",
            lambda x: f"{x['ratio']:.2f}", lambda x: f"{x['useful'] / r['matmul']:.0%}")]
        lines.append(f"| {family}-{size} | {task} | {length} | {' | '.join(cells)} | {r['matmul'] / 1e9:.1f} |")
    return "\n".join(lines) + "\n"


def trials_section() -> str:
    shares = eval_shares(Path(tempfile.mkdtemp()))
    lines = [f"Evaluation share of a trial's wall time: `{SPEC.relative_to(SPEC.parents[2])}`, the smallest budget "
             f"of each size (seed 0, one thread each, run one at a time); date {date.today()}; git {git_sha()}.", "",
             "| trial | val users before / after | wall s before / after | evaluation s before / after "
             "| evaluation share before / after |", "|---|---|---|---|---|"]
    for r in shares:
        b, a = r["before"], r["after"]
        lines.append(f"| {r['preset']} {r['budget']:.3g} | {b['val_users']} / {a['val_users']} | "
                     f"{b['wall_s']:.1f} / {a['wall_s']:.1f} | {b['eval_s']:.1f} / {a['eval_s']:.1f} | "
                     f"{b['eval_s'] / b['wall_s']:.0%} / {a['eval_s'] / a['wall_s']:.0%} |")
    return "\n".join(lines) + "\n"


def git_sha() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()


def previous_sections() -> dict[str, str]:
    """The sections of the committed results, kept where this run does not redo them."""
    text = OUT.read_text() if OUT.exists() else ""
    parts = text.split("<!-- section: ")
    return {part.split(" -->", 1)[0]: part.split(" -->\n", 1)[1] for part in parts[1:] if " -->\n" in part}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a CPU sweep's trial runs on 1)")
    parser.add_argument("--only", choices=SECTIONS, help="redo one section, keeping the other from the last results")
    args = parser.parse_args()
    keep_freed_memory()  # as the Trainer does on the CPU
    torch.set_num_threads(args.threads)
    sections = previous_sections()
    if args.only in (None, "throughput"):
        sections["throughput"] = throughput_section(leave_one_out(load_dataset("ml-1m")), args.steps, args.threads)
    if args.only in (None, "trials"):
        sections["trials"] = trials_section()
    # A hand-written "notes" section (what the figures say against the targets) is kept as it is.
    names = (*SECTIONS, "notes") if "notes" in sections else SECTIONS
    text = "# Training throughput and evaluation share on ML-1M (CPU)\n\n" + "\n".join(
        f"<!-- section: {name} -->\n{sections.get(name, '(not yet measured)' + chr(10))}" for name in names)
    print(text)
    OUT.write_text(text)


if __name__ == "__main__":
    main()
