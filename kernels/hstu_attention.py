"""HSTU's jagged pointwise attention: the padded PyTorch reference, the autograd.Function around the
Triton kernels, and the public dispatcher `hstu_attention` ("pytorch" runs the reference's math
over tiles of real lengths, kernels.hstu_attention_tiles).

Per sequence of length L (local positions i, j) and head h:
    s_ij = alpha * <q_i, k_j> + pos_bias[h, i - j] + time_bias[h, bucket(qts_i - ts_j)]
    a_ij = SiLU(s_ij) / max_seq_len  for j <= i, else 0
    out_i = sum_j a_ij v_j
Inputs are jagged: sequences concatenated along the token axis, delimited by `seq_offsets`.
qts are the query timestamps: `query_timestamps` where given (the HSTU paper's code measures a
query's gaps from the time of the interaction it predicts), else the tokens' own `timestamps`.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F

KERNELS = ("auto", "pytorch", "triton")

# ln-gap divisor from the HSTU paper's code: bucket = floor(ln(max(|dt|, 1)) / 0.301).
TIME_BUCKET_LOG_DIVISOR = 0.301


def time_bucket_index(dt: torch.Tensor, num_buckets: int) -> torch.Tensor:
    """Log-bucketed time gaps, computed in fp32 exactly as the Triton kernel does."""
    # In place after the first op: this runs on [B, L, L] gaps in every layer of a CPU step.
    gap = dt.abs().clamp_(min=1).to(torch.float32)
    return gap.log_().div_(TIME_BUCKET_LOG_DIVISOR).floor_().clamp_(0, num_buckets - 1).to(torch.int64)


def bias_lookup(table: torch.Tensor, index: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[Hb, N] table at int64 [...] -> [Hb, ...]. A gather, not advanced indexing: its backward is a
    scatter_add, several times faster on the CPU than index_put."""
    flat = index.flatten()[None].expand(table.shape[0], -1)
    return table.to(dtype).gather(1, flat).view(table.shape[0], *index.shape)


def validate_inputs(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    seq_offsets: torch.Tensor,
    max_seq_len: int,
    timestamps: torch.Tensor | None,
    pos_bias: torch.Tensor | None,
    time_bias: torch.Tensor | None,
    query_timestamps: torch.Tensor | None = None,
) -> None:
    """Raise ValueError with one message on any inconsistent input (one host sync for lengths)."""
    if q.dim() != 3 or k.dim() != 3 or v.dim() != 3:
        raise ValueError(f"q, k, v must be [T, H, D]; got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if q.shape != k.shape or v.shape[:2] != q.shape[:2]:
        raise ValueError(f"q and k must match and v must share [T, H]; got q {tuple(q.shape)}, "
                         f"k {tuple(k.shape)}, v {tuple(v.shape)}")
    if not (q.dtype == k.dtype == v.dtype) or not q.dtype.is_floating_point:
        raise ValueError(f"q, k, v must share one floating dtype; got {q.dtype}, {k.dtype}, {v.dtype}")
    tensors = [t for t in (k, v, seq_offsets, timestamps, query_timestamps, pos_bias, time_bias) if t is not None]
    if any(t.device != q.device for t in tensors):
        raise ValueError("all tensors must be on q's device")
    if max_seq_len < 1:
        raise ValueError(f"max_seq_len must be >= 1; got {max_seq_len}")
    num_tokens, num_heads = q.shape[0], q.shape[1]
    if seq_offsets.dim() != 1 or seq_offsets.dtype != torch.int64 or seq_offsets.numel() < 1:
        raise ValueError(f"seq_offsets must be a non-empty 1-D int64 tensor; got {seq_offsets.dtype} "
                         f"of shape {tuple(seq_offsets.shape)}")
    # One host sync for all offset checks (this runs before every GPU launch too).
    lengths = torch.cat([seq_offsets.diff(), seq_offsets.new_zeros(1)])
    first, last, shortest, longest = torch.stack(
        [seq_offsets[0], seq_offsets[-1], lengths.min(), lengths.max()]).tolist()
    if first != 0 or last != num_tokens or shortest < 0:
        raise ValueError(f"seq_offsets must rise monotonically from 0 to T={num_tokens}")
    if longest > max_seq_len:
        raise ValueError(f"a sequence has length {longest} > max_seq_len={max_seq_len}")
    if pos_bias is not None:
        if pos_bias.dim() != 2 or pos_bias.shape[0] not in (1, num_heads) or pos_bias.shape[1] != max_seq_len:
            raise ValueError(f"pos_bias must be [1 or H={num_heads}, max_seq_len={max_seq_len}]; "
                             f"got {tuple(pos_bias.shape)}")
        if not pos_bias.dtype.is_floating_point:
            raise ValueError(f"pos_bias must be floating point; got {pos_bias.dtype}")
    if time_bias is not None:
        if timestamps is None:
            raise ValueError("time_bias needs timestamps")
        if time_bias.dim() != 2 or time_bias.shape[0] not in (1, num_heads) or time_bias.shape[1] < 1:
            raise ValueError(f"time_bias must be [1 or H={num_heads}, num_time_buckets >= 1]; "
                             f"got {tuple(time_bias.shape)}")
        if not time_bias.dtype.is_floating_point:
            raise ValueError(f"time_bias must be floating point; got {time_bias.dtype}")
    for name, ts in (("timestamps", timestamps), ("query_timestamps", query_timestamps)):
        if ts is not None and (ts.shape != (num_tokens,) or ts.dtype != torch.int64):
            raise ValueError(f"{name} must be int64 [T={num_tokens}]; got {ts.dtype} of shape {tuple(ts.shape)}")
    if query_timestamps is not None and timestamps is None:
        raise ValueError("query_timestamps need timestamps (the keys' times)")


def hstu_attention_ref(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    seq_offsets: torch.Tensor,
    max_seq_len: int,
    *,
    timestamps: torch.Tensor | None = None,
    pos_bias: torch.Tensor | None = None,
    time_bias: torch.Tensor | None = None,
    alpha: float = 1.0,
    query_timestamps: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pure-PyTorch reference (autograd-differentiable): pads to the batch's longest sequence,
    computes [B, H, L, L] scores at once, and gathers the valid rows back to [T, H, Dv]."""
    validate_inputs(q, k, v, seq_offsets, max_seq_len, timestamps, pos_bias, time_bias, query_timestamps)
    num_tokens, num_heads, dim_v = v.shape
    lengths = seq_offsets.diff()
    if num_tokens == 0:
        return v.new_zeros(0, num_heads, dim_v) + 0 * (q.sum() + k.sum() + v.sum())  # keeps the graph
    max_len = int(lengths.max())

    # Padded gather: token index of (b, p), clamped so padding reads a real row, then zeroed.
    pos = torch.arange(max_len, device=q.device)
    valid = pos[None, :] < lengths[:, None]  # [B, L]
    token = (seq_offsets[:-1, None] + pos[None, :]).clamp(max=num_tokens - 1)
    keep = valid[..., None, None].to(q.dtype)

    # index_select rather than advanced indexing: its backward is index_add, several times
    # faster on the CPU than index_put.
    def pad(x: torch.Tensor) -> torch.Tensor:  # [T, H, D] -> [B, L, H, D]
        return x.index_select(0, token.flatten()).view(*token.shape, *x.shape[1:]) * keep

    qp, kp, vp = pad(q * alpha), pad(k), pad(v)
    scores = torch.einsum("bihd,bjhd->bhij", qp, kp)  # biases add in place: [B, H, L, L] is the big tensor
    rel = (pos[:, None] - pos[None, :]).clamp(min=0)  # j > i is masked below
    if pos_bias is not None:
        scores += bias_lookup(pos_bias, rel, q.dtype)[None]  # [1, Hp, L, L]
    if time_bias is not None:
        ts = timestamps[token]  # [B, L]
        qts = ts if query_timestamps is None else query_timestamps[token]
        buckets = time_bucket_index(qts[:, :, None] - ts[:, None, :], time_bias.shape[1])
        scores += bias_lookup(time_bias, buckets, q.dtype).transpose(0, 1)  # [B, Ht, L, L]
    causal = (pos[:, None] >= pos[None, :]).to(q.dtype)
    attn = F.silu(scores) * (causal / max_seq_len)
    out = torch.einsum("bhij,bjhd->bihd", attn, vp)  # [B, L, H, Dv]
    return out.flatten(0, 1).index_select(0, valid.flatten().nonzero().squeeze(1))


class _HstuAttentionFunction(torch.autograd.Function):
    """Autograd wrapper around the fused Triton forward and backward kernels."""

    @staticmethod
    def forward(ctx, q, k, v, seq_offsets, max_seq_len, timestamps, pos_bias, time_bias, alpha,
                query_timestamps):
        from kernels.triton.hstu_attention import hstu_attention_fwd

        out = hstu_attention_fwd(q, k, v, seq_offsets, max_seq_len, timestamps=timestamps,
                                 pos_bias=pos_bias, time_bias=time_bias, alpha=alpha,
                                 query_timestamps=query_timestamps)
        ctx.save_for_backward(q, k, v, seq_offsets, timestamps, pos_bias, time_bias, query_timestamps)
        ctx.max_seq_len, ctx.alpha = max_seq_len, alpha
        return out

    @staticmethod
    def backward(ctx, grad_out):
        from kernels.triton.hstu_attention import hstu_attention_bwd

        q, k, v, seq_offsets, timestamps, pos_bias, time_bias, query_timestamps = ctx.saved_tensors
        dq, dk, dv, dpos, dtime = hstu_attention_bwd(
            grad_out, q, k, v, seq_offsets, ctx.max_seq_len, timestamps=timestamps,
            pos_bias=pos_bias, time_bias=time_bias, alpha=ctx.alpha, query_timestamps=query_timestamps,
            need_pos_grad=ctx.needs_input_grad[6], need_time_grad=ctx.needs_input_grad[7])
        return dq, dk, dv, None, None, None, dpos, dtime, None, None


def resolve_kernel(kernel: str, device: torch.device) -> str:
    """Resolve the `kernel` config field to "pytorch" or "triton"; impossible requests raise."""
    if kernel not in KERNELS:
        raise ValueError(f"unknown attention kernel {kernel!r}; choose one of {', '.join(KERNELS)}")
    device = torch.device(device)
    if kernel == "auto":
        return "triton" if device.type == "cuda" else "pytorch"
    if kernel == "triton" and device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError(f"kernel='triton' cannot run on device {device.type!r}: it needs CUDA "
                           "(or TRITON_INTERPRET=1 for the slow CPU interpreter); use 'auto' or 'pytorch'")
    return kernel


def hstu_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    seq_offsets: torch.Tensor,
    max_seq_len: int,
    *,
    timestamps: torch.Tensor | None = None,
    pos_bias: torch.Tensor | None = None,
    time_bias: torch.Tensor | None = None,
    alpha: float = 1.0,
    query_timestamps: torch.Tensor | None = None,
    kernel: str = "auto",
) -> torch.Tensor:
    """Jagged causal HSTU attention, [T, H, Dqk] x2 + [T, H, Dv] -> [T, H, Dv]; see module doc."""
    if resolve_kernel(kernel, q.device) == "pytorch":
        from kernels.hstu_attention_tiles import hstu_attention_tiled  # it imports this module

        return hstu_attention_tiled(q, k, v, seq_offsets, max_seq_len, timestamps=timestamps,
                                  pos_bias=pos_bias, time_bias=time_bias, alpha=alpha,
                                  query_timestamps=query_timestamps)
    validate_inputs(q, k, v, seq_offsets, max_seq_len, timestamps, pos_bias, time_bias, query_timestamps)
    return _HstuAttentionFunction.apply(q, k, v, seq_offsets, max_seq_len, timestamps,
                                        pos_bias, time_bias, alpha, query_timestamps)
