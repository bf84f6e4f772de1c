"""Evaluation split over a trial's ranks and gathered, so the metrics are those of one process
scoring every example (up to the rounding of differently shaped batches).

By users: each rank scores a contiguous share of the examples (against the full catalog, or its
sampled candidates), and the per-example results are gathered in order. By items, where the
catalog has more items than the evaluation has examples (a large catalog, few users): every rank
scores every example against its contiguous share of the catalog's ids, and each batch's parts are
added up: a target's rank is the sum of the items above it in every share, its -log softmax the
log-sum-exp of the shares' (each share's softmax denominator over its own items)."""
from __future__ import annotations

import numpy as np
import torch

from models.base import Recommender
from scaling.config import TrialConfig
from scaling.data.splits import EvalSet, select_examples
from scaling.distributed import Ranks
from scaling.evaluate import evaluate, evaluate_retrieval, ranking_logits
from scaling.metrics import binary_metrics


def evaluate_on_ranks(model: Recommender, data: EvalSet, cfg: TrialConfig, device: torch.device,
                      ranks: Ranks) -> dict[str, float]:
    """The task's metrics over `data`, every rank scoring its share; the same on every rank."""
    if not ranks.parallel:
        return evaluate(model, data, cfg, device)
    if cfg.task == "retrieval" and not cfg.eval.candidates and model.catalog_size > data.num_examples:
        low, high = item_share(model.catalog_size, ranks)

        def combine(rank: torch.Tensor, nll: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            parts = ranks.gather((rank.cpu().numpy(), nll.cpu().numpy()))
            return merge_item_shares(parts)

        return evaluate_retrieval(model, data, cfg, device, items=(low, high), combine=combine).result()
    share = select_examples(data, ranks.shard(np.arange(data.num_examples)))
    if cfg.task == "retrieval":
        parts = [p for p in ranks.gather(evaluate_retrieval(model, share, cfg, device).per_example()) if p]
        return {name: float(np.concatenate([p[name] for p in parts]).mean()) for name in parts[0]}
    parts = ranks.gather(ranking_logits(model, share, cfg, device))
    return binary_metrics(np.concatenate([logits for logits, _ in parts]),
                          np.concatenate([labels for _, labels in parts]))


def item_share(catalog_size: int, ranks: Ranks) -> tuple[int, int]:
    """This rank's contiguous ids [low, high) of the catalog (id 0, the padding item, included)."""
    ids = ranks.shard(np.arange(catalog_size))
    return (int(ids[0]), int(ids[-1]) + 1) if ids.size else (0, 0)


def merge_item_shares(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per target, the (rank, -log softmax) over the whole catalog from those over each share of it."""
    ranks = np.sum([rank for rank, _ in parts], axis=0)
    nll = np.logaddexp.reduce(np.stack([nll for _, nll in parts]), axis=0)
    return torch.from_numpy(ranks), torch.from_numpy(nll)
