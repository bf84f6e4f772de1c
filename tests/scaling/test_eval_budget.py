"""The validation sizing rule (scaling.eval_budget): the values its doc gives, its bounds, its errors,
and a spec's `validation:` block setting each trial's val_users."""
from __future__ import annotations

import pytest

from scaling.errors import GrscaleError
from scaling.eval_budget import TEST_PASSES, ValidationSizing, modelled_eval_share, val_users_for
from sweeps.check import plan_trials, size_cost
from sweeps.spec import spec_from_dict
from tests.sweeps.helpers import tiny_spec

RULE = dict(num_evals=8, user_flops=1e6, test_users=1000, val_users=6000)


def test_the_rule_by_hand():
    # share 25%: validation + test may take 1/3 of training. Budget 1e11 -> 3.33e10 FLOPs of evaluation;
    # test 2 passes x 1000 users x 1e6 = 2e9; validation 8 x n x 1e6 <= 3.13e10 -> n = 3916.
    sizing = ValidationSizing(max_share=0.25, min_users=100)
    assert TEST_PASSES == 2
    assert val_users_for(sizing, budget=1e11, **RULE) == 3916
    share = modelled_eval_share(budget=1e11, num_evals=8, user_flops=1e6, test_users=1000, val_users=3916)
    assert share == pytest.approx(0.25, abs=1e-4)
    # share 50%: evaluation may equal training -> (1e11 - 2e9) / 8e6 = 12250, capped at the 6000 there are.
    assert val_users_for(ValidationSizing(max_share=0.5, min_users=100), budget=1e11, **RULE) == 6000


def test_small_budgets_get_min_users_and_the_share_says_so():
    sizing = ValidationSizing(max_share=0.25, min_users=300)
    # 1e9 FLOPs of training allow 3.3e8 of evaluation: less than the test alone (2e9).
    assert val_users_for(sizing, budget=1e9, **RULE) == 300
    assert modelled_eval_share(budget=1e9, num_evals=8, user_flops=1e6, test_users=1000, val_users=300) > 0.25
    # The count grows with the budget and never passes the validation set.
    counts = [val_users_for(sizing, budget=b, **RULE) for b in (1e9, 1e10, 3e10, 1e11, 1e12)]
    assert counts == sorted(counts) and counts[-1] == 6000 and counts[1] == 300 < counts[2]


@pytest.mark.parametrize("sizing, changes, message", [
    (ValidationSizing(max_share=1.0), {}, "validation.max_share: expected a fraction in (0, 1), got 1.0"),
    (ValidationSizing(max_share=0), {}, "validation.max_share: expected a fraction in (0, 1), got 0"),
    (ValidationSizing(min_users=0), {}, "validation.min_users: expected an integer >= 1, got 0"),
    (ValidationSizing(), {"budget": float("inf")}, "budget must be a positive, finite number, got inf"),
    (ValidationSizing(), {"user_flops": 0.0}, "user_flops must be a positive, finite number, got 0.0"),
    (ValidationSizing(), {"num_evals": 0}, "num_evals must be >= 1, got 0"),
    (ValidationSizing(), {"test_users": -1}, "test_users must be >= 0, got -1"),
])
def test_bad_input_is_named(sizing, changes, message):
    with pytest.raises(GrscaleError) as error:
        val_users_for(sizing, **{"budget": 1e11, **RULE, **changes})
    assert message in str(error.value)


def test_a_spec_sizes_each_trials_validation():
    budgets = [3e7, 1e9]
    spec = spec_from_dict(tiny_spec(budgets=budgets, validation={"max_share": 0.25, "min_users": 5}))
    plans = plan_trials(spec)
    from tests.sweeps.test_spec import _tiny_split

    split = _tiny_split()
    for plan in plans:
        cfg = plan.config
        cost = size_cost(cfg, split)
        assert cfg.data.val_users == val_users_for(
            spec.validation, budget=cfg.budget, num_evals=cfg.eval.num_evals, user_flops=cost.eval_user,
            test_users=split.test.num_examples, val_users=split.val.num_examples)
    small, large = (sorted(p.config.data.val_users for p in plans if p.config.budget == b) for b in budgets)
    assert min(large) > max(small) >= 5


@pytest.mark.parametrize("changes, message", [
    ({"validation": {"max_share": 1.5}}, "spec.validation.max_share: expected a fraction in (0, 1), got 1.5"),
    ({"validation": {"share": 0.2}}, "spec.validation: unknown field 'share'"),
    ({"validation": {}, "trial": {"data": {"val_users": 100}}},
     "spec.trial.data.val_users: spec.validation sizes each trial's validation; set one of the two"),
])
def test_bad_validation_block_is_named(changes, message):
    with pytest.raises(GrscaleError) as error:
        spec_from_dict(tiny_spec(**changes))
    assert message in str(error.value)
