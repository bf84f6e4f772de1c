"""DLRM (Naumov et al., 2019) in plain PyTorch: the impression-level baseline.

One example per (history prefix, target): every position t >= 1 of a training sequence is an
example whose history is the items before t. Sparse features: user, target item, mean-pooled
last `history_window` history items, hour-of-day and day-of-week of the target's timestamp.
Dense features: log history length and log recency (time since the last interaction).
ranking: bottom MLP, pairwise dot interaction (or DCNv2 cross layers), top MLP -> logit.
retrieval: a two-tower variant (user tower over the same features minus the target item,
item tower over the item embedding), L2-normalised, trained with the shared sampled softmax.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from models.base import Recommender, check_task
from models.jagged import positions, prediction_offsets, sequence_ids
from models.losses import (
    LossConfig, binary_loss, item_logits, negative_groups, sample_negatives, sampled_softmax_loss,
)
from scaling.data.batch import EvalBatch, JaggedBatch

NUM_DENSE = 2  # log history length, log recency
NUM_VECTORS = 6  # bottom-MLP output + user, target item, history, hour, day embeddings
SECONDS_PER_HOUR, SECONDS_PER_DAY = 3600, 86400


@dataclass(frozen=True, kw_only=True)
class DLRMConfig:
    num_items: int  # catalog size; ids 1..num_items, 0 is padding
    num_users: int
    emb_dim: int = 64
    history_window: int = 20  # recent items mean-pooled into the history feature
    bottom_mlp: tuple[int, ...] = (64,)  # hidden widths; a last layer maps to emb_dim
    top_mlp: tuple[int, ...] = (256, 128)  # hidden widths; a last layer maps to the logit
    num_cross_layers: int = 0  # > 0: DCNv2 cross layers replace the dot interaction
    tower_mlp: tuple[int, ...] = (256,)  # retrieval towers' hidden widths; output emb_dim
    loss: LossConfig = field(default_factory=LossConfig)

    def to_dict(self) -> dict:
        return {"family": "dlrm", **asdict(self)}

    @property
    def top_input_dim(self) -> int:
        if self.num_cross_layers:
            return NUM_VECTORS * self.emb_dim
        return self.emb_dim + NUM_VECTORS * (NUM_VECTORS - 1) // 2


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, final_relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    if final_relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class Examples:
    """Per-example feature inputs: N (history, target-context) pairs."""

    user_ids: torch.Tensor  # [N]
    history_items: torch.Tensor  # [sum of bag sizes], item ids of the pooled window
    history_bags: torch.Tensor  # [N] start offset of each example's bag in history_items
    dense: torch.Tensor  # [N, NUM_DENSE]
    hour: torch.Tensor  # [N]
    day: torch.Tensor  # [N]


def make_examples(batch: JaggedBatch, history_end: torch.Tensor, history_len: torch.Tensor,
                  user_ids: torch.Tensor, target_ts: torch.Tensor, window: int) -> Examples:
    """Features of examples whose history is tokens [history_end - history_len, history_end)."""
    bag_len = history_len.clamp(max=window)
    bag_start = torch.zeros_like(bag_len)
    bag_start[1:] = torch.cumsum(bag_len, dim=0)[:-1]
    bag_offsets = torch.cat([bag_start, bag_start[-1:] + bag_len[-1:]])
    total = int(bag_len.sum())
    owner = sequence_ids(bag_offsets, total)
    token = history_end[owner] - bag_len[owner] + positions(bag_offsets, total)
    last_ts = batch.timestamps[(history_end - 1).clamp(min=0)]
    recency = torch.where(history_len > 0, target_ts - last_ts, 0).clamp(min=0)
    dense = torch.stack([torch.log1p(history_len.float()), torch.log1p(recency.float())], dim=1)
    return Examples(user_ids=user_ids, history_items=batch.item_ids[token], history_bags=bag_start,
                    dense=dense, hour=(target_ts // SECONDS_PER_HOUR) % 24,
                    day=(target_ts // SECONDS_PER_DAY) % 7)


class DLRM(Recommender):
    task_only_modules = {"ranking": ("cross_layers", "top_mlp"), "retrieval": ("user_tower", "item_tower")}

    def __init__(self, config: DLRMConfig) -> None:
        super().__init__()
        self.config = config
        d = config.emb_dim
        self.user_emb = nn.Embedding(config.num_users, d)
        self.item_emb = nn.Embedding(config.num_items + 1, d, padding_idx=0)
        self.history_emb = nn.EmbeddingBag(config.num_items + 1, d, mode="mean", padding_idx=0)
        self.hour_emb = nn.Embedding(24, d)
        self.day_emb = nn.Embedding(7, d)
        for table in (self.user_emb, self.item_emb, self.history_emb, self.hour_emb, self.day_emb):
            nn.init.normal_(table.weight, std=d ** -0.5)  # unit-norm vectors: O(1) dot products
        self.bottom_mlp = mlp(NUM_DENSE, config.bottom_mlp, d, final_relu=True)
        flat = NUM_VECTORS * d
        self.cross_layers = nn.ModuleList(nn.Linear(flat, flat) for _ in range(config.num_cross_layers))
        self.top_mlp = mlp(config.top_input_dim, config.top_mlp, 1, final_relu=False)
        self.user_tower = mlp((NUM_VECTORS - 1) * d, config.tower_mlp, d, final_relu=False)
        self.item_tower = mlp(d, config.tower_mlp, d, final_relu=False)
        pairs = torch.triu_indices(NUM_VECTORS, NUM_VECTORS, offset=1)
        self.register_buffer("pairs", pairs[0] * NUM_VECTORS + pairs[1], persistent=False)

    def context_vectors(self, ex: Examples) -> list[torch.Tensor]:
        """Bottom-MLP output and the user, history, hour and day embeddings, each [N, d]."""
        history = self.history_emb(ex.history_items, ex.history_bags)
        return [self.bottom_mlp(ex.dense), self.user_emb(ex.user_ids), history,
                self.hour_emb(ex.hour), self.day_emb(ex.day)]

    def rank(self, ex: Examples, target_ids: torch.Tensor) -> torch.Tensor:
        """[N] logits."""
        bottom, *embs = self.context_vectors(ex)
        vectors = torch.stack([bottom, self.item_emb(target_ids), *embs], dim=1)  # [N, 6, d]
        if self.cross_layers:
            x0 = x = vectors.flatten(1)
            for layer in self.cross_layers:  # DCNv2: x_{l+1} = x0 * (W x_l + b) + x_l
                x = x0 * layer(x) + x
            top_input = x
        else:
            dots = torch.bmm(vectors, vectors.transpose(1, 2)).flatten(1)[:, self.pairs]
            top_input = torch.cat([bottom, dots], dim=1)
        return self.top_mlp(top_input).squeeze(-1)

    def user_vectors(self, ex: Examples) -> torch.Tensor:
        return F.normalize(self.user_tower(torch.cat(self.context_vectors(ex), dim=1)), dim=-1)

    def item_vectors(self, item_ids: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.item_tower(self.item_emb(item_ids)), dim=-1)

    def training_loss(
        self, batch: JaggedBatch, task: str, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, int]:
        check_task(task)
        pos = positions(batch.offsets, batch.num_tokens)
        target = torch.nonzero(pos >= 1).squeeze(1)
        users = batch.user_ids[sequence_ids(batch.offsets, batch.num_tokens)[target]]
        ex = make_examples(batch, target, pos[target], users, batch.timestamps[target],
                           self.config.history_window)
        target_ids = batch.item_ids[target]
        if task == "ranking":
            return binary_loss(self.rank(ex, target_ids), batch.labels[target]), int(target.numel())
        groups = negative_groups(self.config.loss, prediction_offsets(batch.offsets))
        negative_ids = sample_negatives(self.config.num_items, groups.numel() - 1, self.config.loss.num_negatives,
                                        generator, target_ids.device)
        loss = sampled_softmax_loss(self.user_vectors(ex), self.item_vectors(target_ids),
                                    self.item_vectors(negative_ids), groups,
                                    target_ids, negative_ids, self.config.loss.temperature)
        return loss, int(target.numel())

    def eval_examples(self, batch: EvalBatch) -> Examples:
        history = batch.history
        return make_examples(history, history.offsets[1:], history.lengths(), history.user_ids,
                             batch.target_timestamps, self.config.history_window)

    def retrieval_query(self, batch: EvalBatch) -> torch.Tensor:
        return self.user_vectors(self.eval_examples(batch))

    def score_items(self, query: torch.Tensor, item_ids: torch.Tensor) -> torch.Tensor:
        return item_logits(query, self.item_tower(self.item_emb(item_ids)), item_ids, self.config.loss.temperature)

    def predict_label_logits(self, batch: EvalBatch) -> torch.Tensor:
        return self.rank(self.eval_examples(batch), batch.target_item_ids)
