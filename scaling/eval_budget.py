"""Validation sized to its trial: how many users a trial validates on so that evaluation stays within
a share of its wall time (a sweep spec's `validation: {max_share, min_users}`).

The rule, computable before the trial runs, in modelled FLOPs (time = FLOPs at the training rate):
    train  = the trial's budget (useful training FLOPs)
    user   = EVAL_COST * scaling.flops.evaluation_flops(one user: its history's forward, the catalog scored)
    test   = TEST_PASSES * test_users * user
    val    = num_evals * val_users * user
and val_users is the largest number with val + test <= max_share * (train + val + test), i.e.
    val_users = floor((max_share / (1 - max_share) * train - test) / (num_evals * user)),
clipped to [min_users, every validation user]. Where the test alone passes the share (the smallest
trials: test stays on every user), validation gets min_users and the trial's evaluation share exceeds
max_share; its rows record val_users and eval_s, so the share is measured, not assumed.

EVAL_COST: seconds per modelled eval FLOP over seconds per useful training FLOP, measured 0.2-1.05
over HSTU, SASRec and DLRM at sizes xs-l on this 2-core CPU (benchmarks/eval_cost.md); 1 keeps the
bound for every family (it over-counts DLRM's evaluation, which is cheap). TEST_PASSES: a trial tests
its last model and, when validation picked an earlier point, that one too (scaling.train); counting
both keeps the bound when the best point is not the last.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from scaling.errors import GrscaleError

EVAL_COST = 1.0
TEST_PASSES = 2


@dataclass(frozen=True, kw_only=True)
class ValidationSizing:
    """A spec's `validation:` block: size each trial's validation sample by the rule above."""

    max_share: float = 0.25  # of a trial's wall time, for validation and test together
    min_users: int = 500  # never fewer validation users (a noisier selection costs more than time)

    def validate(self, where: str) -> None:
        if not 0 < self.max_share < 1:
            raise GrscaleError(f"{where}.max_share: expected a fraction in (0, 1), got {self.max_share!r}")
        if self.min_users < 1:
            raise GrscaleError(f"{where}.min_users: expected an integer >= 1, got {self.min_users!r}")


def val_users_for(sizing: ValidationSizing, *, budget: float, num_evals: int, user_flops: float,
                  test_users: int, val_users: int) -> int:
    """The rule of the module doc: validation users for a trial of `budget` training FLOPs whose
    evaluation costs `user_flops` (modelled) per user, with `num_evals` validation points, `test_users`
    test users and `val_users` validation users to sample from."""
    sizing.validate("validation")
    for name, value in (("budget", budget), ("user_flops", user_flops)):
        if not (value > 0 and math.isfinite(value)):
            raise GrscaleError(f"validation sizing: {name} must be a positive, finite number, got {value!r}")
    for name, value in (("num_evals", num_evals), ("val_users", val_users)):
        if value < 1:
            raise GrscaleError(f"validation sizing: {name} must be >= 1, got {value!r}")
    if test_users < 0:
        raise GrscaleError(f"validation sizing: test_users must be >= 0, got {test_users!r}")
    user = EVAL_COST * user_flops
    allowed = sizing.max_share / (1 - sizing.max_share) * budget - TEST_PASSES * test_users * user
    fitting = math.floor(max(allowed, 0.0) / (num_evals * user))
    return min(val_users, max(sizing.min_users, fitting))


def modelled_eval_share(*, budget: float, num_evals: int, user_flops: float, test_users: int,
                        val_users: int) -> float:
    """The share of a trial's modelled time that its evaluation takes (the rule's own estimate)."""
    evaluation = EVAL_COST * user_flops * (num_evals * val_users + TEST_PASSES * test_users)
    return evaluation / (budget + evaluation)
