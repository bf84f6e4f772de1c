"""What HSTU and SASRec share: token inputs, the generative retrieval and ranking heads, eval.

Subclasses supply `encode`, the sequence encoder over jagged token states.
"""
from __future__ import annotations

import math
from abc import abstractmethod

import torch
from torch import nn

from models.base import Recommender, check_task
from models.jagged import (append_targets, keep_last, positions, prediction_offsets, prediction_times,
                           sequence_ids)
from models.losses import (
    LossConfig, binary_loss, item_logits, negative_groups, sample_negatives, sampled_softmax_loss,
)
from scaling.data.batch import EvalBatch, JaggedBatch
from scaling.errors import GrscaleError

NUM_ACTIONS = 3  # "none" (first token), previous label 0, previous label 1


class SequentialRecommender(Recommender):
    """Item + position (+ previous-action) embeddings -> encoder -> per-position predictions.

    retrieval: position t predicts item t+1 by sampled softmax over L2-normalised outputs and
    (tied) item embeddings. ranking: position t sees items <= t and labels < t, and a small MLP
    head predicts the label of item t.
    """

    task_only_modules = {"ranking": ("action_emb", "ranking_head")}

    def __init__(self, *, num_items: int, max_seq_len: int, d_model: int, dropout: float,
                 loss: LossConfig) -> None:
        super().__init__()
        self.num_items, self.max_seq_len, self.loss_config = num_items, max_seq_len, loss
        self.item_emb = nn.Embedding(num_items + 1, d_model, padding_idx=0)
        self.pos_emb = nn.Embedding(max_seq_len, d_model)
        self.action_emb = nn.Embedding(NUM_ACTIONS, d_model)
        self.input_dropout = nn.Dropout(dropout)
        self.ranking_head = nn.Sequential(nn.Linear(d_model, d_model), nn.SiLU(), nn.Linear(d_model, 1))
        # Small item embeddings scaled by sqrt(d) at input, as in the HSTU and SASRec code.
        nn.init.normal_(self.item_emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        bound = math.sqrt(1.0 / d_model)
        nn.init.uniform_(self.pos_emb.weight, -bound, bound)
        nn.init.uniform_(self.action_emb.weight, -bound, bound)
        self.input_scale = math.sqrt(d_model)

    @abstractmethod
    def encode(self, x: torch.Tensor, batch: JaggedBatch, prediction_times: torch.Tensor) -> torch.Tensor:
        """[T, d] token states -> [T, d] causal outputs: token t depends on tokens <= t and on
        prediction_times[t], the time of the interaction it predicts (see `prediction_times`)."""

    def hidden_states(self, batch: JaggedBatch, task: str,
                      target_timestamps: torch.Tensor | None = None) -> torch.Tensor:
        """[T, d] encoder outputs; ranking inputs add the previous interaction's label.
        `target_timestamps` [B]: when each sequence's next (predicted) interaction happens."""
        if batch.max_length() > self.max_seq_len:
            raise GrscaleError(f"a sequence has {batch.max_length()} interactions, more than the "
                               f"model's max_seq_len={self.max_seq_len}; truncate it in the data config")
        pos = positions(batch.offsets, batch.num_tokens)
        x = self.item_emb(batch.item_ids) * self.input_scale + self.pos_emb(pos)
        if task == "ranking":
            previous = batch.labels[(torch.arange(batch.num_tokens, device=pos.device) - 1).clamp(min=0)]
            action = torch.where(pos == 0, 0, previous.long() + 1)
            x = x + self.action_emb(action)
        return self.encode(self.input_dropout(x), batch, prediction_times(batch, task, target_timestamps))

    def training_loss(
        self, batch: JaggedBatch, task: str, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, int]:
        check_task(task)
        hidden = self.hidden_states(batch, task)
        if task == "ranking":
            logits = self.ranking_head(hidden).squeeze(-1)
            return binary_loss(logits, batch.labels), batch.num_tokens
        # Every token that has a successor in its own sequence predicts that successor.
        seq = sequence_ids(batch.offsets, batch.num_tokens)
        source = torch.nonzero(torch.arange(batch.num_tokens, device=seq.device) + 1
                               < batch.offsets[seq + 1]).squeeze(1)
        target_ids = batch.item_ids[source + 1]
        groups = negative_groups(self.loss_config, prediction_offsets(batch.offsets))
        negative_ids = sample_negatives(self.num_items, groups.numel() - 1, self.loss_config.num_negatives,
                                        generator, hidden.device)
        # The catalog is normalised once and its rows gathered: per-prediction negatives gather
        # N*K rows, and normalising them one by one costs several times the gather's backward.
        items = nn.functional.normalize(self.item_emb.weight, dim=-1)
        loss = sampled_softmax_loss(
            nn.functional.normalize(hidden[source], dim=-1),
            items.index_select(0, target_ids),
            items.index_select(0, negative_ids.flatten()).view(*negative_ids.shape, -1),
            groups, target_ids, negative_ids, self.loss_config.temperature)
        return loss, int(source.numel())

    def retrieval_query(self, batch: EvalBatch) -> torch.Tensor:
        history = keep_last(batch.history, self.max_seq_len)
        if bool((history.lengths() == 0).any()):
            raise GrscaleError("retrieval needs at least one history interaction per user")
        hidden = self.hidden_states(history, "retrieval", batch.target_timestamps)
        return hidden[history.offsets[1:] - 1]

    def score_items(self, query: torch.Tensor, item_ids: torch.Tensor) -> torch.Tensor:
        return item_logits(query, self.item_emb(item_ids), item_ids, self.loss_config.temperature)

    def predict_label_logits(self, batch: EvalBatch) -> torch.Tensor:
        # The target becomes one more position; it reads its own item, never its own label.
        history = keep_last(batch.history, self.max_seq_len - 1)
        sequence = append_targets(EvalBatch(history=history, target_item_ids=batch.target_item_ids,
                                            target_timestamps=batch.target_timestamps,
                                            target_labels=batch.target_labels))
        hidden = self.hidden_states(sequence, "ranking")
        return self.ranking_head(hidden[sequence.offsets[1:] - 1]).squeeze(-1)
