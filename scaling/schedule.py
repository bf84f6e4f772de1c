"""Learning-rate schedules over the FLOPs budget: a linear warmup, then cosine, constant or
warmup-stable-decay (WSD: constant, then a cooldown over the budget's last `decay_fraction`, linear
or 1-sqrt, which Hagele et al. 2024 find matches cosine).

The warmup is a fraction of the budget, or a number of steps or FLOPs independent of the budget
(what a WSD trunk shared by several budgets needs: its warmup cannot depend on where it stops).
"""
from __future__ import annotations

import math

import numpy as np

from scaling.config import OptimConfig


def lr_at(fraction: float, optim: OptimConfig, step: int = 0, flops: float = 0.0) -> float:
    """The learning rate once `fraction` (0..1) of the budget is spent, after `step` steps and
    `flops` training FLOPs (what warmup_steps and warmup_flops count)."""
    f = min(max(fraction, 0.0), 1.0)
    if optim.warmup_fraction > 0 and f < optim.warmup_fraction:
        return optim.lr * (f / optim.warmup_fraction)
    ramp = 1.0
    if optim.warmup_steps > 0:
        ramp = min(1.0, step / optim.warmup_steps)
    elif optim.warmup_flops > 0:
        ramp = min(1.0, flops / optim.warmup_flops)
    return ramp * _after_warmup(f, optim)


def _after_warmup(f: float, optim: OptimConfig) -> float:
    if optim.schedule == "constant":
        return optim.lr
    if optim.schedule == "wsd":
        decay_start = 1.0 - optim.decay_fraction
        if f <= decay_start:
            return optim.lr
        remaining = max(0.0, (1.0 - f) / max(optim.decay_fraction, 1e-12))  # of the cooldown: exactly 0 at the end
        return optim.lr * (1.0 - math.sqrt(1.0 - remaining) if optim.decay_shape == "1-sqrt" else remaining)
    progress = (f - optim.warmup_fraction) / max(1.0 - optim.warmup_fraction, 1e-12)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return optim.lr * (optim.min_lr_ratio + (1.0 - optim.min_lr_ratio) * cosine)


def eval_fractions(num_evals: int, first_fraction: float) -> list[float]:
    """`num_evals` log-spaced fractions of the budget, from first_fraction to 1 inclusive."""
    if num_evals == 1:
        return [1.0]
    return [float(x) for x in np.geomspace(first_fraction, 1.0, num_evals)]
