"""Triton forward and backward against the float64 reference over one grid of jagged shapes.

Runs on the CPU interpreter (TRITON_INTERPRET=1, see conftest.py), where blocks are 32x32,
so lengths 33, 40, 70 span several blocks and none is a multiple of 32 but one (64). bf16
is not exercised there (the interpreter's bf16 arithmetic is wrong): it is a `gpu` test.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import pytest
import torch

from kernels import hstu_attention
from kernels.hstu_attention import hstu_attention_ref
from kernels.triton.hstu_attention import hstu_attention_bwd, hstu_attention_fwd
from tests.kernels.utils import DEVICE, assert_close

# Pass: |kernel - fp64 ref| <= 2 * max|same-dtype ref - fp64 ref| + atol + rtol * |fp64 ref|,
# i.e. at most about twice the reference's own error at that precision, plus a small term.
TOLERANCES = {
    torch.float32: dict(atol=1e-5, rtol=1e-5),
    torch.float16: dict(atol=1e-3, rtol=2e-3),
    torch.bfloat16: dict(atol=1e-2, rtol=1e-2),  # GPU only
}


@dataclass(frozen=True)
class Case:
    lengths: tuple[int, ...]
    heads: int
    dim_qk: int
    dim_v: int
    pos_rows: int | None  # None: no pos_bias; 1: shared by heads; `heads`: per head
    time_rows: int | None
    num_buckets: int = 20
    alpha: float = 1.0
    query_times: bool = False  # separate query timestamps (the HSTU paper's next-interaction times)

    @property
    def max_seq_len(self) -> int:
        return max(self.lengths, default=0) + 3  # a bound above every length


# Batch sizes 1..5 with unequal lengths, length 1 and an empty sequence.
LENGTHS = [(1,), (17, 1), (40, 3, 33), (1, 70, 0, 9), (12, 31, 1, 45, 7)]
# Every combination of heads, head dim and bias table (absent / shared / per head).
CASES = [
    Case(LENGTHS[i % len(LENGTHS)], heads, dim, dim, pos_rows, time_rows, alpha=1.0 / (1 + i % 3))
    for i, (heads, dim, pos_rows, time_rows) in enumerate(
        (h, d, p if p != "H" else h, t if t != "H" else h)
        for h, d, p, t in product((1, 2), (16, 32), (None, 1, "H"), (None, 1, "H")))
] + [
    Case((33, 2, 64, 5, 19), 2, 24, 20, 2, 1),  # Dqk != Dv, neither a power of two
    Case((40, 3, 33), 2, 16, 16, 1, 2, num_buckets=64),  # buckets below the clamp too
    Case((70, 9), 1, 32, 32, None, 1, num_buckets=64, query_times=True),
    Case((12, 31, 1, 45, 7), 2, 16, 16, 1, 2, query_times=True),
]
SMALL_CASE = CASES[-3]


def make_inputs(case: Case, dtype: torch.dtype, seed: int = 0) -> dict:
    """Inputs drawn in `dtype` (so every precision sees the same values), on DEVICE."""
    gen = torch.Generator().manual_seed(seed)
    total = sum(case.lengths)
    tokens = lambda dim: torch.randn(total, case.heads, dim, generator=gen).to(dtype)  # noqa: E731
    table = lambda rows, width: (None if rows is None  # noqa: E731
                                 else (0.5 * torch.randn(rows, width, generator=gen)).to(dtype))
    inputs = dict(
        q=tokens(case.dim_qk), k=tokens(case.dim_qk), v=tokens(case.dim_v),
        seq_offsets=torch.tensor([0, *case.lengths]).cumsum(0), max_seq_len=case.max_seq_len,
        # Unsorted gaps up to ~1e6 s: both signs, and past the last bucket for 20 buckets.
        timestamps=torch.randint(0, 10**6, (total,), generator=gen),
        pos_bias=table(case.pos_rows, case.max_seq_len),
        time_bias=table(case.time_rows, case.num_buckets), alpha=case.alpha,
        query_timestamps=torch.randint(0, 10**6, (total,), generator=gen) if case.query_times else None,
    )
    return {k: v.to(DEVICE) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}


GRAD_NAMES = ("q", "k", "v", "pos_bias", "time_bias")


def reference(inputs: dict, grad_out: torch.Tensor, dtype: torch.dtype) -> dict:
    """Reference output and gradients with inputs cast to `dtype` (None grads left out)."""
    cast = {n: (t.detach().to(dtype).requires_grad_() if n in GRAD_NAMES and t is not None else t)
            for n, t in inputs.items()}
    out = hstu_attention_ref(**cast)
    out.backward(grad_out.to(dtype))
    grads = {n: cast[n].grad for n in GRAD_NAMES if cast[n] is not None}
    return {"out": out.detach(), **grads}


def check_against_reference(name: str, got: dict, inputs: dict, grad_out: torch.Tensor,
                            dtype: torch.dtype) -> None:
    truth = reference(inputs, grad_out, torch.float64)
    low = reference(inputs, grad_out, dtype)
    assert set(got) == set(truth), f"{name}: outputs {sorted(got)} != {sorted(truth)}"
    for key, expected in truth.items():
        ref_err = (low[key].double() - expected).abs().max().item() if expected.numel() else 0.0
        tol = TOLERANCES[dtype]
        assert_close(f"{name} {key}", got[key], expected, atol=2 * ref_err + tol["atol"], rtol=tol["rtol"])


def run_launchers(inputs: dict) -> dict:
    """Forward and backward launchers on NaN-poisoned buffers: unwritten elements fail."""
    q, k, v = inputs["q"], inputs["k"], inputs["v"]
    kwargs = {n: inputs[n] for n in ("timestamps", "pos_bias", "time_bias", "alpha", "query_timestamps")}
    args = (q, k, v, inputs["seq_offsets"], inputs["max_seq_len"])
    out = hstu_attention_fwd(*args, **kwargs, out=torch.full_like(v, float("nan")))
    grad_out = torch.randn(v.shape, generator=torch.Generator().manual_seed(1)).to(v)
    poisoned = tuple(torch.full_like(t, float("nan")) for t in (q, k, v))
    grads = hstu_attention_bwd(grad_out, *args, **kwargs, out=poisoned)
    result = {"out": out, **dict(zip(GRAD_NAMES, grads))}
    return {n: t for n, t in result.items() if t is not None}, grad_out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: (f"L{'-'.join(map(str, c.lengths))}-H{c.heads}-D{c.dim_qk}"
                                                   f"-pos{c.pos_rows}-time{c.time_rows}"
                                                   + ("-qts" if c.query_times else "")))
def test_triton_matches_reference(case: Case, dtype: torch.dtype):
    inputs = make_inputs(case, dtype)
    got, grad_out = run_launchers(inputs)
    check_against_reference("triton", got, inputs, grad_out, dtype)


def test_autograd_function_and_strided_inputs():
    """The public dispatcher's autograd path, with q/k/v as views of one projection output,
    a pos_bias that needs no gradient, and query timestamps of their own."""
    case = CASES[-1]
    inputs = make_inputs(case, torch.float32, seed=3)
    fused = torch.cat([inputs["q"], inputs["k"], inputs["v"]], dim=-1).requires_grad_()
    dqk = case.dim_qk
    q, k, v = fused.split([dqk, dqk, case.dim_v], dim=-1)
    time_bias = inputs["time_bias"].clone().requires_grad_()
    out = hstu_attention(q, k, v, inputs["seq_offsets"], inputs["max_seq_len"], kernel="triton",
                         timestamps=inputs["timestamps"], pos_bias=inputs["pos_bias"],
                         time_bias=time_bias, alpha=case.alpha, query_timestamps=inputs["query_timestamps"])
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    truth = reference(inputs, grad_out, torch.float64)
    assert_close("out", out, truth["out"], atol=1e-5)
    expected_fused = torch.cat([truth["q"], truth["k"], truth["v"]], dim=-1)
    assert_close("d(qkv)", fused.grad, expected_fused, atol=1e-5)
    assert_close("time_bias", time_bias.grad, truth["time_bias"], atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("lengths", [(), (0, 0)], ids=["no-sequences", "all-empty"])
def test_empty_batches(lengths: tuple[int, ...]):
    seq_offsets = torch.tensor([0, *lengths], device=DEVICE).cumsum(0)
    q = torch.zeros(0, 2, 16, device=DEVICE)
    pos_bias = torch.ones(1, 4, device=DEVICE)
    out = hstu_attention_fwd(q, q, q, seq_offsets, 4, pos_bias=pos_bias)
    dq, dk, dv, dpos, _ = hstu_attention_bwd(out, q, q, q, seq_offsets, 4, pos_bias=pos_bias)
    assert out.shape == dq.shape == (0, 2, 16)
    assert torch.equal(dpos, torch.zeros_like(pos_bias))


@pytest.mark.gpu
@pytest.mark.skipif(DEVICE == "cpu", reason="the interpreter's bf16 is wrong: TRITON_INTERPRET=0 on a GPU")
@pytest.mark.parametrize("case", [SMALL_CASE, Case((300, 1, 4097, 1000), 2, 128, 128, 2, 2)],
                         ids=["small", "long"])
def test_triton_bf16_on_gpu(case: Case):
    inputs = make_inputs(case, torch.bfloat16)
    got, grad_out = run_launchers(inputs)
    check_against_reference("triton bf16", got, inputs, grad_out, torch.bfloat16)
