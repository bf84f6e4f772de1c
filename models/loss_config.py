"""The training loss's settings: plain data with no torch import, so trial configs can hold them."""
from __future__ import annotations

from dataclasses import asdict, dataclass

NEGATIVES_PER = ("sequence", "prediction")


@dataclass(frozen=True, kw_only=True)
class LossConfig:
    """Sampled softmax for retrieval: logits are cosine / temperature."""

    num_negatives: int = 128
    temperature: float = 0.05
    # "sequence": a sequence's predictions share its K negatives (one batched matmul);
    # "prediction": every prediction draws its own K, as the HSTU paper's code does.
    negatives_per: str = "sequence"

    def __post_init__(self) -> None:
        if self.negatives_per not in NEGATIVES_PER:
            raise ValueError(f"negatives_per must be one of {', '.join(NEGATIVES_PER)}; got {self.negatives_per!r}")
        if self.num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1, got {self.num_negatives}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")

    def to_dict(self) -> dict:
        return asdict(self)
