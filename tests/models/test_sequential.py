"""HSTU and SASRec: shapes, causality, no label leakage, jagged = per-sequence, eval consistency."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.losses import LossConfig
from models.presets import build_model
from scaling.data.batch import JaggedBatch
from scaling.errors import GrscaleError
from tests.models.helpers import make_batch, make_eval_batch, randomize

NUM_ITEMS, MAX_LEN = 40, 12
FAMILIES = ["hstu", "hstu-paper", "sasrec", "sasrec-original"]
EXTRA = {"hstu": {"kernel": "pytorch"}, "hstu-paper": {"kernel": "pytorch", "parameterization": "paper"},
         "sasrec": {}, "sasrec-original": {"layout": "original"}}


def model_for(variant: str, **overrides):
    family = variant.split("-")[0]
    model = build_model(family, "xs", NUM_ITEMS, 8, MAX_LEN, num_heads=2, **EXTRA[variant], **overrides)
    randomize(model)
    return model.eval()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("task", ["retrieval", "ranking"])
def test_future_items_do_not_change_earlier_outputs(family, task):
    model = model_for(family)
    batch = make_batch([7, 4], NUM_ITEMS)
    changed_at = 4  # a position of sequence 0
    items, timestamps = batch.item_ids.clone(), batch.timestamps.clone()
    items[changed_at] = items[changed_at] % NUM_ITEMS + 1
    timestamps[changed_at:7] += 10**6  # HSTU's time bias must not leak the future either
    changed = JaggedBatch(item_ids=items, timestamps=timestamps, labels=batch.labels,
                          offsets=batch.offsets, user_ids=batch.user_ids)
    with torch.no_grad():
        before = model.hidden_states(batch, task)
        after = model.hidden_states(changed, task)
    torch.testing.assert_close(after[:changed_at], before[:changed_at])
    torch.testing.assert_close(after[7:], before[7:])  # the other sequence
    assert not torch.allclose(after[changed_at:7], before[changed_at:7])


@pytest.mark.parametrize("family", FAMILIES)
def test_ranking_logit_never_sees_its_own_label(family):
    model = model_for(family)
    batch = make_batch([6], NUM_ITEMS)
    t = 3
    labels = batch.labels.clone()
    labels[t] = 1.0 - labels[t]
    flipped = JaggedBatch(item_ids=batch.item_ids, timestamps=batch.timestamps, labels=labels,
                          offsets=batch.offsets, user_ids=batch.user_ids)
    with torch.no_grad():
        before = model.ranking_head(model.hidden_states(batch, "ranking")).squeeze(-1)
        after = model.ranking_head(model.hidden_states(flipped, "ranking")).squeeze(-1)
    torch.testing.assert_close(after[: t + 1], before[: t + 1])
    assert not torch.allclose(after[t + 1:], before[t + 1:])


@pytest.mark.parametrize("family", FAMILIES)
def test_jagged_batch_matches_each_sequence_alone(family):
    model = model_for(family)
    lengths = [5, 1, 9, 3]
    batch = make_batch(lengths, NUM_ITEMS)
    with torch.no_grad():
        together = model.hidden_states(batch, "retrieval")
        for b, length in enumerate(lengths):
            start = int(batch.offsets[b])
            alone = JaggedBatch(item_ids=batch.item_ids[start:start + length],
                                timestamps=batch.timestamps[start:start + length],
                                labels=batch.labels[start:start + length],
                                offsets=torch.tensor([0, length]), user_ids=batch.user_ids[b:b + 1])
            torch.testing.assert_close(together[start:start + length], model.hidden_states(alone, "retrieval"),
                                       atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_eval_outputs(family):
    model = model_for(family)
    batch = make_eval_batch([3, 15, 1], NUM_ITEMS)  # 15 > max_seq_len: eval keeps the most recent
    with torch.no_grad():
        scores = model.score_catalog(batch)
        logits = model.predict_label_logits(batch)
    assert scores.shape == (3, NUM_ITEMS + 1)
    assert torch.isneginf(scores[:, 0]).all() and torch.isfinite(scores[:, 1:]).all()
    assert logits.shape == (3,) and torch.isfinite(logits).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_eval_ranking_logit_equals_the_training_position(family):
    model = model_for(family)
    evaluation = make_eval_batch([4, 2], NUM_ITEMS)
    h = evaluation.history
    # The same interactions as training sequences: history followed by the target.
    full = make_batch([5, 3], NUM_ITEMS)
    idx = torch.tensor([0, 1, 2, 3, 5, 6])
    target_idx = torch.tensor([4, 7])
    items, ts, labels = full.item_ids.clone(), full.timestamps.clone(), full.labels.clone()
    items[idx], ts[idx], labels[idx] = h.item_ids, h.timestamps, h.labels
    items[target_idx], ts[target_idx] = evaluation.target_item_ids, evaluation.target_timestamps
    full = JaggedBatch(item_ids=items, timestamps=ts, labels=labels, offsets=full.offsets, user_ids=h.user_ids)
    with torch.no_grad():
        train_logits = model.ranking_head(model.hidden_states(full, "ranking")).squeeze(-1)
        torch.testing.assert_close(model.predict_label_logits(evaluation), train_logits[target_idx])


@pytest.mark.parametrize("family", FAMILIES)
def test_training_loss_counts_predictions(family):
    model = model_for(family)
    batch = make_batch([5, 1, 3], NUM_ITEMS)
    loss, count = model.training_loss(batch, "retrieval", torch.Generator().manual_seed(0))
    assert count == 4 + 0 + 2 and loss.ndim == 0 and torch.isfinite(loss)
    loss, count = model.training_loss(batch, "ranking", None)
    assert count == 9 and torch.isfinite(loss)


def test_per_prediction_negatives_give_each_prediction_its_own_draw():
    # Against the loss written out row by row: K fresh negatives per prediction, a negative
    # equal to the row's positive left out, cross entropy over cosine / temperature.
    model = model_for("hstu", loss=LossConfig(num_negatives=5, negatives_per="prediction"))
    batch = make_batch([4, 1, 3], NUM_ITEMS)
    loss, count = model.training_loss(batch, "retrieval", torch.Generator().manual_seed(3))
    with torch.no_grad():
        hidden = F.normalize(model.hidden_states(batch, "retrieval"), dim=-1)
        items = F.normalize(model.item_emb.weight, dim=-1)
    negatives = torch.randint(1, NUM_ITEMS + 1, (count, 5), generator=torch.Generator().manual_seed(3))
    rows = [t for t in range(8) if t + 1 not in (4, 5, 8)]  # tokens with a successor in their sequence
    losses = []
    for row, token in enumerate(rows):
        target = batch.item_ids[token + 1]
        kept = negatives[row][negatives[row] != target]
        logits = torch.cat([items[target][None], items[kept]]) @ hidden[token] / 0.05
        losses.append(-torch.log_softmax(logits, 0)[0])
    assert count == 5
    torch.testing.assert_close(loss.detach(), torch.stack(losses).mean())
    with pytest.raises(ValueError, match="negatives_per"):
        LossConfig(negatives_per="batch")


def test_sequence_longer_than_max_seq_len_raises():
    model = model_for("hstu")
    with pytest.raises(GrscaleError, match="max_seq_len"):
        model.training_loss(make_batch([MAX_LEN + 1], NUM_ITEMS), "ranking", None)


def test_hstu_records_its_resolved_kernel():
    assert model_for("hstu").resolved_kernel("cpu") == "pytorch"
    assert build_model("hstu", "xs", NUM_ITEMS, 8, MAX_LEN).resolved_kernel("cpu") == "pytorch"
    assert model_for("sasrec").resolved_kernel("cpu") == "sdpa"


@pytest.mark.parametrize("family", FAMILIES)
def test_ranking_eval_trims_a_full_history_to_fit_the_target(family):
    model = model_for(family)
    batch = make_eval_batch([MAX_LEN], NUM_ITEMS)
    with torch.no_grad():
        assert model.predict_label_logits(batch).shape == (1,)
