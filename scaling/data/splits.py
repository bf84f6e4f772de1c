"""Train / validation / test splits of an interaction log.

Leave-one-out: per user, the last interaction is the test target,
the second-to-last the validation target, the rest the training sequence. Leave-last-out (the
HSTU paper's public protocol): no validation target. Temporal: training on everything before a
cutoff time, evaluation on the first interaction after it.
A target never appears in its own history, nor in the training sequences.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scaling.data.log import InteractionLog
from scaling.errors import GrscaleError


@dataclass(frozen=True)
class Sequences:
    """Several users' sequences concatenated (numpy), as InteractionLog but for a subset."""

    item_ids: np.ndarray
    timestamps: np.ndarray
    labels: np.ndarray
    offsets: np.ndarray
    user_ids: np.ndarray

    @property
    def num_sequences(self) -> int:
        return int(self.offsets.size - 1)

    @property
    def num_tokens(self) -> int:
        return int(self.item_ids.size)

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


@dataclass(frozen=True)
class EvalSet:
    """One prediction per user: the target interaction and the history before it."""

    history: Sequences
    target_item_ids: np.ndarray
    target_timestamps: np.ndarray
    target_labels: np.ndarray

    @property
    def num_examples(self) -> int:
        return int(self.target_item_ids.size)


def sample_users(data: EvalSet, num_users: int, seed: int = 0) -> EvalSet:
    """A fixed random subset of `num_users` examples (all of them where there are no more), in order.

    The same seed gives the same users whatever the trial, so validation curves stay comparable
    across trials while costing a fraction of a full pass (the test split keeps every user).
    """
    if num_users >= data.num_examples:
        return data
    return select_examples(data, np.sort(np.random.default_rng(seed).choice(data.num_examples, size=num_users,
                                                                             replace=False)))


def select_examples(data: EvalSet, rows: np.ndarray) -> EvalSet:
    """The examples `rows` of `data` (ascending indices), in that order."""
    h = data.history
    history = _gather(h, h.user_ids[rows], h.offsets[rows], h.offsets[rows + 1])
    return EvalSet(history, data.target_item_ids[rows], data.target_timestamps[rows], data.target_labels[rows])


@dataclass(frozen=True)
class Split:
    train: Sequences
    val: EvalSet
    test: EvalSet
    num_items: int
    num_users: int
    has_labels: bool


def _gather(log: InteractionLog | Sequences, users: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> Sequences:
    """Concatenate log[starts[i]:ends[i]] (absolute positions) for each selected user."""
    lengths = ends - starts
    offsets = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    index = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    return Sequences(
        item_ids=log.item_ids[index],
        timestamps=log.timestamps[index],
        labels=log.labels[index],
        offsets=offsets,
        user_ids=users.astype(np.int64),
    )


def _eval_set(log: InteractionLog, users: np.ndarray, target_pos: np.ndarray) -> EvalSet:
    history = _gather(log, users, log.offsets[users], target_pos)
    return EvalSet(
        history=history,
        target_item_ids=log.item_ids[target_pos],
        target_timestamps=log.timestamps[target_pos],
        target_labels=log.labels[target_pos],
    )


def _hold_out_last(log: InteractionLog, held_out: int, name: str) -> tuple[Sequences, np.ndarray, np.ndarray]:
    """Training sequences without each evaluated user's last `held_out` interactions.

    Users with more than `held_out` interactions are evaluated; shorter ones only train.
    Returns (train, evaluated users, absolute position of each evaluated user's last interaction).
    """
    users = np.arange(log.num_users)
    evaluated = users[log.lengths() > held_out]
    if evaluated.size == 0:
        raise GrscaleError(f"{log.name}: no user has the {held_out + 1} interactions a {name} split needs")
    ends = log.offsets[1:].copy()
    ends[evaluated] -= held_out
    train_users = users[ends > log.offsets[:-1]]
    train = _gather(log, train_users, log.offsets[train_users], ends[train_users])
    return train, evaluated, log.offsets[evaluated + 1] - 1


def leave_one_out(log: InteractionLog) -> Split:
    """Last interaction: test target; second-to-last: validation target; the rest: training."""
    train, evaluated, last = _hold_out_last(log, 2, "leave-one-out")
    return Split(train=train, val=_eval_set(log, evaluated, last - 1), test=_eval_set(log, evaluated, last),
                 num_items=log.num_items, num_users=log.num_users, has_labels=log.has_labels)


def leave_last_out(log: InteractionLog) -> Split:
    """The HSTU paper's public protocol: train on all but each user's last interaction, test on
    the last, no validation split. Validation is the test set here, so only the end-of-training
    test figures (`test_last/`) are free of selection on test."""
    train, evaluated, last = _hold_out_last(log, 1, "leave-last-out")
    test = _eval_set(log, evaluated, last)
    return Split(train=train, val=test, test=test, num_items=log.num_items, num_users=log.num_users,
                 has_labels=log.has_labels)


def _first_at_or_after(log: InteractionLog, cutoff: float) -> np.ndarray:
    """Per user, the absolute position of the first interaction at or after cutoff (end if none)."""
    positions = np.empty(log.num_users, dtype=np.int64)
    after = log.timestamps >= cutoff
    # Within a user, timestamps are sorted, so `after` is a suffix of each user's block.
    counts_after = np.add.reduceat(after.astype(np.int64), log.offsets[:-1]) if log.num_interactions else 0
    positions[:] = log.offsets[1:] - counts_after
    return positions


def temporal(log: InteractionLog, val_quantile: float = 0.8, test_quantile: float = 0.9) -> Split:
    """Train on interactions before the val cutoff; validate on each user's first interaction in
    [val cutoff, test cutoff), test on the first one at or after the test cutoff. Cutoffs are
    quantiles of all timestamps."""
    if not 0.0 < val_quantile < test_quantile < 1.0:
        raise GrscaleError(f"temporal split needs 0 < val_quantile < test_quantile < 1, got {val_quantile}, {test_quantile}")
    if np.any(log.lengths() == 0):
        raise GrscaleError(f"{log.name}: a user without interactions cannot be split")
    t_val, t_test = np.quantile(log.timestamps, [val_quantile, test_quantile])
    if t_val == t_test:
        raise GrscaleError(f"{log.name}: timestamps have no spread between the cutoff quantiles")
    starts = log.offsets[:-1]
    val_pos = _first_at_or_after(log, t_val)
    test_pos = _first_at_or_after(log, t_test)
    users = np.arange(log.num_users)
    train_users = users[val_pos > starts]
    train = _gather(log, train_users, starts[train_users], val_pos[train_users])
    in_val = (val_pos < log.offsets[1:]) & (val_pos > starts)
    in_val &= log.timestamps[np.minimum(val_pos, log.num_interactions - 1)] < t_test
    in_test = (test_pos < log.offsets[1:]) & (test_pos > starts)
    if not in_val.any() or not in_test.any():
        raise GrscaleError(f"{log.name}: too few users with history before and interactions after the cutoffs")
    return Split(
        train=train,
        val=_eval_set(log, users[in_val], val_pos[in_val]),
        test=_eval_set(log, users[in_test], test_pos[in_test]),
        num_items=log.num_items,
        num_users=log.num_users,
        has_labels=log.has_labels,
    )


SPLITS = {"leave-one-out": leave_one_out, "temporal": temporal, "leave-last-out": leave_last_out}


def make_split(log: InteractionLog, kind: str = "leave-one-out") -> Split:
    try:
        return SPLITS[kind](log)
    except KeyError:
        raise GrscaleError(f"unknown split {kind!r}; known splits: {', '.join(SPLITS)}") from None
