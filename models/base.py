"""The interface every model family implements for the trainer, and parameter counting."""
from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn

from scaling.data.batch import EvalBatch, JaggedBatch
from scaling.errors import GrscaleError

TASKS = ("retrieval", "ranking")


def check_task(task: str) -> None:
    if task not in TASKS:
        raise GrscaleError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")


class Recommender(nn.Module, metaclass=ABCMeta):
    """A model the trainer can fit and evaluate on either task.

    `task_only_modules` names the top-level submodules that only one task uses, so that
    parameter and FLOP counts for a task leave out the other task's head.
    """

    task_only_modules: ClassVar[dict[str, tuple[str, ...]]] = {}
    config: Any  # the family's config dataclass (with to_dict()); FLOP counts read it

    @abstractmethod
    def training_loss(
        self, batch: JaggedBatch, task: str, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, int]:
        """(mean loss, number of predictions it averages over) for one training batch."""

    @abstractmethod
    def retrieval_query(self, batch: EvalBatch) -> torch.Tensor:
        """[B, d] each user's representation, which `score_items` scores against items."""

    @abstractmethod
    def score_items(self, query: torch.Tensor, item_ids: torch.Tensor) -> torch.Tensor:
        """[B, C] retrieval logits of the items `item_ids`: [C] shared by every query (a chunk of the
        catalog: evaluation over millions of items scores it piece by piece) or [B, C] per query
        (sampled candidates). Padding, id 0, scores -inf."""

    @property
    def catalog_size(self) -> int:
        """Rows of the item table: num_items + 1 (row 0 is padding)."""
        return int(self.item_emb.num_embeddings)

    def score_catalog(self, batch: EvalBatch) -> torch.Tensor:
        """[B, num_items + 1] retrieval scores for every catalog item; column 0 (padding) is -inf.
        Scores are logits: a softmax over a row is the model's full-catalog distribution."""
        query = self.retrieval_query(batch)
        return self.score_items(query, torch.arange(self.catalog_size, device=query.device))

    @abstractmethod
    def predict_label_logits(self, batch: EvalBatch) -> torch.Tensor:
        """[B] ranking logits of each user's target interaction."""

    def resolved_kernel(self, device: torch.device | str) -> str:
        """The attention implementation this model runs on `device`, for run configs and tags."""
        return "none"


def param_counts(model: Recommender, task: str | None = None) -> tuple[int, int]:
    """(embedding, non-embedding) parameter counts.

    Embedding = weights of nn.Embedding / nn.EmbeddingBag modules (item, user, position, action
    and side-feature tables): they are read by lookup and cost no FLOPs. Everything else
    (projections, MLPs, norms, biases, the relative-attention bias tables) is non-embedding.
    With a task, submodules only the other task uses are left out.
    """
    skipped: set[str] = set()
    if task is not None:
        check_task(task)
        for other, names in model.task_only_modules.items():
            if other != task:
                skipped.update(names)
    embedding = nonembedding = 0
    for name, module in model.named_modules():
        if name.split(".")[0] in skipped:
            continue
        count = sum(p.numel() for p in module.parameters(recurse=False))
        if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
            embedding += count
        else:
            nonembedding += count
    return embedding, nonembedding
