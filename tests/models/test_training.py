"""A few optimizer steps on a learnable pattern lower the loss, for every family and task."""
from __future__ import annotations

import pytest
import torch

from models.losses import LossConfig
from models.presets import build_model
from scaling.data.batch import JaggedBatch

NUM_ITEMS = 30


def pattern_batch() -> JaggedBatch:
    """Item t+1 = item t + 1 (wrapping); engagement label = item id parity."""
    g = torch.Generator().manual_seed(0)
    lengths = [8] * 16
    starts = torch.randint(1, NUM_ITEMS + 1, (len(lengths),), generator=g)
    items = ((starts[:, None] - 1 + torch.arange(8)[None, :]) % NUM_ITEMS + 1).reshape(-1)
    return JaggedBatch(item_ids=items, timestamps=torch.arange(items.numel()) * 3600,
                       labels=(items % 2).float(), offsets=torch.arange(0, 129, 8),
                       user_ids=torch.arange(len(lengths)) % 4)


@pytest.mark.parametrize("family", ["hstu", "sasrec", "dlrm"])
@pytest.mark.parametrize("task", ["retrieval", "ranking"])
def test_a_few_steps_lower_the_loss(family, task):
    torch.manual_seed(0)
    extra = {"dropout": 0.0} if family != "dlrm" else {}
    model = build_model(family, "xs", NUM_ITEMS, 4, 8, loss=LossConfig(num_negatives=16), **extra)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = pattern_batch()

    def loss() -> torch.Tensor:  # the same negatives every time: a like-for-like comparison
        return model.training_loss(batch, task, torch.Generator().manual_seed(1))[0]

    initial = loss().item()
    for _ in range(15):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    assert loss().item() < 0.8 * initial
