import math

import numpy as np
import pytest
import torch

from scaling.metrics import RetrievalAccumulator, auc, binary_metrics, exclude_history, standard_error


def test_retrieval_metrics_against_hand_computed_ranks():
    scores = torch.tensor([
        [-math.inf, 0.9, 0.5, 0.1, 0.3],  # target 2 -> rank 1 (one better)
        [-math.inf, 0.2, 0.2, 0.9, 0.1],  # target 1 -> ties with item 2 count against it: rank 2
        [-math.inf, 0.1, 0.2, 0.3, 0.4],  # target 4 -> rank 0
    ])
    targets = torch.tensor([2, 1, 4])
    acc = RetrievalAccumulator()
    acc.add(scores[:2], targets[:2])
    acc.add(scores[2:], targets[2:])
    result = acc.result()
    ranks = np.array([1, 2, 0])
    assert result["hr@1"] == pytest.approx(1 / 3)
    assert result["hr@10"] == 1.0
    assert result["mrr"] == pytest.approx(np.mean(1 / (ranks + 1)))
    assert result["ndcg@10"] == pytest.approx(np.mean(1 / np.log2(ranks + 2)))
    nll = -torch.log_softmax(scores, dim=1)[torch.arange(3), targets].mean()
    assert result["nll"] == pytest.approx(float(nll), rel=1e-6)
    per_example = acc.per_example()  # in the order added, across batches
    np.testing.assert_allclose(per_example["ndcg@10"], 1 / np.log2(ranks + 2))
    np.testing.assert_array_equal(per_example["hr@1"], ranks < 1)


def test_standard_error_of_the_mean():
    values = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    # sample variance 0.3 (ddof 1), over n = 5
    assert standard_error(values) == pytest.approx(math.sqrt(0.3 / 5))
    with pytest.raises(ValueError, match="at least 2 examples"):
        standard_error(np.array([0.5]))


def test_exclude_history_keeps_the_target():
    scores = torch.zeros(2, 6)
    history = torch.tensor([1, 2, 3, 5, 5])
    offsets = torch.tensor([0, 3, 5])
    masked = exclude_history(scores, history, offsets, torch.tensor([2, 4]))
    assert torch.isinf(masked[0, [1, 3]]).all() and masked[0, 2] == 0  # target 2 was seen but stays
    assert torch.isinf(masked[1, 5]) and masked[1, 4] == 0
    assert scores.eq(0).all()  # the input is not modified


def test_auc_matches_pairwise_count_with_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=200).astype(float)
    labels = (rng.random(200) < 0.4).astype(float)
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairwise = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean()
    assert auc(scores, labels) == pytest.approx(pairwise)


def test_ne_is_logloss_over_base_rate_entropy():
    labels = np.array([1, 0, 0, 1, 1], dtype=float)
    p = 0.6
    # predicting the base rate everywhere gives NE = 1
    base_logit = np.full(5, math.log(p / (1 - p)))
    m = binary_metrics(base_logit, labels)
    assert m["ne"] == pytest.approx(1.0) and m["auc"] == 0.5
    perfect = binary_metrics(np.where(labels > 0, 20.0, -20.0), labels)
    assert perfect["ne"] < 1e-6 and perfect["auc"] == 1.0
    assert math.isnan(binary_metrics(np.zeros(3), np.ones(3))["auc"])
