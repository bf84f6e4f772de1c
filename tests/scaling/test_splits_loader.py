import numpy as np
import pytest
import torch

from scaling.data.batch import JaggedBatch
from scaling.data.loader import TrainBatches, eval_batches
from scaling.data.log import InteractionLog
from scaling.data.splits import leave_one_out, make_split, sample_users, temporal
from scaling.data.synthetic import SyntheticConfig, generate_synthetic
from scaling.errors import GrscaleError


def small_log() -> InteractionLog:
    return generate_synthetic(SyntheticConfig(num_users=60, num_items=40, mean_seq_len=8, seed=3))


def user_items(log, u):
    return log.item_ids[log.offsets[u]:log.offsets[u + 1]]


def test_leave_one_out_holds_out_last_two_and_never_leaks():
    log = small_log()
    split = leave_one_out(log)
    assert split.val.num_examples == split.test.num_examples == log.num_users  # all have >= 3
    for row in range(split.test.num_examples):
        u = split.test.history.user_ids[row]
        items = user_items(log, u)
        h = split.test.history
        test_hist = h.item_ids[h.offsets[row]:h.offsets[row + 1]]
        assert split.test.target_item_ids[row] == items[-1]
        np.testing.assert_array_equal(test_hist, items[:-1])
        v = split.val.history
        np.testing.assert_array_equal(v.item_ids[v.offsets[row]:v.offsets[row + 1]], items[:-2])
        assert split.val.target_item_ids[row] == items[-2]
    # training sequences are exactly the items before the validation target
    t = split.train
    for row in range(t.num_sequences):
        items = user_items(log, t.user_ids[row])
        np.testing.assert_array_equal(t.item_ids[t.offsets[row]:t.offsets[row + 1]], items[:-2])


def test_leave_last_out_is_the_paper_protocol():
    log = small_log()
    split = make_split(log, "leave-last-out")
    assert split.val is split.test
    for row in range(split.test.num_examples):
        items = user_items(log, split.test.history.user_ids[row])
        assert split.test.target_item_ids[row] == items[-1]
    t = split.train
    np.testing.assert_array_equal(t.item_ids[t.offsets[0]:t.offsets[1]], user_items(log, t.user_ids[0])[:-1])


def test_sample_users_keeps_whole_examples_and_is_fixed_by_its_seed():
    val = leave_one_out(small_log()).val
    sample = sample_users(val, 17)
    assert sample.num_examples == 17 and sample.history.num_sequences == 17
    users = sample.history.user_ids
    assert np.all(np.diff(users) > 0)  # a subset, kept in the original order
    for row, user in enumerate(users):
        source = int(np.flatnonzero(val.history.user_ids == user)[0])
        v, s = val.history, sample.history
        np.testing.assert_array_equal(s.item_ids[s.offsets[row]:s.offsets[row + 1]],
                                      v.item_ids[v.offsets[source]:v.offsets[source + 1]])
        assert sample.target_item_ids[row] == val.target_item_ids[source]
        assert sample.target_labels[row] == val.target_labels[source]
    np.testing.assert_array_equal(sample_users(val, 17).history.user_ids, users)
    assert not np.array_equal(sample_users(val, 17, seed=1).history.user_ids, users)
    assert sample_users(val, val.num_examples + 5) is val


def test_leave_one_out_short_users_only_train():
    log = InteractionLog("x", np.array([1, 2, 1, 2, 3]), np.arange(5), np.ones(5, np.float32),
                         np.ones(5, np.float32), np.array([0, 2, 5]), True)
    split = leave_one_out(log)
    assert split.test.history.user_ids.tolist() == [1]
    assert split.train.user_ids.tolist() == [0, 1]
    assert split.train.item_ids.tolist() == [1, 2, 1]


def test_temporal_split_respects_cutoffs():
    log = small_log()
    split = temporal(log, 0.7, 0.85)
    t_val, t_test = np.quantile(log.timestamps, [0.7, 0.85])
    assert (split.train.timestamps < t_val).all()
    assert ((split.val.target_timestamps >= t_val) & (split.val.target_timestamps < t_test)).all()
    assert (split.test.target_timestamps >= t_test).all()
    for es in (split.val, split.test):
        h = es.history
        for row in range(es.num_examples):
            assert (h.timestamps[h.offsets[row]:h.offsets[row + 1]] <= es.target_timestamps[row]).all()
            assert h.offsets[row + 1] > h.offsets[row]


def test_unknown_split_and_bad_quantiles():
    with pytest.raises(GrscaleError, match="unknown split 'random'.*leave-one-out, temporal, leave-last-out"):
        make_split(small_log(), "random")
    with pytest.raises(GrscaleError, match="val_quantile"):
        temporal(small_log(), 0.9, 0.5)


def test_dataset_too_small_for_a_split():
    log = InteractionLog("tiny", np.array([1, 2]), np.arange(2), np.ones(2, np.float32), np.ones(2, np.float32),
                         np.array([0, 2]), True)
    with pytest.raises(GrscaleError, match="tiny: no user has the 3 interactions"):
        leave_one_out(log)


def test_train_batches_keep_most_recent_items_and_are_reproducible():
    split = leave_one_out(small_log())
    batches = TrainBatches(split.train, batch_size=7, max_seq_len=4, seed=1)
    first = list(batches.epoch(0))
    assert len(first) == len(batches)
    assert sum(b.batch_size for b in first) == batches.rows.size
    again = list(batches.epoch(0, start=2))
    torch.testing.assert_close(again[0].item_ids, first[2].item_ids)
    assert not torch.equal(next(batches.epoch(1)).user_ids, first[0].user_ids)
    t = split.train
    for batch in first:
        for b, user in enumerate(batch.user_ids.tolist()):
            row = int(np.flatnonzero(t.user_ids == user)[0])
            full = t.item_ids[t.offsets[row]:t.offsets[row + 1]]
            got = batch.item_ids[batch.offsets[b]:batch.offsets[b + 1]].numpy()
            np.testing.assert_array_equal(got, full[-4:])


def test_jagged_matches_padded_view_both_ways():
    split = leave_one_out(small_log())
    batch = next(TrainBatches(split.train, batch_size=9, max_seq_len=6, seed=0).epoch(0))
    padded = batch.to_padded()
    lengths = batch.lengths()
    assert padded.item_ids.shape == (9, int(lengths.max()))
    for b in range(9):
        seg = slice(int(batch.offsets[b]), int(batch.offsets[b + 1]))
        n = int(lengths[b])
        assert torch.equal(padded.item_ids[b, :n], batch.item_ids[seg])
        assert torch.equal(padded.timestamps[b, :n], batch.timestamps[seg])
        assert (padded.item_ids[b, n:] == 0).all() and not padded.mask[b, n:].any()
    back = padded.to_jagged()
    for name in ("item_ids", "timestamps", "labels", "offsets", "user_ids"):
        assert torch.equal(getattr(back, name), getattr(batch, name))


def test_eval_batches_cover_every_example_in_order():
    split = leave_one_out(small_log())
    seen = []
    for batch in eval_batches(split.test, batch_size=16, max_history_len=5):
        assert batch.history.lengths().max() <= 5
        seen.extend(batch.target_item_ids.tolist())
        # the target never appears as the history's last element position: it is the next one
    assert seen == split.test.target_item_ids.tolist()


def test_empty_padded_view():
    empty = JaggedBatch(torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64),
                        torch.zeros(0), torch.zeros(1, dtype=torch.int64), torch.zeros(0, dtype=torch.int64))
    assert empty.to_padded().item_ids.shape == (0, 0)


def test_synthetic_is_deterministic_and_sized_by_its_parameters():
    a = generate_synthetic(SyntheticConfig(num_users=300, num_items=200, mean_seq_len=20, seed=5))
    b = generate_synthetic(SyntheticConfig(num_users=300, num_items=200, mean_seq_len=20, seed=5))
    c = generate_synthetic(SyntheticConfig(num_users=300, num_items=200, mean_seq_len=20, seed=6))
    for key, value in a.arrays().items():
        np.testing.assert_array_equal(value, b.arrays()[key])
    assert not np.array_equal(a.item_ids[:100], c.item_ids[:100])
    assert a.num_users == 300 and a.item_ids.max() <= 200 and a.lengths().min() >= 3
    assert 15 < a.lengths().mean() < 25
    assert 0.2 < a.labels.mean() < 0.8
    assert (np.diff(a.timestamps)[np.setdiff1d(np.arange(a.num_interactions - 1), a.offsets[1:-1] - 1)] >= 0).all()


def test_synthetic_users_have_structure():
    """DP interests: a user's early and late items overlap far more than two users' items do."""
    log = generate_synthetic(SyntheticConfig(num_users=400, num_items=500, mean_seq_len=30, seed=0))
    rng = np.random.default_rng(0)

    def overlap(a, b):
        a, b = set(a.tolist()), set(b.tolist())
        return len(a & b) / max(len(a | b), 1)

    same, other = [], []
    for u in range(log.num_users):
        items = user_items(log, u)
        half = items.size // 2
        v_items = user_items(log, int(rng.integers(log.num_users)))
        same.append(overlap(items[:half], items[half:]))
        other.append(overlap(items[:half], v_items[v_items.size // 2:]))
    assert np.mean(same) > 1.5 * np.mean(other)


def test_synthetic_bad_parameters():
    with pytest.raises(GrscaleError, match="mean_seq_len"):
        generate_synthetic(SyntheticConfig(mean_seq_len=1))
