"""`grscale bench attention`: HSTU attention speed, Triton vs the PyTorch reference vs SDPA.

FLOP convention (the same for every provider, counted over real jagged lengths, causal):
    forward   = sum_i L_i (L_i + 1) / 2 * H * (2 Dqk + 2 Dv)      (Q K^T and A V)
    backward  = 2.5 x forward   (recompute Q K^T, dA = dO V^T, dV, dQ, dK: 5 matmuls vs 2)
    fwd_bwd   = 3.5 x forward
So TFLOP/s are *useful* rates: SDPA on padded [B, H, L, D] executes more than it is credited
for when lengths are skewed, which is the point of a jagged kernel. Bias, SiLU and mask work
is not counted. `frac_matmul` divides by a dense bf16 matmul rate measured in the same run.

Rows are appended to one CSV (STYLE item 6); needs a CUDA device, else exits with status 2.
"""
from __future__ import annotations

import argparse
import csv
import math
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

PROVIDERS = ("triton", "pytorch", "sdpa")
MODES = ("fwd", "fwd_bwd")
MODE_FLOP_FACTOR = {"fwd": 1.0, "fwd_bwd": 3.5}
COLUMNS = ("what", "provider", "shape", "lengths", "num_seqs", "total_tokens", "max_len",
           "heads", "dim_qk", "dim_v", "dtype", "biases", "p20_ms", "p50_ms", "p80_ms",
           "tflops", "frac_matmul", "matmul_tflops", "device", "date", "git_sha")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-lens", type=int, nargs="+",
                        default=[256, 512, 1024, 2048, 4096, 8192], help="longest sequence per case")
    parser.add_argument("--tokens", type=int, default=65536,
                        help="tokens per batch (sequences are added until this many)")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=128, help="Dqk = Dv")
    parser.add_argument("--dtype", choices=("bf16", "fp16", "fp32"), default="bf16")
    parser.add_argument("--distributions", nargs="+", choices=("uniform", "skewed"),
                        default=["uniform", "skewed"],
                        help="uniform: every length = max; skewed: lognormal, median max/8, capped")
    parser.add_argument("--providers", nargs="+", choices=PROVIDERS, default=list(PROVIDERS))
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--no-bias", action="store_true", help="leave out pos and time biases")
    parser.add_argument("--csv", type=Path, default=Path("benchmarks/attention.csv"))
    parser.add_argument("--seed", type=int, default=0)


def sample_lengths(distribution: str, max_len: int, tokens: int, gen) -> list[int]:
    """Sequence lengths summing to about `tokens` (at least one sequence)."""
    import torch

    if distribution == "uniform":
        return [max_len] * max(1, tokens // max_len)
    # Lognormal, median max_len / 8, capped at max_len: a few long histories, many short.
    lengths: list[int] = []
    while sum(lengths) < tokens:
        draw = torch.empty(1).log_normal_(math.log(max_len / 8), 1.0, generator=gen).item()
        lengths.append(int(min(max(round(draw), 1), max_len)))
    return lengths


def forward_flops(lengths: list[int], heads: int, dim_qk: int, dim_v: int) -> float:
    return sum(n * (n + 1) / 2 for n in lengths) * heads * (2 * dim_qk + 2 * dim_v)


def make_case(provider: str, lengths: list[int], max_len: int, args, dtype, gen):
    """(fn, tensors needing grads) for one provider on the given lengths."""
    import torch
    import torch.nn.functional as F

    from kernels.hstu_attention import hstu_attention

    dim, heads, device = args.head_dim, args.heads, "cuda"
    if provider == "sdpa":  # softmax attention on the padded batch, FlashAttention on GPU
        q, k, v = (torch.randn(len(lengths), heads, max_len, dim, generator=gen).to(device, dtype)
                   .requires_grad_() for _ in range(3))
        return (lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)), [q, k, v]
    total = sum(lengths)
    q, k, v = (torch.randn(total, heads, dim, generator=gen).to(device, dtype).requires_grad_()
               for _ in range(3))
    offsets = torch.tensor([0, *lengths]).cumsum(0).to(device)
    biases = {}
    if not args.no_bias:
        biases = dict(
            timestamps=torch.randint(0, 10**7, (total,), generator=gen).to(device),
            pos_bias=(0.1 * torch.randn(heads, max_len, generator=gen)).to(device, dtype).requires_grad_(),
            time_bias=(0.1 * torch.randn(heads, 128, generator=gen)).to(device, dtype).requires_grad_())
    grads = [q, k, v] + [t for t in biases.values() if t.is_floating_point()]
    return (lambda: hstu_attention(q, k, v, offsets, max_len, kernel=provider, **biases)), grads


def time_ms(fn, mode: str, grads) -> list[float]:
    """p20, p50, p80 in ms over do_bench's repetitions (it warms up and flushes L2)."""
    import torch
    from triton.testing import do_bench

    if mode == "fwd":
        def step():
            with torch.no_grad():
                fn()
    else:
        def step():
            out = fn()
            out.backward(torch.ones_like(out))  # a constant grad: no random kernel in the timing
    return do_bench(step, warmup=25, rep=100, grad_to_none=grads, quantiles=[0.2, 0.5, 0.8])


def matmul_tflops(dtype) -> float:
    """Measured dense matmul rate (8192^3, bf16 unless fp32 is benchmarked): the ceiling."""
    import torch
    from triton.testing import do_bench

    n = 8192
    a, b = (torch.randn(n, n, device="cuda", dtype=dtype) for _ in range(2))
    return 2 * n**3 / (do_bench(lambda: a @ b, warmup=25, rep=100) * 1e-3) / 1e12


def git_sha() -> str:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return result.stdout.strip() or "unknown"


def append_rows(path: Path, rows: list[dict]) -> None:
    new_file = not path.exists()
    if not new_file:
        with path.open() as handle:
            header = next(csv.reader(handle), None)
        if header is not None and tuple(header) != COLUMNS:
            raise ValueError(f"{path} has columns {header}, expected {list(COLUMNS)}; move it aside")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        if new_file:
            writer.writeheader()
        writer.writerows(rows)


def run(args: argparse.Namespace) -> int:
    import torch

    if not torch.cuda.is_available():
        print("grscale bench attention: needs a CUDA GPU (none found); no figures written",
              file=sys.stderr)
        return 2
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    ceiling = matmul_tflops(torch.float32 if dtype == torch.float32 else torch.bfloat16)
    stamp = dict(device=torch.cuda.get_device_name(), git_sha=git_sha(),
                 date=datetime.now(timezone.utc).strftime("%Y-%m-%d"), matmul_tflops=f"{ceiling:.1f}")
    print(f"dense matmul: {ceiling:.1f} TFLOP/s on {stamp['device']}")
    rows = []
    for distribution in args.distributions:
        for max_len in args.max_lens:
            gen = torch.Generator().manual_seed(args.seed)
            lengths = sample_lengths(distribution, max_len, args.tokens, gen)
            flops = forward_flops(lengths, args.heads, args.head_dim, args.head_dim)
            for provider in args.providers:
                for mode in args.modes:
                    try:
                        fn, grads = make_case(provider, lengths, max_len, args, dtype, gen)
                        p20, p50, p80 = time_ms(fn, mode, grads)
                    except torch.cuda.OutOfMemoryError:
                        print(f"{distribution:8} L<={max_len:5} {provider:8} {mode:8} out of memory")
                        continue
                    finally:
                        torch.cuda.empty_cache()
                    tflops = MODE_FLOP_FACTOR[mode] * flops / (p50 * 1e-3) / 1e12
                    print(f"{distribution:8} L<={max_len:5} {provider:8} {mode:8} {p50:9.3f} ms "
                          f"{tflops:7.1f} TFLOP/s {tflops / ceiling:6.1%} of matmul")
                    rows.append(dict(
                        what=f"hstu_attention_{mode}", provider=provider,
                        shape=f"B={len(lengths)},H={args.heads},L<={max_len},D={args.head_dim}",
                        lengths=distribution, num_seqs=len(lengths), total_tokens=sum(lengths),
                        max_len=max_len, heads=args.heads, dim_qk=args.head_dim, dim_v=args.head_dim,
                        dtype=args.dtype,
                        biases="none" if args.no_bias or provider == "sdpa" else "pos+time",
                        p20_ms=f"{p20:.4f}", p50_ms=f"{p50:.4f}", p80_ms=f"{p80:.4f}",
                        tflops=f"{tflops:.2f}", frac_matmul=f"{tflops / ceiling:.4f}", **stamp))
    append_rows(args.csv, rows)
    print(f"appended {len(rows)} rows to {args.csv}")
    return 0
