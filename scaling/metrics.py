"""Evaluation metrics: full-catalog retrieval (HR@K, NDCG@K, MRR, NLL) and ranking (NE, AUC, log loss).

Retrieval ranks the target against the whole catalog. With history exclusion (on by default,
as in the HSTU paper's code) the user's history items are removed from the candidates; the
target itself always stays a candidate, even where the user has seen it before. Ties count
against the target (rank = number of candidates scoring at least as high, other than itself),
so a model that scores everything equally gets no credit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

RETRIEVAL_KS = (1, 10, 50, 200)
NDCG_KS = (10, 50, 200)


def exclude_history(scores: torch.Tensor, history_ids: torch.Tensor, history_offsets: torch.Tensor,
                    targets: torch.Tensor, first_id: int = 0) -> torch.Tensor:
    """Scores with each row's history items set to -inf, except the row's target.

    Column j of `scores` is item first_id + j: a chunk of the catalog (the whole of it by default);
    history items outside the chunk are left to the chunks that hold them."""
    lengths = history_offsets[1:] - history_offsets[:-1]
    rows = torch.repeat_interleave(torch.arange(scores.shape[0], device=scores.device), lengths)
    columns = history_ids - first_id
    keep = (history_ids != targets[rows]) & (columns >= 0) & (columns < scores.shape[1])
    masked = scores.clone()
    masked[rows[keep], columns[keep]] = float("-inf")
    return masked


def in_history(candidates: torch.Tensor, history_ids: torch.Tensor, history_offsets: torch.Tensor) -> torch.Tensor:
    """[B, N] bool: whether each row's candidate item is in that row's history."""
    lengths = history_offsets[1:] - history_offsets[:-1]
    rows = torch.repeat_interleave(torch.arange(candidates.shape[0], device=candidates.device), lengths)
    # (row, item) pairs as one integer key each: membership is then one isin over the batch.
    stride = int(max(int(candidates.max()) if candidates.numel() else 0,
                     int(history_ids.max()) if history_ids.numel() else 0)) + 1
    keys = torch.arange(candidates.shape[0], device=candidates.device)[:, None] * stride + candidates
    return torch.isin(keys, rows * stride + history_ids)


@dataclass
class RetrievalAccumulator:
    """Per-example retrieval metrics over batches: their means, and the values themselves (for standard
    errors and paired comparisons of two models on the same examples)."""

    values: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, scores: torch.Tensor, targets: torch.Tensor) -> None:
        """One batch of [B, C] candidate scores (columns are item ids) and the [B] target ids."""
        scores = scores.float()
        target_scores = scores.gather(1, targets[:, None])
        rank = (scores >= target_scores).sum(dim=1) - 1  # 0 = best
        self.add_ranks(rank, torch.logsumexp(scores, dim=1) - target_scores[:, 0])

    def add_ranks(self, rank: torch.Tensor, nll: torch.Tensor) -> None:
        """One batch of targets' ranks (0 = best; candidates scoring at least as high) and -log softmax."""
        values = {"mrr": 1.0 / (rank + 1).double(), "nll": nll.double()}
        for k in RETRIEVAL_KS:
            values[f"hr@{k}"] = (rank < k).double()
        for k in NDCG_KS:
            values[f"ndcg@{k}"] = torch.where(rank < k, 1.0 / torch.log2(rank.double() + 2.0), 0.0)
        for name, value in values.items():
            self.values.setdefault(name, []).append(value.cpu().numpy())

    def per_example(self) -> dict[str, np.ndarray]:
        """Each metric's value for every example added, in the order added."""
        return {name: np.concatenate(parts) for name, parts in sorted(self.values.items())}

    def result(self) -> dict[str, float]:
        return {name: float(values.mean()) if values.size else 0.0 for name, values in self.per_example().items()}


def standard_error(values: np.ndarray) -> float:
    """Standard error of the mean of independent examples (sample standard deviation / sqrt(n))."""
    if values.size < 2:
        raise ValueError(f"a standard error needs at least 2 examples, got {values.size}")
    return float(values.std(ddof=1) / math.sqrt(values.size))


def binary_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Log loss, normalised entropy (log loss over the entropy of the base rate) and AUC."""
    logits = logits.astype(np.float64)
    labels = labels.astype(np.float64)
    # log(1 + e^-x) for positives and log(1 + e^x) for negatives, computed stably
    logloss = float(np.mean(np.logaddexp(0.0, -logits) * labels + np.logaddexp(0.0, logits) * (1 - labels)))
    p = float(labels.mean()) if labels.size else 0.0
    base = -(p * math.log(p) + (1 - p) * math.log(1 - p)) if 0.0 < p < 1.0 else float("nan")
    return {"logloss": logloss, "ne": logloss / base if base == base else float("nan"), "auc": auc(logits, labels)}


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum statistic, ties given half credit."""
    positives = labels > 0.5
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(scores.size, dtype=np.float64)
    # average ranks over runs of equal scores
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [scores.size]])
    average = (starts + ends + 1) / 2.0  # 1-based average rank of each run
    ranks[order] = np.repeat(average, ends - starts)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
