"""The preprocessed interaction log: contiguous ids, one time-ordered sequence per user."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from scaling.data.parsers import RawLog
from scaling.errors import GrscaleError


@dataclass(frozen=True)
class DataSource:
    """The file a log was read from, recorded with every result computed from it.

    modified: True where the file differs from the dataset's official one and the user allowed it,
    False where it is the official file (sha256 verified), None where no official digest is known.
    """

    path: str  # absolute
    sha256: str
    modified: bool | None


@dataclass(frozen=True)
class InteractionLog:
    """Users' sequences concatenated: user u owns [offsets[u], offsets[u+1]) of every array.

    Item ids are 1..num_items (0 is padding); user ids are 0..num_users-1. Within a user,
    interactions are in time order, ties kept in file order.
    """

    name: str
    item_ids: np.ndarray  # int64 [N]
    timestamps: np.ndarray  # int64 [N]
    ratings: np.ndarray  # float32 [N], NaN where the source has none
    labels: np.ndarray  # float32 [N], engagement label (e.g. rating >= 4)
    offsets: np.ndarray  # int64 [num_users + 1]
    has_labels: bool  # False where the source carries no engagement signal (e.g. Beauty)
    source: DataSource | None = None  # None for generated data; not part of the cached arrays

    @property
    def num_users(self) -> int:
        return int(self.offsets.size - 1)

    @property
    def num_items(self) -> int:
        return int(self.item_ids.max()) if self.item_ids.size else 0

    @property
    def num_interactions(self) -> int:
        return int(self.item_ids.size)

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "item_ids": self.item_ids,
            "timestamps": self.timestamps,
            "ratings": self.ratings,
            "labels": self.labels,
            "offsets": self.offsets,
            "has_labels": np.asarray(self.has_labels),
        }

    @classmethod
    def from_arrays(cls, name: str, arrays: dict[str, np.ndarray]) -> "InteractionLog":
        return cls(
            name=name,
            item_ids=arrays["item_ids"],
            timestamps=arrays["timestamps"],
            ratings=arrays["ratings"],
            labels=arrays["labels"],
            offsets=arrays["offsets"],
            has_labels=bool(arrays["has_labels"][()]),
        )


TIES = ("file", "shuffle")


def shuffle_ties(log: InteractionLog, seed: int = 0) -> InteractionLog:
    """The log with each user's equal-timestamp interactions in a seeded random order, not file order.

    ML-1M has ties in over half its timestamps, and its file order within a tie predicts the next
    item far better than chance (an HSTU trained on file order scores test NDCG@10 .191 in file
    order, .146 with the ties shuffled: benchmarks/reproduce_ml1m.md). The HSTU paper's
    preprocessing sorts the whole file by timestamp with pandas' default, unstable quicksort, which
    scrambles ties: "shuffle" mimics it with an order that, unlike quicksort's, is the same on every
    machine.
    """
    user = np.repeat(np.arange(log.num_users), log.lengths())
    order = np.lexsort((np.random.default_rng(seed).random(user.size), log.timestamps, user))
    return replace(log, item_ids=log.item_ids[order], timestamps=log.timestamps[order],
                   ratings=log.ratings[order], labels=log.labels[order])


def k_core_mask(user_codes: np.ndarray, item_codes: np.ndarray, k: int) -> np.ndarray:
    """Rows kept when users and items with fewer than k interactions are dropped, repeatedly, until
    none remain. Codes are dense non-negative integers."""
    keep = np.ones(user_codes.size, dtype=bool)
    while True:
        user_counts = np.bincount(user_codes[keep], minlength=int(user_codes.max()) + 1)
        item_counts = np.bincount(item_codes[keep], minlength=int(item_codes.max()) + 1)
        drop = keep & ((user_counts[user_codes] < k) | (item_counts[item_codes] < k))
        if not drop.any():
            return keep
        keep &= ~drop


def k_core_filter(raw: RawLog, k: int) -> RawLog:
    """Drop users and items with fewer than k interactions, repeatedly, until none remain."""
    keep = k_core_mask(np.unique(raw.users, return_inverse=True)[1], np.unique(raw.items, return_inverse=True)[1], k)
    return RawLog(raw.users[keep], raw.items[keep], raw.timestamps[keep], raw.ratings[keep])


def build_log(name: str, raw: RawLog, positive_rating: float | None, min_interactions: int = 0) -> InteractionLog:
    """Contiguous ids and a stable sort by (user, timestamp) that keeps file order for ties."""
    if min_interactions > 1:
        raw = k_core_filter(raw, min_interactions)
    if raw.users.size == 0:
        raise GrscaleError(f"{name}: no interactions left after preprocessing")
    user_codes = np.unique(raw.users, return_inverse=True)[1].astype(np.int64)
    item_codes = np.unique(raw.items, return_inverse=True)[1].astype(np.int64) + 1
    order = np.lexsort((raw.timestamps, user_codes))  # lexsort is stable: ties keep file order
    counts = np.bincount(user_codes, minlength=int(user_codes.max()) + 1)
    offsets = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    ratings = raw.ratings[order].astype(np.float32)
    if positive_rating is None:
        labels = np.ones_like(ratings)
    else:
        labels = (ratings >= positive_rating).astype(np.float32)
    return InteractionLog(
        name=name,
        item_ids=item_codes[order],
        timestamps=raw.timestamps[order].astype(np.int64),
        ratings=ratings,
        labels=labels,
        offsets=offsets,
        has_labels=positive_rating is not None,
    )
