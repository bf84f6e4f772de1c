"""Jagged batches: concatenated values plus offsets, the layout HSTU's kernels consume.

A padded view exists for code that needs dense [B, L] tensors (SDPA baselines, references).
Item ids are 1-based; 0 is the padding id in padded views.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch


@dataclass(frozen=True)
class JaggedBatch:
    """B sequences of interactions, oldest first, concatenated along one axis of T tokens."""

    item_ids: torch.Tensor  # int64 [T]
    timestamps: torch.Tensor  # int64 [T], seconds (synthetic: arbitrary units)
    labels: torch.Tensor  # float32 [T], engagement label of each interaction (0/1)
    offsets: torch.Tensor  # int64 [B+1], offsets[0] == 0, offsets[-1] == T
    user_ids: torch.Tensor  # int64 [B], contiguous 0-based user ids

    @property
    def batch_size(self) -> int:
        return int(self.offsets.numel() - 1)

    @property
    def num_tokens(self) -> int:
        return int(self.item_ids.numel())

    def lengths(self) -> torch.Tensor:
        return self.offsets[1:] - self.offsets[:-1]

    def max_length(self) -> int:
        return int(self.lengths().max().item()) if self.batch_size else 0

    def to(self, device: torch.device | str) -> "JaggedBatch":
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def to_padded(self, max_len: int | None = None) -> "PaddedBatch":
        """Right-padded [B, L] view; L defaults to the longest sequence in the batch."""
        lengths = self.lengths()
        L = self.max_length() if max_len is None else max_len
        B = self.batch_size
        positions = torch.arange(L, device=self.offsets.device)
        mask = positions[None, :] < lengths[:, None]
        index = (self.offsets[:-1, None] + positions[None, :]).clamp(max=max(self.num_tokens - 1, 0))

        def pad(values: torch.Tensor, fill: float | int) -> torch.Tensor:
            if B == 0 or L == 0 or values.numel() == 0:
                return torch.full((B, L), fill, dtype=values.dtype, device=values.device)
            return torch.where(mask, values[index], torch.full_like(values[index], fill))

        return PaddedBatch(
            item_ids=pad(self.item_ids, 0),
            timestamps=pad(self.timestamps, 0),
            labels=pad(self.labels, 0.0),
            mask=mask,
            user_ids=self.user_ids,
        )


@dataclass(frozen=True)
class PaddedBatch:
    """Right-padded view of a JaggedBatch: row b holds sequence b in [:, :length_b]."""

    item_ids: torch.Tensor  # int64 [B, L], 0 where padded
    timestamps: torch.Tensor  # int64 [B, L]
    labels: torch.Tensor  # float32 [B, L]
    mask: torch.Tensor  # bool [B, L], True on real tokens
    user_ids: torch.Tensor  # int64 [B]

    def to_jagged(self) -> JaggedBatch:
        lengths = self.mask.sum(dim=1)
        offsets = torch.zeros(lengths.numel() + 1, dtype=torch.int64, device=lengths.device)
        offsets[1:] = torch.cumsum(lengths, dim=0)
        return JaggedBatch(
            item_ids=self.item_ids[self.mask],
            timestamps=self.timestamps[self.mask],
            labels=self.labels[self.mask],
            offsets=offsets,
            user_ids=self.user_ids,
        )


@dataclass(frozen=True)
class EvalBatch:
    """Next-interaction prediction: each user's history, and the one interaction to predict."""

    history: JaggedBatch
    target_item_ids: torch.Tensor  # int64 [B]
    target_timestamps: torch.Tensor  # int64 [B]
    target_labels: torch.Tensor  # float32 [B]

    @property
    def batch_size(self) -> int:
        return self.history.batch_size

    def to(self, device: torch.device | str) -> "EvalBatch":
        return EvalBatch(
            history=self.history.to(device),
            target_item_ids=self.target_item_ids.to(device),
            target_timestamps=self.target_timestamps.to(device),
            target_labels=self.target_labels.to(device),
        )
