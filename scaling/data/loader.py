"""Jagged batches from a split: shuffled training sequences, in-order evaluation examples.

Sequences longer than `max_seq_len` keep their most recent items. Batch b of epoch e depends
only on (seed, e, b), so a resumed run sees exactly the batches an uninterrupted one would.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch

from scaling.data.batch import EvalBatch, JaggedBatch
from scaling.data.splits import EvalSet, Sequences
from scaling.errors import GrscaleError


def _jagged(seqs: Sequences, rows: np.ndarray, max_seq_len: int) -> JaggedBatch:
    """Rows of `seqs` as a JaggedBatch, each cut to its last max_seq_len items."""
    ends = seqs.offsets[rows + 1]
    starts = np.maximum(seqs.offsets[rows], ends - max_seq_len)
    lengths = ends - starts
    offsets = np.zeros(rows.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    index = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    return JaggedBatch(
        item_ids=torch.from_numpy(seqs.item_ids[index]),
        timestamps=torch.from_numpy(seqs.timestamps[index]),
        labels=torch.from_numpy(seqs.labels[index]),
        offsets=torch.from_numpy(offsets),
        user_ids=torch.from_numpy(seqs.user_ids[rows]),
    )


class TrainBatches:
    """Shuffled fixed-size batches of training sequences (the last, smaller batch is kept)."""

    def __init__(self, seqs: Sequences, batch_size: int, max_seq_len: int, seed: int, min_length: int = 2,
                 shard: Callable[[np.ndarray], np.ndarray] | None = None):
        if batch_size < 1 or max_seq_len < 1:
            raise GrscaleError(f"batch_size and max_seq_len must be >= 1, got {batch_size}, {max_seq_len}")
        # A sequence needs min_length items to yield a prediction (an input and its next item).
        self.rows = np.flatnonzero(seqs.lengths() >= min_length)
        if self.rows.size == 0:
            raise GrscaleError(f"no training sequence has the {min_length} items a prediction needs")
        self.seqs, self.batch_size, self.max_seq_len, self.seed = seqs, batch_size, max_seq_len, seed
        self.shard = shard  # a data-parallel rank's share of each batch's rows (scaling.distributed.Ranks.shard)

    def __len__(self) -> int:
        return -(-self.rows.size // self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.rows)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[JaggedBatch]:
        """The batches of `epoch`, from batch index `start` on."""
        order = self.order(epoch)
        for b in range(start, len(self)):
            rows = order[b * self.batch_size:(b + 1) * self.batch_size]
            if self.shard is not None:
                rows = self.shard(rows)
            yield _jagged(self.seqs, rows, self.max_seq_len)


def eval_batches(data: EvalSet, batch_size: int, max_history_len: int) -> Iterator[EvalBatch]:
    """Evaluation examples in order; histories cut to their last max_history_len items."""
    for start in range(0, data.num_examples, batch_size):
        rows = np.arange(start, min(start + batch_size, data.num_examples))
        yield EvalBatch(
            history=_jagged(data.history, rows, max_history_len),
            target_item_ids=torch.from_numpy(data.target_item_ids[rows]),
            target_timestamps=torch.from_numpy(data.target_timestamps[rows]),
            target_labels=torch.from_numpy(data.target_labels[rows]),
        )
