"""The CPU path over tiles of real lengths against the padded reference: output, every gradient,
and the tile plan that scaling.flops counts."""
from __future__ import annotations

import pytest
import torch

from kernels import hstu_attention_tiles as tiles
from kernels.hstu_attention import hstu_attention, hstu_attention_ref
from tests.kernels.utils import assert_close


def inputs(lengths: list[int], heads: int, seed: int, max_len: int = 24):
    gen = torch.Generator().manual_seed(seed)
    total = sum(lengths)
    q, k = (torch.randn(total, heads, 5, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(2))
    v = torch.randn(total, heads, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    pos_bias = torch.randn(heads, max_len, generator=gen, dtype=torch.float64, requires_grad=True)
    time_bias = torch.randn(1, 20, generator=gen, dtype=torch.float64, requires_grad=True)
    kwargs = dict(timestamps=torch.randint(0, 5000, (total,), generator=gen), pos_bias=pos_bias,
                  time_bias=time_bias, alpha=0.7, query_timestamps=torch.randint(0, 5000, (total,), generator=gen))
    return (q, k, v, torch.tensor([0, *lengths]).cumsum(0), max_len), kwargs


@pytest.mark.parametrize("query_block", [3, 64])
@pytest.mark.parametrize("lengths,heads", [([1], 1), ([7, 1, 0, 13, 2, 24, 11], 2), ([5, 5, 4], 1)])
def test_tiles_match_the_padded_reference_with_gradients(monkeypatch, query_block, lengths, heads):
    monkeypatch.setattr(tiles, "QUERY_BLOCK", query_block)
    tiles.plan_tiles.cache_clear()
    args, kwargs = inputs(lengths, heads, seed=len(lengths) + query_block)
    leaves = [args[0], args[1], args[2], kwargs["pos_bias"], kwargs["time_bias"]]
    weights = torch.randn(sum(lengths), heads, 3, dtype=torch.float64)
    results = []
    for fn in (hstu_attention_ref, tiles.hstu_attention_tiled):
        out = fn(*args, **kwargs)
        grads = torch.autograd.grad((out * weights).sum(), leaves)
        results.append((out, grads))
    tiles.plan_tiles.cache_clear()
    (expected, expected_grads), (got, got_grads) = results
    assert_close("out", got, expected, atol=1e-12)
    for name, g, e in zip(("dq", "dk", "dv", "dpos", "dtime"), got_grads, expected_grads):
        assert_close(name, g, e, atol=1e-11)


def test_dispatcher_runs_the_tiles_in_float32_within_rounding():
    args, kwargs = inputs([30, 3, 17, 30, 9], 2, seed=0, max_len=30)
    args = tuple(a.detach().float() if a.is_floating_point() else a for a in args[:3]) + args[3:]
    kwargs = {k: v.detach().float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
              for k, v in kwargs.items()}
    assert_close("out", hstu_attention(*args, **kwargs, kernel="pytorch"), hstu_attention_ref(*args, **kwargs),
                 atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("lengths", [[200, 190, 21, 50, 120, 0, 1], [50] * 9, [3, 1]])
def test_plan_covers_each_causal_pair_once_as_a_query(lengths):
    plan = tiles.plan_tiles(tuple(lengths))
    queries = [(b, i) for t in plan for b in t.sequences for i in range(t.query_start, min(t.query_end, lengths[b]))]
    assert sorted(queries) == [(b, i) for b, n in enumerate(lengths) for i in range(n)]  # each exactly once
    causal = sum(n * (n + 1) // 2 for n in lengths)
    padded = len(lengths) * max(lengths) ** 2
    assert causal <= tiles.executed_pairs(lengths) <= padded
    for t in plan:  # a group holds sequences at least GROUP_RATIO of its longest
        longest = max(lengths[b] for b in t.sequences)
        assert min(lengths[b] for b in t.sequences) >= tiles.GROUP_RATIO * longest


def test_tiles_save_most_of_the_padding_at_ml1m_lengths():
    """Lengths spread as ML-1M's at 200 (5%..95%: 21..200): tiles run <= 1.8x the causal pairs, padding 4.4x."""
    lengths = [21, 30, 42, 60, 94, 130, 200, 200] * 16
    causal = sum(n * (n + 1) / 2 for n in lengths)
    assert len(lengths) * 200 ** 2 / causal > 4.4
    assert tiles.executed_pairs(lengths) / causal < 1.8
