"""A progress bar for one trial: FLOPs spent of the budget, tokens per second, last validation metric."""
from __future__ import annotations

import sys
import time
from typing import Any

from tqdm import tqdm

from scaling.config import TrialConfig


class TrainProgress:
    def __init__(self, cfg: TrialConfig, enabled: bool, initial_flops: float = 0.0) -> None:
        self.bar = None
        if enabled:
            self.bar = tqdm(total=cfg.budget, initial=initial_flops, unit="FLOP", unit_scale=True,
                            desc=f"{cfg.model.preset} {cfg.task}", file=sys.stderr, dynamic_ncols=True,
                            mininterval=0.5)
        self.last_time, self.tokens, self.flops = time.perf_counter(), 0, initial_flops
        self.postfix: dict[str, str] = {}

    def update(self, flops: float, tokens: int, loss: float) -> None:
        if self.bar is None:
            return
        self.tokens += tokens
        now = time.perf_counter()
        if now - self.last_time >= 1.0:
            self.postfix["tok/s"] = f"{self.tokens / (now - self.last_time):,.0f}"
            self.tokens, self.last_time = 0, now
        self.postfix["loss"] = f"{loss:.4f}"
        self.bar.update(min(flops, self.bar.total) - self.bar.n)
        self.bar.set_postfix(self.postfix, refresh=False)

    def validation(self, row: dict[str, Any], metric: str) -> None:
        if self.bar is not None and f"val/{metric}" in row:
            self.postfix[f"val/{metric}"] = f"{row[f'val/{metric}']:.4f}"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
