"""Whether a trial spent the FLOPs it was planned to: one rule for the W&B run summary (written by
the trial) and the report's table. A leaf module (no numpy, no pandas): the trial's W&B logging
imports it. The functions take floats or pandas Series alike."""
from __future__ import annotations

from typing import TypeVar

BUDGET_TOLERANCE = 0.01  # a trial whose achieved FLOPs are off its budget by more than this missed it

Number = TypeVar("Number")


def flops_ratio(achieved: Number, planned: Number) -> Number:
    """Achieved over planned training FLOPs (a trial stops within one step past its budget)."""
    return achieved / planned


def missed_budget(ratio: Number) -> Number:
    """True where the achieved FLOPs are off the plan by more than BUDGET_TOLERANCE, either way."""
    return abs(ratio - 1.0) > BUDGET_TOLERANCE
