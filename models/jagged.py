"""Index helpers over jagged token layouts (values [T, ...] delimited by offsets [B+1]).

Model code stays jagged; these build the few views it needs: per-token sequence ids and
positions, a padded view for dense kernels, and eval batches with the target appended.
"""
from __future__ import annotations

import torch

from scaling.data.batch import EvalBatch, JaggedBatch


def sequence_ids(offsets: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """[T] index of the sequence each token belongs to."""
    lengths = offsets[1:] - offsets[:-1]
    seqs = torch.arange(lengths.numel(), device=offsets.device)
    return torch.repeat_interleave(seqs, lengths, output_size=num_tokens)


def prediction_offsets(offsets: torch.Tensor) -> torch.Tensor:
    """[B+1] offsets of the next-item predictions: a sequence of L items makes L-1 of them."""
    counts = (offsets[1:] - offsets[:-1] - 1).clamp(min=0)
    out = torch.zeros_like(offsets)
    out[1:] = torch.cumsum(counts, dim=0)
    return out


def positions(offsets: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """[T] position of each token inside its own sequence (0 = oldest)."""
    tokens = torch.arange(num_tokens, device=offsets.device)
    return tokens - offsets[sequence_ids(offsets, num_tokens)]


def padded_index(offsets: torch.Tensor, num_tokens: int, max_len: int) -> torch.Tensor:
    """[T] flat index b * max_len + position of each token in a [B, max_len] layout."""
    return sequence_ids(offsets, num_tokens) * max_len + positions(offsets, num_tokens)


def jagged_to_padded(values: torch.Tensor, offsets: torch.Tensor, max_len: int) -> torch.Tensor:
    """[T, *F] -> [B, max_len, *F], zeros where padded."""
    batch = offsets.numel() - 1
    flat = values.new_zeros((batch * max_len, *values.shape[1:]))
    flat = flat.index_copy(0, padded_index(offsets, values.shape[0], max_len), values)
    return flat.view(batch, max_len, *values.shape[1:])


def padded_to_jagged(padded: torch.Tensor, offsets: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """[B, L, *F] -> [T, *F], dropping padding."""
    flat = padded.reshape(-1, *padded.shape[2:])
    return flat[padded_index(offsets, num_tokens, padded.shape[1])]


def prediction_times(batch: JaggedBatch, task: str, target_timestamps: torch.Tensor | None) -> torch.Tensor:
    """[T] the time of the interaction each token predicts. Retrieval: the next one in its sequence,
    and for a sequence's last token `target_timestamps[b]` where given (eval), else its own time (in
    training the last token predicts nothing). Ranking: its own (token t predicts its own label)."""
    if task == "ranking":
        return batch.timestamps
    times = torch.cat([batch.timestamps[1:], batch.timestamps[-1:]])  # the next token's time
    last = batch.offsets[1:] - 1
    nonempty = last >= batch.offsets[:-1]
    last = last[nonempty]
    times[last] = batch.timestamps[last] if target_timestamps is None else target_timestamps.to(times)[nonempty]
    return times


def keep_last(batch: JaggedBatch, max_len: int) -> JaggedBatch:
    """Keep each sequence's most recent `max_len` interactions (eval histories can be longer)."""
    lengths = batch.lengths()
    kept = lengths.clamp(max=max_len)
    if bool((kept == lengths).all()):
        return batch
    pos = positions(batch.offsets, batch.num_tokens)
    seq = sequence_ids(batch.offsets, batch.num_tokens)
    mask = pos >= (lengths - kept)[seq]
    offsets = torch.zeros_like(batch.offsets)
    offsets[1:] = torch.cumsum(kept, dim=0)
    return JaggedBatch(item_ids=batch.item_ids[mask], timestamps=batch.timestamps[mask],
                       labels=batch.labels[mask], offsets=offsets, user_ids=batch.user_ids)


def append_targets(batch: EvalBatch) -> JaggedBatch:
    """The history with each user's target interaction appended as one more token."""
    history = batch.history
    lengths = history.lengths()
    offsets = history.offsets + torch.arange(history.offsets.numel(), device=lengths.device)
    total = history.num_tokens + batch.batch_size
    is_target = torch.zeros(total, dtype=torch.bool, device=lengths.device)
    is_target[offsets[1:] - 1] = True

    def merge(old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        out = old.new_empty(total)
        out[~is_target] = old
        out[is_target] = new.to(old.dtype)
        return out

    return JaggedBatch(
        item_ids=merge(history.item_ids, batch.target_item_ids),
        timestamps=merge(history.timestamps, batch.target_timestamps),
        labels=merge(history.labels, batch.target_labels),
        offsets=offsets,
        user_ids=history.user_ids,
    )
