"""Evaluate a model on a validation or test set: retrieval over the catalog or engagement ranking.

Full-catalog retrieval scores the catalog in chunks of items and keeps, per example, only a running
count of the items scoring at least as high as the target and a running log-sum-exp: memory is
O(batch x chunk) whatever the catalog size, and the figures are those of scoring it in one piece
(scaling.metrics.RetrievalAccumulator.add). The metrics need only the target's rank, so no top-k
list is kept. The sampled protocol (eval.candidates = N) ranks the target among N negatives per user.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch

from models.base import Recommender
from scaling.config import EvalConfig, TrialConfig
from scaling.data.batch import EvalBatch
from scaling.data.loader import eval_batches
from scaling.data.splits import EvalSet
from scaling.errors import GrscaleError
from scaling.metrics import RetrievalAccumulator, binary_metrics, exclude_history, in_history

SCORE_BLOCK = 1 << 24  # scores held at once while ranking ([batch, chunk]: 64 MiB in float32)

# (rank, -log softmax) of a batch's targets over part of the catalog -> the same over all of it.
Combine = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@contextmanager
def _eval_mode(model: Recommender) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def evaluate(model: Recommender, data: EvalSet, cfg: TrialConfig, device: torch.device) -> dict[str, float]:
    """The task's metrics over `data`, averaged over its examples."""
    if cfg.task == "retrieval":
        return evaluate_retrieval(model, data, cfg, device).result()
    return binary_metrics(*ranking_logits(model, data, cfg, device))


def ranking_logits(model: Recommender, data: EvalSet, cfg: TrialConfig,
                   device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """([N] ranking logits, [N] labels) of every example of `data`, in its order."""
    logits, labels = [], []
    with _eval_mode(model):
        for batch in eval_batches(data, cfg.runtime.eval_batch_size, cfg.data.max_seq_len):
            logits.append(model.predict_label_logits(batch.to(device)).float().cpu().numpy())
            labels.append(batch.target_labels.numpy())
    if not logits:  # a rank's share of a small evaluation set may be empty
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    return np.concatenate(logits), np.concatenate(labels)


def evaluate_retrieval(model: Recommender, data: EvalSet, cfg: TrialConfig, device: torch.device,
                       chunk: int | None = None, items: tuple[int, int] | None = None,
                       combine: Combine | None = None) -> RetrievalAccumulator:
    """Retrieval metrics of every example of `data` under cfg.eval's protocol, kept per example in its
    order. `chunk`: catalog items scored at once (default: SCORE_BLOCK scores per batch). `items`: the
    ids [low, high) of the catalog this process scores (default all of it), and `combine` merges every
    batch's (rank, -log softmax) over the processes that score the rest (scaling.sharded_eval)."""
    accumulator = RetrievalAccumulator()
    if cfg.eval.candidates >= model.catalog_size - 2:
        raise GrscaleError(f"eval.candidates: {cfg.eval.candidates} sampled negatives need a catalog of more "
                           f"than {cfg.eval.candidates + 1} items; this one has {model.catalog_size - 1} "
                           f"(use 0, the full catalog)")
    with _eval_mode(model):
        for batch in eval_batches(data, cfg.runtime.eval_batch_size, cfg.data.max_seq_len):
            batch = batch.to(device)
            query = model.retrieval_query(batch)
            if cfg.eval.candidates:
                rank, nll = rank_sampled(model, query, batch, cfg.eval)
            else:
                block = chunk or min(model.catalog_size, max(1, SCORE_BLOCK // max(batch.batch_size, 1)))
                rank, nll = rank_in_catalog(model, query, batch, cfg.eval.exclude_history, block, items)
                if combine is not None:
                    rank, nll = combine(rank, nll)
            accumulator.add_ranks(rank, nll)
    return accumulator


def rank_in_catalog(model: Recommender, query: torch.Tensor, batch: EvalBatch, exclude: bool,
                    chunk: int, items: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """([B] rank, [B] -log softmax) of each target over the whole catalog, scored `chunk` items at a time;
    over the ids [low, high) alone where `items` is given (the target's own score always counts, so the
    parts of a catalog split by items add up: ranks by sum, -log softmax by log-sum-exp).

    A matmul's rounding depends on its shape, so a target scored apart from the items it is compared
    with could lose a tie by an ulp. Each chunk is therefore scored together with the batch's targets
    (B more columns, padded to one shape for every chunk), and each row compares its chunk's items with
    its target's score from the same product, as the one-piece evaluation does.
    """
    targets, device = batch.target_item_ids, query.device
    low, high = items or (0, model.catalog_size)
    rows = torch.arange(query.shape[0], device=device)
    above = torch.zeros(query.shape[0], dtype=torch.int64, device=device)
    log_total = torch.full((query.shape[0],), float("-inf"), device=device)
    target_scores = torch.zeros(query.shape[0], device=device)  # an empty range: -log softmax -inf, a sum's zero
    for start in range(low, high, chunk):
        ids = torch.arange(start, start + chunk, device=device)
        ids = torch.where(ids < high, ids, 0)  # the last chunk padded with id 0, which scores -inf
        block = model.score_items(query, torch.cat([ids, targets])).float()
        target_scores, block = block[rows, chunk + rows], block[:, :chunk]
        if exclude:
            block = exclude_history(block, batch.history.item_ids, batch.history.offsets, targets, start)
        log_total = torch.logaddexp(log_total, torch.logsumexp(block, dim=1))
        own = targets - start
        inside = (own >= 0) & (own < chunk)
        block[rows[inside], own[inside]] = float("-inf")  # the target does not count against itself
        above += (block >= target_scores[:, None]).sum(dim=1)
    return above, log_total - target_scores


def sampled_candidates(user_ids: np.ndarray, targets: np.ndarray, num_items: int, count: int,
                       seed: int) -> np.ndarray:
    """[B, count] negatives per user, uniform over the catalog's items other than the target (with
    replacement), drawn from a generator seeded by (seed, user): the same whatever the batching."""
    draws = np.stack([np.random.default_rng([seed, int(user)]).integers(1, num_items, size=count)
                      for user in user_ids])
    return draws + (draws >= targets[:, None])  # 1..num_items-1 onto the items but the target


def rank_sampled(model: Recommender, query: torch.Tensor, batch: EvalBatch,
                 cfg: EvalConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """([B] rank, [B] -log softmax) of each target among itself and its sampled negatives; with history
    exclusion, negatives the user has seen are removed (-inf), as over the full catalog."""
    h, targets = batch.history, batch.target_item_ids
    negatives = torch.from_numpy(sampled_candidates(h.user_ids.cpu().numpy(), targets.cpu().numpy(),
                                                    model.catalog_size - 1, cfg.candidates,
                                                    cfg.candidates_seed)).to(query.device)
    # Target and negatives scored in one call, so they are computed alike and ties are exact.
    scores = model.score_items(query, torch.cat([targets[:, None], negatives], dim=1)).float()
    if cfg.exclude_history:
        seen = torch.cat([torch.zeros_like(targets[:, None], dtype=torch.bool),
                          in_history(negatives, h.item_ids, h.offsets)], dim=1)
        scores = scores.masked_fill(seen, float("-inf"))
    target_scores = scores[:, 0]
    rank = (scores[:, 1:] >= target_scores[:, None]).sum(dim=1)
    return rank, torch.logsumexp(scores, dim=1) - target_scores
