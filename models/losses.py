"""Training losses shared by the model families, and their configuration."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from models.jagged import jagged_to_padded, padded_to_jagged, sequence_ids
from models.loss_config import NEGATIVES_PER, LossConfig  # noqa: F401 - re-exported beside the losses


def negative_groups(loss: LossConfig, row_offsets: torch.Tensor) -> torch.Tensor:
    """Offsets of the rows that share one draw of K negatives: sequences, or single rows."""
    if loss.negatives_per == "sequence":
        return row_offsets
    return torch.arange(int(row_offsets[-1]) + 1, device=row_offsets.device)


def sample_negatives(
    num_items: int, num_groups: int, num_negatives: int, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """[G, K] item ids drawn uniformly from the catalog 1..num_items, K for each of G groups.

    A group is a sequence (LossConfig.negatives_per="sequence", the default) or one prediction.
    Per sequence is one batched matmul instead of an [N, K, d] gather (1.6-1.9x faster per step
    on the CPU), but its neighbouring predictions share negatives and it learns slower per FLOP:
    SASRec on ML-1M reached NDCG@10 .138 vs .153 per prediction after 37 epochs
    (benchmarks/reproduce_ml1m.md). One set for the whole batch (K in all) is slower still.
    """
    sample_device = generator.device if generator is not None else device
    ids = torch.randint(1, num_items + 1, (num_groups, num_negatives), generator=generator, device=sample_device)
    return ids.to(device)


def sampled_softmax_loss(
    query: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    row_offsets: torch.Tensor,
    positive_ids: torch.Tensor,
    negative_ids: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """Mean cross entropy of each row's positive among itself plus its group's K negatives.

    query, positives: [N, d]; negatives: [G, K, d] with ids [G, K]; rows
    row_offsets[g]:row_offsets[g+1] belong to group g. All vectors L2-normalised. A negative that
    equals a row's positive is masked out: it would otherwise push the positive away from itself.
    """
    if query.shape[0] == 0:
        return query.sum() * 0.0
    num_rows = query.shape[0]
    # Batched [1, d] x [d, 1] products: a matmul, so FLOP counters see it like the negatives.
    pos_logits = torch.matmul(query.unsqueeze(1), positives.unsqueeze(2)).reshape(-1, 1)
    max_rows = int((row_offsets[1:] - row_offsets[:-1]).max())
    padded = jagged_to_padded(query, row_offsets, max_rows)  # [G, R, d]
    neg_logits = padded_to_jagged(torch.bmm(padded, negatives.transpose(1, 2)), row_offsets, num_rows)
    groups = sequence_ids(row_offsets, num_rows)
    neg_logits = neg_logits.masked_fill(positive_ids[:, None] == negative_ids[groups], float("-inf"))
    logits = torch.cat([pos_logits, neg_logits], dim=1) / temperature
    target = torch.zeros(num_rows, dtype=torch.long, device=query.device)
    return F.cross_entropy(logits, target)


def item_logits(query: torch.Tensor, items: torch.Tensor, item_ids: torch.Tensor, temperature: float) -> torch.Tensor:
    """[B, C] cosine / temperature of each query [B, d] against item vectors shared by all queries
    ([C, d]) or per query ([B, C, d]), whose ids are `item_ids` ([C] or [B, C]); padding (id 0) is -inf."""
    query, items = F.normalize(query, dim=-1), F.normalize(items, dim=-1)
    scores = query @ items.T if items.dim() == 2 else torch.bmm(items, query[:, :, None]).squeeze(2)
    return (scores / temperature).masked_fill(item_ids == 0, float("-inf"))


def catalog_logits(query: torch.Tensor, items: torch.Tensor, temperature: float) -> torch.Tensor:
    """[B, num_items + 1] logits against every row of the item table; padding column is -inf."""
    return item_logits(query, items, torch.arange(items.shape[0], device=items.device), temperature)


def binary_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean BCE with logits; 0 (still attached to the graph) on an empty batch."""
    if logits.numel() == 0:
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
