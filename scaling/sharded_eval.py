"""Evaluation split over a trial's ranks by users: each rank scores a contiguous share of the examples
(against the full catalog, or its sampled candidates) and the per-example results are gathered in
order, so the metrics are those of one process scoring every example (up to the rounding of
differently shaped batches)."""
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
    """The task's metrics over `data`, every rank scoring its share of the users; the same on every rank."""
    if not ranks.parallel:
        return evaluate(model, data, cfg, device)
    share = select_examples(data, ranks.shard(np.arange(data.num_examples)))
    if cfg.task == "retrieval":
        parts = [p for p in ranks.gather(evaluate_retrieval(model, share, cfg, device).per_example()) if p]
        return {name: float(np.concatenate([p[name] for p in parts]).mean()) for name in parts[0]}
    parts = ranks.gather(ranking_logits(model, share, cfg, device))
    return binary_metrics(np.concatenate([logits for logits, _ in parts]),
                          np.concatenate([labels for _, labels in parts]))
