"""The PyTorch reference against the definition, bucketing, validation and kernel choice."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kernels import hstu_attention
from kernels.hstu_attention import hstu_attention_ref, resolve_kernel, time_bucket_index
from tests.kernels.utils import assert_close


def naive_hstu_attention(q, k, v, seq_offsets, max_seq_len, timestamps, pos_bias, time_bias, alpha,
                         query_timestamps=None):
    """The definition, one sequence, head and pair at a time (float64, math.log buckets)."""
    query_times = timestamps if query_timestamps is None else query_timestamps
    out = torch.zeros_like(v)
    for b in range(seq_offsets.numel() - 1):
        start, end = int(seq_offsets[b]), int(seq_offsets[b + 1])
        for h in range(q.shape[1]):
            for i in range(start, end):
                for j in range(start, i + 1):
                    s = alpha * torch.dot(q[i, h], k[j, h])
                    if pos_bias is not None:
                        s = s + pos_bias[h % pos_bias.shape[0], i - j]
                    if time_bias is not None:
                        gap = max(abs(int(query_times[i] - timestamps[j])), 1)
                        bucket = min(max(math.floor(math.log(gap) / 0.301), 0), time_bias.shape[1] - 1)
                        s = s + time_bias[h % time_bias.shape[0], bucket]
                    out[i, h] += F.silu(s) / max_seq_len * v[j, h]
    return out


@pytest.mark.parametrize("lengths,heads,pos_rows,time_rows,query_times", [
    ([1], 1, None, None, False),
    ([4, 1, 6], 2, 2, 1, False),
    ([3, 0, 7, 2], 2, 1, 2, False),
    ([5, 2, 6], 2, 1, 2, True),
])
def test_reference_matches_definition(lengths, heads, pos_rows, time_rows, query_times):
    gen = torch.Generator().manual_seed(len(lengths))
    total, max_len, dim = sum(lengths), 8, 5
    seq_offsets = torch.tensor([0, *lengths]).cumsum(0)
    q, k = (torch.randn(total, heads, dim, generator=gen, dtype=torch.float64) for _ in range(2))
    v = torch.randn(total, heads, 3, generator=gen, dtype=torch.float64)
    timestamps = torch.randint(0, 5000, (total,), generator=gen)
    pos_bias = None if pos_rows is None else torch.randn(pos_rows, max_len, generator=gen, dtype=torch.float64)
    time_bias = None if time_rows is None else torch.randn(time_rows, 20, generator=gen, dtype=torch.float64)
    args = (q, k, v, seq_offsets, max_len)
    kwargs = dict(timestamps=timestamps, pos_bias=pos_bias, time_bias=time_bias, alpha=0.7)
    if query_times:  # e.g. each query's next interaction time: gaps of both signs
        kwargs["query_timestamps"] = torch.randint(0, 5000, (total,), generator=gen)
    expected = naive_hstu_attention(*args, **kwargs)
    assert_close("out", hstu_attention_ref(*args, **kwargs), expected, atol=1e-12)
    assert_close("dispatch", hstu_attention(*args, **kwargs, kernel="pytorch"), expected, atol=1e-12)


def test_reference_empty_batch_is_differentiable():
    q = torch.zeros(0, 2, 4, requires_grad=True)
    out = hstu_attention_ref(q, q, torch.zeros(0, 2, 3), torch.zeros(1, dtype=torch.int64), 4)
    assert out.shape == (0, 2, 3)
    out.sum().backward()
    assert q.grad.shape == q.shape


def test_time_bucket_index_known_gaps():
    dt = torch.tensor([0, 1, -1, 2, -2, 10, 3600, 86400, 10**9])
    # floor(ln|dt| / 0.301): ln2/.301=2.30, ln10/.301=7.65, ln3600/.301=27.2, ln86400/.301=37.8
    assert time_bucket_index(dt, 64).tolist() == [0, 0, 0, 2, 2, 7, 27, 37, 63]
    assert time_bucket_index(dt, 10).tolist() == [0, 0, 0, 2, 2, 7, 9, 9, 9]


def _valid_inputs():
    q = torch.randn(5, 2, 4)
    return dict(q=q, k=q.clone(), v=torch.randn(5, 2, 3), seq_offsets=torch.tensor([0, 2, 5]),
                max_seq_len=4, timestamps=torch.arange(5), pos_bias=torch.zeros(2, 4),
                time_bias=torch.zeros(1, 8))


@pytest.mark.parametrize("change,message", [
    (dict(k=torch.randn(5, 2, 5)), "q and k must match"),
    (dict(v=torch.randn(4, 2, 3)), "v must share"),
    (dict(q=torch.randn(5, 8)), r"must be \[T, H, D\]"),
    (dict(v=torch.randn(5, 2, 3, dtype=torch.float64)), "one floating dtype"),
    (dict(seq_offsets=torch.tensor([0, 3, 2, 5])), "monotonically"),
    (dict(seq_offsets=torch.tensor([0, 2, 4])), "monotonically"),
    (dict(seq_offsets=torch.tensor([0, 2, 5], dtype=torch.int32)), "int64"),
    (dict(max_seq_len=2), "length 3 > max_seq_len=2"),
    (dict(timestamps=None), "time_bias needs timestamps"),
    (dict(timestamps=torch.arange(4)), "timestamps must be int64"),
    (dict(query_timestamps=torch.arange(5).float()), "query_timestamps must be int64"),
    (dict(query_timestamps=torch.arange(4)), "query_timestamps must be int64"),
    (dict(timestamps=None, time_bias=None, query_timestamps=torch.arange(5)), "query_timestamps need timestamps"),
    (dict(pos_bias=torch.zeros(3, 4)), "pos_bias must be"),
    (dict(pos_bias=torch.zeros(2, 5)), "pos_bias must be"),
    (dict(time_bias=torch.zeros(3, 8)), "time_bias must be"),
    (dict(time_bias=torch.zeros(1, 0)), "time_bias must be"),
])
def test_validation_errors(change, message):
    inputs = {**_valid_inputs(), **change}
    with pytest.raises(ValueError, match=message):
        hstu_attention(**inputs)


def test_resolve_kernel_rules(monkeypatch):
    assert resolve_kernel("auto", torch.device("cpu")) == "pytorch"
    assert resolve_kernel("auto", torch.device("cuda")) == "triton"
    assert resolve_kernel("pytorch", torch.device("cuda")) == "pytorch"
    assert resolve_kernel("triton", torch.device("cuda")) == "triton"
    with pytest.raises(ValueError, match="unknown attention kernel"):
        resolve_kernel("flash", torch.device("cpu"))
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert resolve_kernel("triton", torch.device("cpu")) == "triton"
    monkeypatch.delenv("TRITON_INTERPRET")
    with pytest.raises(RuntimeError, match="needs CUDA"):
        resolve_kernel("triton", torch.device("cpu"))
