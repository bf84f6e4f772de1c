"""Fused Triton forward and backward for jagged HSTU attention (see kernels/hstu_attention.py).

Layout: q, k [T, H, Dqk], v [T, H, Dv], jagged by `seq_offsets`; no padding is materialised.
Fused per tile: relative-position and time-bucket bias gathers (query times TSQ, key times
TS: the same tensor unless query timestamps are given), SiLU, 1/max_seq_len, causal and length
masks. Accumulation is fp32. Bias-table gradients are fp32 atomic adds.

Scheduling: sequences are visited longest first and, within a sequence, the last (most
causal work) query blocks first, so long programs start early and short ones fill the tail.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

# Several autotune configs fail under the CPU interpreter ("0 active drivers"): use one there,
# with big blocks because interpreter cost grows with the number of program instances.
_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
_FWD_CONFIGS = (
    [triton.Config({"BLOCK_M": 32, "BLOCK_N": 32})] if _INTERPRET else [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s)
        for bm, bn, w, s in [(64, 32, 4, 3), (64, 64, 4, 3), (128, 64, 8, 3),
                             (128, 64, 4, 2), (128, 128, 8, 2)]
    ]
)
_BWD_CONFIGS = (
    [triton.Config({"BLOCK": 32})] if _INTERPRET else [
        triton.Config({"BLOCK": b}, num_warps=w, num_stages=s)
        for b, w, s in [(32, 4, 2), (64, 4, 2), (64, 8, 3), (128, 8, 2)]
    ]
)
# As in kernels.hstu_attention.time_bucket_index (the same fp32 formula).
_TIME_LOG_DIVISOR: tl.constexpr = tl.constexpr(0.301)


@triton.jit
def _scores(q, k, offs_m, offs_n, seq_len, ts_m, ts_n, pos_ptr, time_ptr, num_buckets,
            alpha, HAS_POS: tl.constexpr, HAS_TIME: tl.constexpr, PRECISION: tl.constexpr):
    """fp32 scores s = alpha q k^T + biases of one [M, N] tile, and its causal/length mask."""
    valid = (offs_m[:, None] >= offs_n[None, :]) & (offs_m[:, None] < seq_len)
    s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * alpha
    if HAS_POS:
        rel = tl.where(valid, offs_m[:, None] - offs_n[None, :], 0)
        s += tl.load(pos_ptr + rel, mask=valid, other=0.0).to(tl.float32)
    if HAS_TIME:
        gap = tl.maximum(tl.abs(ts_m[:, None] - ts_n[None, :]), 1).to(tl.float32)
        bucket = tl.floor(tl.log(gap) / _TIME_LOG_DIVISOR)
        bucket = tl.minimum(tl.maximum(bucket, 0.0), num_buckets - 1).to(tl.int32)
        s += tl.load(time_ptr + bucket, mask=valid, other=0.0).to(tl.float32)
    return s, valid


@triton.autotune(configs=_FWD_CONFIGS, key=["BLOCK_DQK", "BLOCK_DV", "MAX_LEN_KEY"])
@triton.jit
def _hstu_attn_fwd_kernel(
    Q, K, V, Out, seq_offsets, seq_order, TS, TSQ, POS, TIME,
    stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_ot, stride_oh,
    stride_pos_h, stride_time_h, num_buckets, alpha, inv_n, MAX_LEN_KEY,
    DQK: tl.constexpr, DV: tl.constexpr, BLOCK_DQK: tl.constexpr, BLOCK_DV: tl.constexpr,
    HAS_POS: tl.constexpr, HAS_TIME: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    start_m = (tl.num_programs(0) - 1 - tl.program_id(0)) * BLOCK_M  # heavy blocks first
    b = tl.load(seq_order + tl.program_id(1))
    h = tl.program_id(2)
    seq_start = tl.load(seq_offsets + b)
    seq_len = (tl.load(seq_offsets + b + 1) - seq_start).to(tl.int32)
    if start_m < seq_len:
        offs_m = start_m + tl.arange(0, BLOCK_M)
        offs_dqk = tl.arange(0, BLOCK_DQK)
        offs_dv = tl.arange(0, BLOCK_DV)
        row_m = (seq_start + offs_m)[:, None]
        mask_m = offs_m < seq_len
        q = tl.load(Q + row_m * stride_qt + h * stride_qh + offs_dqk[None, :],
                    mask=mask_m[:, None] & (offs_dqk < DQK)[None, :], other=0.0)
        ts_m = tl.load(TSQ + seq_start + offs_m, mask=mask_m, other=0) if HAS_TIME else None
        pos_ptr = POS + h * stride_pos_h
        time_ptr = TIME + h * stride_time_h
        acc = tl.zeros([BLOCK_M, BLOCK_DV], dtype=tl.float32)
        for start_n in range(0, tl.minimum(seq_len, start_m + BLOCK_M), BLOCK_N):
            offs_n = start_n + tl.arange(0, BLOCK_N)
            mask_n = offs_n < seq_len
            row_n = (seq_start + offs_n)[:, None]
            k = tl.load(K + row_n * stride_kt + h * stride_kh + offs_dqk[None, :],
                        mask=mask_n[:, None] & (offs_dqk < DQK)[None, :], other=0.0)
            v = tl.load(V + row_n * stride_vt + h * stride_vh + offs_dv[None, :],
                        mask=mask_n[:, None] & (offs_dv < DV)[None, :], other=0.0)
            ts_n = tl.load(TS + seq_start + offs_n, mask=mask_n, other=0) if HAS_TIME else None
            s, valid = _scores(q, k, offs_m, offs_n, seq_len, ts_m, ts_n, pos_ptr, time_ptr,
                               num_buckets, alpha, HAS_POS, HAS_TIME, PRECISION)
            a = tl.where(valid, s * tl.sigmoid(s) * inv_n, 0.0)
            acc = tl.dot(a.to(v.dtype), v, acc, input_precision=PRECISION)
        tl.store(Out + row_m * stride_ot + h * stride_oh + offs_dv[None, :],
                 acc.to(Out.dtype.element_ty), mask=mask_m[:, None] & (offs_dv < DV)[None, :])


@triton.jit
def _grad_scores(s, valid, do, v, inv_n, PRECISION: tl.constexpr):
    """Attention weights a and dL/ds of one tile, given the scores and dL/dout rows."""
    sig = tl.sigmoid(s)
    a = tl.where(valid, s * sig * inv_n, 0.0)
    da = tl.dot(do, tl.trans(v), input_precision=PRECISION)
    ds = tl.where(valid, da * sig * (1.0 + s * (1.0 - sig)) * inv_n, 0.0)
    return a, ds


@triton.autotune(configs=_BWD_CONFIGS, key=["BLOCK_DQK", "BLOCK_DV", "MAX_LEN_KEY"],
                 reset_to_zero=["DPOS", "DTIME"])  # autotune reruns must not double the atomics
@triton.jit
def _hstu_attn_bwd_kernel(
    Q, K, V, DO, DQ, DK, DV_, seq_offsets, seq_order, TS, TSQ, POS, TIME, DPOS, DTIME,
    stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_dot, stride_doh,
    stride_pos_h, stride_time_h, num_buckets, alpha, inv_n, MAX_LEN_KEY,
    DQK: tl.constexpr, DV: tl.constexpr, BLOCK_DQK: tl.constexpr, BLOCK_DV: tl.constexpr,
    HAS_POS: tl.constexpr, HAS_TIME: tl.constexpr, POS_GRAD: tl.constexpr,
    TIME_GRAD: tl.constexpr, PRECISION: tl.constexpr, BLOCK: tl.constexpr,
):
    """One program: dk, dv of key block `pid` (loop over later query blocks), then dq of query
    block `pid` (loop over earlier key blocks). Gradients dq/dk/dv share q/k/v's strides."""
    start = (tl.num_programs(0) - 1 - tl.program_id(0)) * BLOCK
    b = tl.load(seq_order + tl.program_id(1))
    h = tl.program_id(2)
    seq_start = tl.load(seq_offsets + b)
    seq_len = (tl.load(seq_offsets + b + 1) - seq_start).to(tl.int32)
    if start < seq_len:
        offs = start + tl.arange(0, BLOCK)
        offs_dqk = tl.arange(0, BLOCK_DQK)
        offs_dv = tl.arange(0, BLOCK_DV)
        rows = (seq_start + offs)[:, None]
        mask = offs < seq_len
        mask_qk = mask[:, None] & (offs_dqk < DQK)[None, :]
        mask_v = mask[:, None] & (offs_dv < DV)[None, :]
        pos_ptr = POS + h * stride_pos_h
        time_ptr = TIME + h * stride_time_h
        ts_key = tl.load(TS + seq_start + offs, mask=mask, other=0) if HAS_TIME else None
        ts_query = tl.load(TSQ + seq_start + offs, mask=mask, other=0) if HAS_TIME else None

        # dk, dv of this key block: every query block at or after it (causal).
        k = tl.load(K + rows * stride_kt + h * stride_kh + offs_dqk[None, :], mask=mask_qk, other=0.0)
        v = tl.load(V + rows * stride_vt + h * stride_vh + offs_dv[None, :], mask=mask_v, other=0.0)
        dk = tl.zeros([BLOCK, BLOCK_DQK], dtype=tl.float32)
        dv = tl.zeros([BLOCK, BLOCK_DV], dtype=tl.float32)
        for start_m in range(start, seq_len, BLOCK):
            offs_m = start_m + tl.arange(0, BLOCK)
            mask_m = offs_m < seq_len
            rows_m = (seq_start + offs_m)[:, None]
            q = tl.load(Q + rows_m * stride_qt + h * stride_qh + offs_dqk[None, :],
                        mask=mask_m[:, None] & (offs_dqk < DQK)[None, :], other=0.0)
            do = tl.load(DO + rows_m * stride_dot + h * stride_doh + offs_dv[None, :],
                         mask=mask_m[:, None] & (offs_dv < DV)[None, :], other=0.0)
            ts_m = tl.load(TSQ + seq_start + offs_m, mask=mask_m, other=0) if HAS_TIME else None
            s, valid = _scores(q, k, offs_m, offs, seq_len, ts_m, ts_key, pos_ptr, time_ptr,
                               num_buckets, alpha, HAS_POS, HAS_TIME, PRECISION)
            a, ds = _grad_scores(s, valid, do, v, inv_n, PRECISION)
            dv = tl.dot(tl.trans(a).to(do.dtype), do, dv, input_precision=PRECISION)
            dk = tl.dot(tl.trans(ds).to(q.dtype), q, dk, input_precision=PRECISION)
            if POS_GRAD:
                rel = tl.where(valid, offs_m[:, None] - offs[None, :], 0)
                tl.atomic_add(DPOS + h * stride_pos_h + rel, ds, mask=valid)
            if TIME_GRAD:
                gap = tl.maximum(tl.abs(ts_m[:, None] - ts_key[None, :]), 1).to(tl.float32)
                bucket = tl.floor(tl.log(gap) / _TIME_LOG_DIVISOR)
                bucket = tl.minimum(tl.maximum(bucket, 0.0), num_buckets - 1).to(tl.int32)
                tl.atomic_add(DTIME + h * stride_time_h + bucket, ds, mask=valid)
        tl.store(DK + rows * stride_kt + h * stride_kh + offs_dqk[None, :],
                 (dk * alpha).to(DK.dtype.element_ty), mask=mask_qk)
        tl.store(DV_ + rows * stride_vt + h * stride_vh + offs_dv[None, :],
                 dv.to(DV_.dtype.element_ty), mask=mask_v)

        # dq of this query block: every key block at or before it.
        q = tl.load(Q + rows * stride_qt + h * stride_qh + offs_dqk[None, :], mask=mask_qk, other=0.0)
        do = tl.load(DO + rows * stride_dot + h * stride_doh + offs_dv[None, :], mask=mask_v, other=0.0)
        dq = tl.zeros([BLOCK, BLOCK_DQK], dtype=tl.float32)
        for start_n in range(0, tl.minimum(seq_len, start + BLOCK), BLOCK):
            offs_n = start_n + tl.arange(0, BLOCK)
            mask_n = offs_n < seq_len
            rows_n = (seq_start + offs_n)[:, None]
            k = tl.load(K + rows_n * stride_kt + h * stride_kh + offs_dqk[None, :],
                        mask=mask_n[:, None] & (offs_dqk < DQK)[None, :], other=0.0)
            v = tl.load(V + rows_n * stride_vt + h * stride_vh + offs_dv[None, :],
                        mask=mask_n[:, None] & (offs_dv < DV)[None, :], other=0.0)
            ts_n = tl.load(TS + seq_start + offs_n, mask=mask_n, other=0) if HAS_TIME else None
            s, valid = _scores(q, k, offs, offs_n, seq_len, ts_query, ts_n, pos_ptr, time_ptr,
                               num_buckets, alpha, HAS_POS, HAS_TIME, PRECISION)
            _, ds = _grad_scores(s, valid, do, v, inv_n, PRECISION)
            dq = tl.dot(ds.to(k.dtype), k, dq, input_precision=PRECISION)
        tl.store(DQ + rows * stride_qt + h * stride_qh + offs_dqk[None, :],
                 (dq * alpha).to(DQ.dtype.element_ty), mask=mask_qk)


def _bias_args(table: torch.Tensor | None, placeholder: torch.Tensor) -> tuple[torch.Tensor, int]:
    """A bias table and its head stride: 0 for a table shared by all heads (one row)."""
    if table is None:
        return placeholder, 0
    table = table.contiguous()
    return table, (table.stride(0) if table.shape[0] > 1 else 0)


def _common_args(q: torch.Tensor, v: torch.Tensor, seq_offsets: torch.Tensor,
                 max_seq_len: int, timestamps: torch.Tensor | None, pos_bias: torch.Tensor | None,
                 time_bias: torch.Tensor | None, alpha: float,
                 query_timestamps: torch.Tensor | None) -> dict:
    """Kernel arguments shared by the forward and backward launches."""
    lengths = seq_offsets.diff()
    # Longest sequences first (no host sync): their programs dominate the tail otherwise.
    seq_order = torch.argsort(lengths, descending=True, stable=True)
    pos, stride_pos_h = _bias_args(pos_bias, seq_offsets)
    time, stride_time_h = _bias_args(time_bias, seq_offsets)
    ts = timestamps if timestamps is not None else seq_offsets
    return dict(
        seq_order=seq_order, TS=ts, TSQ=query_timestamps if query_timestamps is not None else ts,
        POS=pos, TIME=time, stride_pos_h=stride_pos_h, stride_time_h=stride_time_h,
        num_buckets=time_bias.shape[1] if time_bias is not None else 1,
        alpha=float(alpha), inv_n=1.0 / max_seq_len, MAX_LEN_KEY=triton.next_power_of_2(max_seq_len),
        DQK=q.shape[2], DV=v.shape[2], BLOCK_DQK=max(16, triton.next_power_of_2(q.shape[2])),
        BLOCK_DV=max(16, triton.next_power_of_2(v.shape[2])), HAS_POS=pos_bias is not None,
        HAS_TIME=time_bias is not None,
        # GPU fp32 dots default to tf32; "ieee" keeps fp32 inputs at fp32 accuracy.
        PRECISION="ieee" if q.dtype in (torch.float32, torch.float64) else "tf32",
    )


def _unit_stride(x: torch.Tensor) -> torch.Tensor:
    return x if x.stride(-1) == 1 else x.contiguous()


def hstu_attention_fwd(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, seq_offsets: torch.Tensor, max_seq_len: int,
    *, timestamps: torch.Tensor | None = None, pos_bias: torch.Tensor | None = None,
    time_bias: torch.Tensor | None = None, alpha: float = 1.0,
    query_timestamps: torch.Tensor | None = None, out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Forward launcher (inputs already validated). `out`, if given, is written in place
    (tests pre-fill it with NaN so that any element the kernel misses shows up)."""
    q, k, v = _unit_stride(q), _unit_stride(k), _unit_stride(v)
    num_tokens, num_heads, _ = q.shape
    out = torch.empty_like(v, memory_format=torch.contiguous_format) if out is None else out
    batch = seq_offsets.numel() - 1
    if num_tokens == 0 or batch == 0:
        return out
    args = _common_args(q, v, seq_offsets, max_seq_len, timestamps, pos_bias, time_bias, alpha,
                        query_timestamps)
    grid = lambda meta: (triton.cdiv(max_seq_len, meta["BLOCK_M"]), batch, num_heads)  # noqa: E731
    _hstu_attn_fwd_kernel[grid](
        q, k, v, out, seq_offsets, args.pop("seq_order"), args.pop("TS"), args.pop("TSQ"),
        args.pop("POS"), args.pop("TIME"), q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0),
        v.stride(1), out.stride(0), out.stride(1), **args)
    return out


def hstu_attention_bwd(
    grad_out: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    seq_offsets: torch.Tensor, max_seq_len: int, *, timestamps: torch.Tensor | None = None,
    pos_bias: torch.Tensor | None = None, time_bias: torch.Tensor | None = None,
    alpha: float = 1.0, query_timestamps: torch.Tensor | None = None,
    need_pos_grad: bool = True, need_time_grad: bool = True,
    out: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Backward launcher: (dq, dk, dv, d pos_bias, d time_bias); a bias grad is None when the
    table is absent or not needed. `out` = (dq, dk, dv) buffers, contiguous, written in place."""
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    grad_out = grad_out.to(v.dtype).contiguous()  # tl.dot needs dO and V in one dtype
    num_tokens, num_heads, _ = q.shape
    dq, dk, dv = out if out is not None else (torch.empty_like(q), torch.empty_like(k),
                                              torch.empty_like(v))
    need_pos_grad = need_pos_grad and pos_bias is not None
    need_time_grad = need_time_grad and time_bias is not None
    # fp32 accumulators for the atomics, cast back to the tables' dtypes at the end.
    dpos = torch.zeros_like(pos_bias, dtype=torch.float32) if need_pos_grad else None
    dtime = torch.zeros_like(time_bias, dtype=torch.float32) if need_time_grad else None
    batch = seq_offsets.numel() - 1
    if num_tokens > 0 and batch > 0:
        args = _common_args(q, v, seq_offsets, max_seq_len, timestamps, pos_bias, time_bias, alpha,
                            query_timestamps)
        grid = lambda meta: (triton.cdiv(max_seq_len, meta["BLOCK"]), batch, num_heads)  # noqa: E731
        # Absent grads get a scratch placeholder: autotune zeroes DPOS/DTIME between trials.
        scratch = q.new_zeros(1, dtype=torch.float32)
        _hstu_attn_bwd_kernel[grid](
            q, k, v, grad_out, dq, dk, dv, seq_offsets, args.pop("seq_order"), args.pop("TS"),
            args.pop("TSQ"), args.pop("POS"), args.pop("TIME"), dpos if need_pos_grad else scratch,
            dtime if need_time_grad else scratch, q.stride(0), q.stride(1), k.stride(0),
            k.stride(1), v.stride(0), v.stride(1), grad_out.stride(0), grad_out.stride(1),
            POS_GRAD=need_pos_grad, TIME_GRAD=need_time_grad, **args)
    dpos = dpos.to(pos_bias.dtype) if dpos is not None else None
    dtime = dtime.to(time_bias.dtype) if dtime is not None else None
    return dq, dk, dv, dpos, dtime
