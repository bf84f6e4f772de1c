"""torch.compile of a trial's training step, as a runtime option (runtime.compile).

Compiled once per trial with dynamic shapes (jagged batches change length every step). Measured on the
2-core CPU (benchmarks/compile_step.md) it does not pay for a typical trial there, so it is off by
default; it never changes what a trial computes beyond float rounding, so it is not part of its identity.
"""
from __future__ import annotations

from typing import Callable

import torch

from models.base import Recommender


def training_step(model: Recommender, compile_step: bool) -> Callable:
    """`model.training_loss`, compiled where asked."""
    if not compile_step:
        return model.training_loss
    return torch.compile(model.training_loss, dynamic=True)
