"""Learning-rate schedules as functions of the fraction of the FLOPs budget spent."""
from __future__ import annotations

import math

import numpy as np

from scaling.config import OptimConfig


def lr_at(fraction: float, optim: OptimConfig) -> float:
    """The learning rate once `fraction` (0..1) of the budget is spent."""
    f = min(max(fraction, 0.0), 1.0)
    if optim.warmup_fraction > 0 and f < optim.warmup_fraction:
        return optim.lr * (f / optim.warmup_fraction)
    if optim.schedule == "constant":
        return optim.lr
    if optim.schedule == "wsd":
        decay_start = 1.0 - optim.decay_fraction
        if f <= decay_start:
            return optim.lr
        return optim.lr * max(0.0, (1.0 - f) / max(optim.decay_fraction, 1e-12))
    progress = (f - optim.warmup_fraction) / max(1.0 - optim.warmup_fraction, 1e-12)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return optim.lr * (optim.min_lr_ratio + (1.0 - optim.min_lr_ratio) * cosine)


def eval_fractions(num_evals: int, first_fraction: float) -> list[float]:
    """`num_evals` log-spaced fractions of the budget, from first_fraction to 1 inclusive."""
    if num_evals == 1:
        return [1.0]
    return [float(x) for x in np.geomspace(first_fraction, 1.0, num_evals)]
