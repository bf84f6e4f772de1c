"""Length-bucketed training batches: every sequence once per epoch, seeded, replayable, less padding."""
from __future__ import annotations

import numpy as np
import pytest

from scaling.data.loader import BUCKET_POOL_BATCHES, TrainBatches
from scaling.data.splits import Sequences

BATCH = 8


def skewed_sequences(num_users: int = 300, seed: int = 0) -> Sequences:
    """Most users short, a long tail up to 120 items (as ML-1M's lengths are)."""
    rng = np.random.default_rng(seed)
    lengths = np.minimum(2 + rng.geometric(1 / 15, size=num_users), 120)
    lengths[:5] = 1  # too short to predict anything: never drawn
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    total = int(offsets[-1])
    return Sequences(item_ids=rng.integers(1, 50, size=total), timestamps=np.arange(total, dtype=np.int64),
                     labels=np.ones(total, dtype=np.float32), offsets=offsets,
                     user_ids=np.arange(num_users, dtype=np.int64))


def padded_pairs(batches: TrainBatches, epoch: int) -> tuple[int, int]:
    """(batch x longest^2 pairs the padded attention computes, causal pairs it needs) over one epoch."""
    padded = causal = 0
    for batch in batches.epoch(epoch):
        lengths = batch.lengths().numpy()
        padded += lengths.size * int(lengths.max()) ** 2
        causal += int((lengths * (lengths + 1) // 2).sum())
    return padded, causal


@pytest.mark.parametrize("max_seq_len", [16, 200])
def test_every_sequence_once_per_epoch_and_the_short_last_batch_last(max_seq_len):
    seqs = skewed_sequences()
    batches = TrainBatches(seqs, BATCH, max_seq_len, seed=3, length_buckets=True)
    assert batches.rows.size > BUCKET_POOL_BATCHES * BATCH  # more than one pool
    for epoch in range(3):
        drawn = [batch.user_ids.numpy() for batch in batches.epoch(epoch)]
        users = np.concatenate(drawn)
        np.testing.assert_array_equal(np.sort(users), batches.rows)  # each once; one-item users never
        assert [len(d) for d in drawn[:-1]] == [BATCH] * (len(drawn) - 1) and 0 < len(drawn[-1]) <= BATCH
    assert len(list(batches.epoch(0))) == len(batches)


def test_seeded_shuffled_and_replayable_from_any_batch():
    seqs = skewed_sequences()
    batches = TrainBatches(seqs, BATCH, 120, seed=3, length_buckets=True)
    first = [b.user_ids.tolist() for b in batches.epoch(0)]
    # A fresh loader (a resumed trial) replays epoch 0 from batch 5 exactly.
    again = TrainBatches(seqs, BATCH, 120, seed=3, length_buckets=True)
    assert [b.user_ids.tolist() for b in again.epoch(0, start=5)] == first[5:]
    # Another epoch or seed draws other batches, in another order of lengths.
    assert [b.user_ids.tolist() for b in batches.epoch(1)] != first
    assert [b.user_ids.tolist() for b in TrainBatches(seqs, BATCH, 120, seed=4, length_buckets=True).epoch(0)] != first
    longest = [max(len(seqs.item_ids[seqs.offsets[u]:seqs.offsets[u + 1]]) for u in batch) for batch in first]
    assert longest != sorted(longest)  # the batch order is shuffled, not sorted by length


def test_buckets_cut_padding_on_skewed_lengths():
    seqs = skewed_sequences()
    plain = TrainBatches(seqs, BATCH, 120, seed=0)
    bucketed = TrainBatches(seqs, BATCH, 120, seed=0, length_buckets=True)
    padded_plain, causal = padded_pairs(plain, 0)
    padded_bucketed, causal_bucketed = padded_pairs(bucketed, 0)
    assert causal_bucketed == causal  # the same sequences
    # A random draw pays about 8x the causal pairs here, buckets about 3.4x (2x is the causal half;
    # the rest is the long tail's spread within a pool's longest batch).
    assert padded_plain / causal > 7
    assert padded_bucketed / causal < 4


def test_without_buckets_the_order_is_unchanged():
    """The default keeps today's batches: a permutation seeded by (seed, epoch)."""
    seqs = skewed_sequences()
    batches = TrainBatches(seqs, BATCH, 120, seed=7)
    rows = np.flatnonzero(seqs.lengths() >= 2)
    np.testing.assert_array_equal(batches.order(2), np.random.default_rng([7, 2]).permutation(rows))
