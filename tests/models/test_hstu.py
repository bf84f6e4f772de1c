"""HSTU's block against the paper's formula, and the time its queries measure gaps from."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from models.jagged import prediction_times
from models.losses import catalog_logits
from models.presets import build_model
from scaling.data.batch import EvalBatch, JaggedBatch
from scaling.errors import GrscaleError
from tests.models.helpers import make_batch, make_eval_batch, randomize

NUM_ITEMS, MAX_LEN = 40, 12


def hstu(**overrides):
    model = build_model("hstu", "xs", NUM_ITEMS, 8, MAX_LEN, kernel="pytorch", **overrides)
    randomize(model)
    return model.eval()


def test_prediction_times_by_task():
    ts = torch.tensor([10, 20, 30, 40, 50])
    batch = JaggedBatch(item_ids=torch.ones(5, dtype=torch.int64), timestamps=ts, labels=torch.zeros(5),
                        offsets=torch.tensor([0, 3, 3, 5]), user_ids=torch.arange(3))
    # Retrieval: the next token's time; a sequence's last token keeps its own unless a target time is given.
    assert prediction_times(batch, "retrieval", None).tolist() == [20, 30, 30, 50, 50]
    assert prediction_times(batch, "retrieval", torch.tensor([33, 99, 55])).tolist() == [20, 30, 33, 50, 55]
    assert prediction_times(batch, "ranking", torch.tensor([33, 99, 55])).tolist() == ts.tolist()


@pytest.mark.parametrize("query_time,qk_scale,parameterization",
                         [("own", None, "grscale"), ("target", 1.0, "grscale"), ("target", 0.3, "grscale"),
                          ("target", 1.0, "paper")])
def test_block_matches_the_papers_formula(query_time, qk_scale, parameterization):
    # One sequence, one head, written out: U, V, Q, K = split(SiLU(W LN(x) + b));
    # A = SiLU(alpha Q K^T + rab_pos[i-j] + rab_time[bucket(t_q(i) - t_j)]) / n (causal);
    # y = x + f2(U * LN(A V)). "paper": LN(z) = (z - mean) / sqrt(var + 1e-6), no scale or shift; b = 0.
    model = build_model("hstu", "xs", NUM_ITEMS, 8, MAX_LEN, kernel="pytorch", num_heads=1,
                        query_time=query_time, qk_scale=qk_scale, dropout=0.0,
                        parameterization=parameterization).double()
    randomize(model)
    block = model.blocks[0]
    batch = make_batch([7], NUM_ITEMS, seed=2)
    times = prediction_times(batch, "retrieval", None)
    x = torch.randn(7, model.config.d_model, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    d = model.config.dqk
    if parameterization == "paper":
        def norm(z):
            return (z - z.mean(-1, keepdim=True)) / torch.sqrt(z.var(-1, unbiased=False, keepdim=True) + 1e-6)
        uvqk = norm(x) @ block.uvqk.weight.T
    else:
        norm = block.attn_norm
        uvqk = block.uvqk(block.input_norm(x))
    u, v, q, k = F.silu(uvqk).split([d, d, d, d], dim=-1)
    alpha = d ** -0.5 if qk_scale is None else qk_scale
    query_ts = times if query_time == "target" else batch.timestamps
    attn = torch.zeros(7, 7, dtype=torch.float64)
    for i in range(7):
        for j in range(i + 1):
            gap = max(abs(int(query_ts[i] - batch.timestamps[j])), 1)
            bucket = min(math.floor(math.log(gap) / 0.301), model.config.num_time_buckets - 1)
            s = alpha * q[i] @ k[j] + block.pos_bias[0, i - j] + block.time_bias[0, bucket]
            attn[i, j] = F.silu(s) / MAX_LEN
    expected = x + block.output(u * norm(attn @ v))
    with torch.no_grad():
        torch.testing.assert_close(block(x, batch, times), expected.detach())


def test_paper_parameterization_initialises_as_the_papers_code():
    config = dict(num_heads=2, dqk=48, dv=48, d_model=64)
    grscale = build_model("hstu", "xs", NUM_ITEMS, 8, 256, kernel="pytorch", **config)
    paper = build_model("hstu", "xs", NUM_ITEMS, 8, 256, kernel="pytorch", parameterization="paper", **config)
    block, reference = paper.blocks[0], grscale.blocks[0]
    assert block.uvqk.bias is None and block.input_norm.weight is None and block.attn_norm.weight is None
    assert block.input_norm.eps == block.attn_norm.eps == 1e-6
    # Parameters lost per block: the U/V/Q/K bias (2*96 + 2*96) and both norms' scale and shift (2*64 + 2*96).
    lost = sum(p.numel() for p in grscale.parameters()) - sum(p.numel() for p in paper.parameters())
    assert lost == len(paper.blocks) * (384 + 128 + 192)
    assert abs(block.uvqk.weight.std().item() - 0.02) < 0.002
    assert abs(block.pos_bias.std().item() - 0.02) < 0.004 and abs(block.time_bias.std().item() - 0.02) < 0.006
    bound = math.sqrt(6 / (96 + 64))  # Xavier-uniform for a 96 -> 64 projection
    assert block.output.weight.abs().max() <= bound and block.output.weight.abs().max() > 0.9 * bound
    assert not reference.pos_bias.any() and not reference.time_bias.any()


def test_unknown_parameterization_is_refused():
    with pytest.raises(GrscaleError, match="unknown HSTU parameterization 'meta'"):
        build_model("hstu", "xs", NUM_ITEMS, 8, MAX_LEN, parameterization="meta")


def test_target_query_time_sees_the_next_time_but_not_the_next_item():
    model = hstu(query_time="target")
    batch = make_batch([7, 4], NUM_ITEMS)
    t = 3
    items, later = batch.item_ids.clone(), batch.timestamps.clone()
    items[t + 1] = items[t + 1] % NUM_ITEMS + 1
    later[t + 1:7] += 10**6
    other_item = JaggedBatch(item_ids=items, timestamps=batch.timestamps, labels=batch.labels,
                             offsets=batch.offsets, user_ids=batch.user_ids)
    other_time = JaggedBatch(item_ids=batch.item_ids, timestamps=later, labels=batch.labels,
                             offsets=batch.offsets, user_ids=batch.user_ids)
    with torch.no_grad():
        before = model.hidden_states(batch, "retrieval")
        torch.testing.assert_close(model.hidden_states(other_item, "retrieval")[: t + 1], before[: t + 1])
        after = model.hidden_states(other_time, "retrieval")
    torch.testing.assert_close(after[:t], before[:t])
    torch.testing.assert_close(after[7:], before[7:])
    assert not torch.allclose(after[t], before[t])  # position t predicts item t+1: it knows when


@pytest.mark.parametrize("query_time", ["own", "target"])
def test_eval_query_is_the_training_position_that_predicts_the_target(query_time):
    # Eval scores the catalog from the last history position, told the target's time, exactly as
    # that position is computed in training on the sequence history + target.
    model = hstu(query_time=query_time)
    evaluation = make_eval_batch([4, 2], NUM_ITEMS)
    h = evaluation.history
    full = make_batch([5, 3], NUM_ITEMS)
    history_idx, target_idx = torch.tensor([0, 1, 2, 3, 5, 6]), torch.tensor([4, 7])
    items, ts = full.item_ids.clone(), full.timestamps.clone()
    items[history_idx], ts[history_idx] = h.item_ids, h.timestamps
    items[target_idx], ts[target_idx] = evaluation.target_item_ids, evaluation.target_timestamps
    full = JaggedBatch(item_ids=items, timestamps=ts, labels=full.labels, offsets=full.offsets, user_ids=h.user_ids)
    with torch.no_grad():
        hidden = model.hidden_states(full, "retrieval")[target_idx - 1]
        expected = catalog_logits(hidden, model.item_emb.weight, model.loss_config.temperature)
        scored = model.score_catalog(evaluation)
        torch.testing.assert_close(scored, expected)
        # The target's time matters to the query under "target" only.
        later = EvalBatch(history=h, target_item_ids=evaluation.target_item_ids,
                          target_timestamps=evaluation.target_timestamps + 10**7,
                          target_labels=evaluation.target_labels)
        moved = model.score_catalog(later)
    # Against the same eval path: against `expected` (another summation order) near-zero logits
    # differ by float noise that allclose's atol=1e-8 does not forgive.
    assert torch.allclose(moved, scored) == (query_time == "own")


def test_unknown_query_time_fails():
    with pytest.raises(GrscaleError, match="query_time"):
        build_model("hstu", "xs", NUM_ITEMS, 8, MAX_LEN, query_time="next")
