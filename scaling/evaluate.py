"""Evaluate a model on a validation or test set: full-catalog retrieval or engagement ranking."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from models.base import Recommender
from scaling.config import TrialConfig
from scaling.data.loader import eval_batches
from scaling.data.splits import EvalSet
from scaling.metrics import RetrievalAccumulator, binary_metrics, exclude_history


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
    logits, labels = [], []
    with _eval_mode(model):
        for batch in eval_batches(data, cfg.runtime.eval_batch_size, cfg.data.max_seq_len):
            logits.append(model.predict_label_logits(batch.to(device)).float().cpu().numpy())
            labels.append(batch.target_labels.numpy())
    return binary_metrics(np.concatenate(logits), np.concatenate(labels))


def evaluate_retrieval(model: Recommender, data: EvalSet, cfg: TrialConfig,
                       device: torch.device) -> RetrievalAccumulator:
    """Full-catalog retrieval metrics of every example of `data`, kept per example in its order."""
    accumulator = RetrievalAccumulator()
    with _eval_mode(model):
        for batch in eval_batches(data, cfg.runtime.eval_batch_size, cfg.data.max_seq_len):
            batch = batch.to(device)
            scores = model.score_catalog(batch)
            if cfg.eval.exclude_history:
                h = batch.history
                scores = exclude_history(scores, h.item_ids, h.offsets, batch.target_item_ids)
            accumulator.add(scores, batch.target_item_ids)
    return accumulator
