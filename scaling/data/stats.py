"""Summary statistics of a dataset, as `grscale data stats` prints them."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from scaling.data.log import DataSource, InteractionLog

QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)

VERDICTS = {  # DataSource.modified -> what it means for the numbers
    False: "the official file",
    True: "MODIFIED: not the official file",
    None: "unverified: no official digest of this file is known",
}


@dataclass(frozen=True)
class DatasetStats:
    name: str
    users: int
    items: int
    interactions: int
    length_quantiles: dict[float, float]
    first_timestamp: int
    last_timestamp: int
    positive_rate: float | None
    source: DataSource | None = None  # None: generated data

    def format(self, timestamps_are_positions: bool = False) -> str:
        q = "  ".join(f"p{int(k * 100)}={v:g}" for k, v in self.length_quantiles.items())
        if timestamps_are_positions:
            span = "no timestamps (order only)"
        else:
            first, last = (datetime.fromtimestamp(t, timezone.utc).date() for t in (self.first_timestamp, self.last_timestamp))
            span = f"{first} .. {last} ({(self.last_timestamp - self.first_timestamp) / 86400:,.1f} days)"
        lines = [
            f"dataset       {self.name}",
            f"users         {self.users:,}",
            f"items         {self.items:,}",
            f"interactions  {self.interactions:,}",
            f"density       {self.interactions / max(self.users * self.items, 1):.4%}",
            f"seq length    mean={self.interactions / max(self.users, 1):.1f}  {q}",
            f"time span     {span}",
        ]
        if self.positive_rate is not None:
            lines.append(f"positives     {self.positive_rate:.1%} of interactions")
        if self.source is not None:
            lines.append(f"file          {self.source.path}")
            lines.append(f"sha256        {self.source.sha256} ({VERDICTS[self.source.modified]})")
        return "\n".join(lines)


def dataset_stats(log: InteractionLog) -> DatasetStats:
    lengths = log.lengths()
    return DatasetStats(
        name=log.name,
        users=log.num_users,
        items=int(np.unique(log.item_ids).size),
        interactions=log.num_interactions,
        length_quantiles={q: float(np.quantile(lengths, q)) for q in QUANTILES},
        first_timestamp=int(log.timestamps.min()),
        last_timestamp=int(log.timestamps.max()),
        positive_rate=float(log.labels.mean()) if log.has_labels else None,
        source=log.source,
    )
