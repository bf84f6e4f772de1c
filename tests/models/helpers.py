"""Small synthetic batches for model tests."""
from __future__ import annotations

import torch

from scaling.data.batch import EvalBatch, JaggedBatch


def make_batch(lengths: list[int], num_items: int, seed: int = 0, num_users: int | None = None) -> JaggedBatch:
    g = torch.Generator().manual_seed(seed)
    total = sum(lengths)
    offsets = torch.zeros(len(lengths) + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(torch.tensor(lengths, dtype=torch.int64), 0)
    users = num_users or len(lengths)
    return JaggedBatch(
        item_ids=torch.randint(1, num_items + 1, (total,), generator=g),
        timestamps=torch.cumsum(torch.randint(0, 200_000, (total,), generator=g), 0),
        labels=torch.randint(0, 2, (total,), generator=g).float(),
        offsets=offsets,
        user_ids=torch.randint(0, users, (len(lengths),), generator=g),
    )


def make_eval_batch(lengths: list[int], num_items: int, seed: int = 0) -> EvalBatch:
    history = make_batch(lengths, num_items, seed)
    g = torch.Generator().manual_seed(seed + 1)
    last_ts = history.timestamps[(history.offsets[1:] - 1).clamp(min=0)]
    return EvalBatch(
        history=history,
        target_item_ids=torch.randint(1, num_items + 1, (len(lengths),), generator=g),
        target_timestamps=last_ts + 3600,
        target_labels=torch.randint(0, 2, (len(lengths),), generator=g).float(),
    )


def randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Give zero-initialised tensors (HSTU's attention biases) random values so they matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
