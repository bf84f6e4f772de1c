"""DLRM: impression examples, pooled-history window, eval outputs and train/eval consistency."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.dlrm import make_examples
from models.jagged import positions
from models.presets import build_model
from scaling.data.batch import EvalBatch, JaggedBatch
from tests.models.helpers import make_batch, make_eval_batch

NUM_ITEMS, NUM_USERS = 30, 6


def dlrm(**overrides):
    return build_model("dlrm", "xs", NUM_ITEMS, NUM_USERS, 50, **overrides).eval()


def test_examples_pool_the_last_window_items_before_each_target():
    batch = make_batch([5, 2], NUM_ITEMS)
    pos = positions(batch.offsets, batch.num_tokens)
    target = torch.nonzero(pos >= 1).squeeze(1)
    ex = make_examples(batch, target, pos[target], batch.user_ids[[0, 0, 0, 0, 1]],
                       batch.timestamps[target], window=2)
    bags = torch.tensor_split(ex.history_items, ex.history_bags[1:].tolist())
    items = batch.item_ids
    expected = [items[0:1], items[0:2], items[1:3], items[2:4], items[5:6]]
    assert [b.tolist() for b in bags] == [e.tolist() for e in expected]
    recency = batch.timestamps[target] - batch.timestamps[target - 1]
    torch.testing.assert_close(ex.dense[:, 1], torch.log1p(recency.float()))
    torch.testing.assert_close(ex.dense[:, 0], torch.log1p(pos[target].float()))


@pytest.mark.parametrize("cross", [0, 2])
def test_eval_outputs(cross):
    model = dlrm(num_cross_layers=cross)
    batch = make_eval_batch([3, 25, 1], NUM_ITEMS)
    with torch.no_grad():
        scores = model.score_catalog(batch)
        logits = model.predict_label_logits(batch)
    assert scores.shape == (3, NUM_ITEMS + 1)
    assert torch.isneginf(scores[:, 0]).all() and torch.isfinite(scores[:, 1:]).all()
    assert logits.shape == (3,) and torch.isfinite(logits).all()


@pytest.mark.parametrize("cross", [0, 2])
def test_training_example_equals_eval_of_the_same_prefix(cross):
    model = dlrm(num_cross_layers=cross)
    batch = make_batch([2, 2, 2], NUM_ITEMS)  # one example each: history = item 0, target = item 1
    first, second = batch.offsets[:-1], batch.offsets[:-1] + 1
    history = JaggedBatch(item_ids=batch.item_ids[first], timestamps=batch.timestamps[first],
                          labels=batch.labels[first], offsets=torch.arange(4), user_ids=batch.user_ids)
    evaluation = EvalBatch(history=history, target_item_ids=batch.item_ids[second],
                           target_timestamps=batch.timestamps[second], target_labels=batch.labels[second])
    with torch.no_grad():
        loss, count = model.training_loss(batch, "ranking", None)
        eval_loss = F.binary_cross_entropy_with_logits(model.predict_label_logits(evaluation),
                                                       evaluation.target_labels)
    assert count == 3
    torch.testing.assert_close(loss, eval_loss)


def test_training_loss_counts_one_example_per_prefix():
    model = dlrm()
    batch = make_batch([5, 1, 3], NUM_ITEMS)
    for task in ("retrieval", "ranking"):
        loss, count = model.training_loss(batch, task, torch.Generator().manual_seed(0))
        assert count == 4 + 0 + 2 and torch.isfinite(loss)
