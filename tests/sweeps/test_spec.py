"""Spec validation (one message naming the field) and grid expansion: ids, counts, seeds, lrs, budgets."""
from __future__ import annotations

import pytest

from scaling.errors import GrscaleError
from sweeps.check import plan_trials, size_cost
from scaling.schema import short_number
from sweeps.grid import budget_values, expand, trial_id
from sweeps.spec import load_spec, spec_from_dict
from tests.sweeps.helpers import REPO, tiny_spec


def expanded(**changes):
    return plan_trials(spec_from_dict(tiny_spec(**changes)))


@pytest.mark.parametrize("changes, message", [
    ({"colour": "red"}, "spec: unknown field 'colour'"),
    ({"families": {"hstu": ["xs", "xxl"]}}, "spec.families.hstu: unknown size 'xxl'; known: xxs, xs, s, m"),
    ({"families": {"gpt": ["xs"]}}, "spec.families: unknown family 'gpt'; known: hstu, sasrec, dlrm"),
    ({"families": {"hstu": []}}, "spec.families.hstu: no sizes, so the grid has zero trials"),
    ({"families": {}}, "spec.families: no families, so the grid has zero trials"),
    ({"budgets": []}, "spec.budgets: expected a non-empty list of FLOPs (an empty one gives zero trials)"),
    ({"seeds": []}, "spec.seeds: expected a non-empty list of integer seeds (an empty one gives zero trials)"),
    ({"budgets": ["lots"]}, "spec.budgets[0]: expected a number, got 'lots'"),
    ({"budgets": {"min": 1e9, "max": 1e8}}, "spec.budgets: max 1e+08 is below min 1e+09"),
    ({"budgets": {"min": 1e8, "max": 1e9, "step": 2}}, "spec.budgets: unknown field 'step'"),
    ({"budgets": 1e9}, "spec.budgets: expected a list or a mapping, got 1000000000.0"),
    ({"seeds": [0, 1.5]}, "spec.seeds[1]: expected an integer, got 1.5"),
    ({"families": {"hstu": "xs"}}, "spec.families.hstu: expected a list, got 'xs'"),
    ({"budgets": [1e5, 1e8]}, "spec.budgets: 1e5 FLOPs is smaller than one training step of hstu-xs on synthetic"),
    ({"band": {"min_steps": 0}}, "spec.band.min_steps: expected an integer >= 1, got 0"),
    ({"band": {"max_epochs": "many"}}, "spec.band.max_epochs: expected a number, got 'many'"),
    ({"band": {"min_steps": 1000}}, "spec.band: no budget of hstu-xs lies inside the band, from "),
    ({"budgets": [1e8, 1.0001e8]}, "give the same trial id: dlrm-xs-C1e8-seed0, hstu-xs-C1e8-seed0"),
    ({"task": "ranking-ish"}, "spec.task: unknown task 'ranking-ish'"),
    ({"dataset": "ml-2m"}, "spec.dataset: unknown dataset 'ml-2m'"),
    ({"trial": {"optim": {"batch_sise": 32}}}, "spec.trial.optim: unknown field 'batch_sise'"),
    ({"trial": {"batch_size": 32}}, "spec.trial.batch_size: this field moved to optim.batch_size"),
    ({"trial": {"optim": {"lr": "1e-x"}}}, "spec.trial.optim.lr: expected a number, got '1e-x'"),
    ({"trial": {"data": {"max_seq_len": "50"}}}, "spec.trial.data.max_seq_len: expected an integer, got '50'"),
    ({"trial": {"seed": 3}}, "spec.trial.seed: set by the spec's own key seeds, not under trial:"),
    ({"trial": {"model": {"size": "s"}}}, "spec.trial.model.size: set by the spec's own key families"),
    ({"trial": {"optim": {"schedule": "linear"}}}, "spec.trial.optim.schedule: unknown value 'linear'"),
    ({"variants": {"dlrm": ["paper"]}}, "spec.variants.dlrm: variant 'paper' is not defined for dlrm"),
    ({"variants": {"hstu": ["paper", "paper"]}}, "spec.variants.hstu: expected a non-empty list of distinct"),
    ({"select_on": "train"}, "spec.select_on: expected one of validation, test, got 'train'"),
    ({"lr_grid": {"sasrec": {"xs": [1e-3]}}}, "spec.lr_grid: family 'sasrec' is not in spec.families"),
    ({"lr_grid": {"hstu": {"s": [1e-3]}}}, "spec.lr_grid.hstu: size 's' is not in spec.families.hstu"),
    ({"lr_grid": {"hstu": {"xs": [-1e-3]}}}, "spec.lr_grid.hstu.xs: expected a positive number, got -0.001"),
    ({"model_overrides": {"sasrec": {"ffn_mult": 2}}}, "spec.model_overrides: family 'sasrec' is not in spec.families"),
    ({"model_overrides": {"hstu": {"query_tme": "target"}}}, "spec.model_overrides.hstu: bad override for hstu-xs"),
    ({"model_overrides": {"hstu": {"query_time": "next"}}}, "spec.model_overrides.hstu: unknown query_time 'next'"),
    ({"model_overrides": {"dlrm": ["x"]}}, "spec.model_overrides.dlrm: expected a mapping, got ['x']"),
    ({"extra_seeds": {"seeds": [1]}}, "spec.extra_seeds: missing below"),
    ({"resources": {"cpus": 0}}, "spec.resources: expected a positive number of CPUs per worker, got 0"),
    ({"resources": {"gpu": 1}}, "spec.resources: unknown field 'gpu'; known: cpus, gpus, workers, cpus_per_worker, "
                                "gpus_per_worker"),
    ({"resources": {"workers": 0}}, "spec.resources.workers: expected an integer >= 1, got 0"),
    ({"resources": {"workers": 2, "cpus": 2}}, "spec.resources.cpus: with workers: 2, give cpus_per_worker (cpus "
                                                "is a one-worker trial's)"),
    ({"resources": {"cpus": 1, "cpus_per_worker": 1}}, "spec.resources: give cpus or cpus_per_worker, not both"),
    ({"resources": {"workers": 2, "gpus_per_worker": 0.5}}, "spec.resources.gpus_per_worker: data-parallel workers "
                                                             "need whole GPUs each (NCCL runs one rank per GPU), got 0.5"),
    ({"resources": {"workers": 2, "cpus_per_worker": -1}}, "spec.resources: expected a positive number of CPUs per "
                                                            "worker, got -1"),
    ({"resources": {"workers": "two"}}, "spec.resources.workers: expected an integer, got 'two'"),
    ({"trial": {"runtime": {"precision": "bf16"}}}, "spec.trial.runtime.precision: bf16 autocast runs on CUDA only"),
    ({"trial": {"runtime": {"workers": 2}}}, "spec.trial.runtime.workers: set by the spec's own key resources.workers"),
    ({"max_concurrent_trials": 0}, "spec.max_concurrent_trials: expected an integer >= 1, got 0"),
    ({"name": "a/b"}, "spec.name: expected a folder name"),
    ({"synthetic": {"num_users": 0}}, "spec.synthetic: synthetic data needs num_users >= 1"),
    ({"schedule": {"kind": "wsd-branched"}}, "spec.schedule: a branched sweep warms up by steps or FLOPs"),
    ({"schedule": {"kind": "cosine-branched"}}, "spec.schedule.kind: unknown kind 'cosine-branched'; known: wsd-"),
    ({"schedule": {"cooldown": 1.0}}, "spec.schedule.cooldown: expected the fraction of each budget spent cooling"),
    ({"schedule": {"shape": "cosine"}}, "spec.schedule.shape: unknown shape 'cosine'; known: linear, 1-sqrt"),
    ({"schedule": {}, "trial": {"optim": {"schedule": "wsd", "warmup_fraction": 0, "warmup_steps": 3}}},
     "spec.trial.optim.schedule: set by spec.schedule in a branched sweep, not under trial:"),
])
def test_bad_spec_fails_with_one_message_naming_the_field(changes, message):
    with pytest.raises(GrscaleError) as error:
        expanded(**changes)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_required_key_is_named():
    spec = tiny_spec()
    del spec["budgets"]
    with pytest.raises(GrscaleError, match="spec: missing budgets"):
        spec_from_dict(spec)


def test_trial_ids_are_deterministic_from_coordinates():
    assert trial_id("hstu", "s", 3e13, 0) == "hstu-s-C3e13-seed0"
    assert trial_id("dlrm", "m", 3.16e8, 2, lr=3e-3) == "dlrm-m-C3.16e8-seed2-lr3e-3"
    assert trial_id("hstu", "s", 1e9, 1, "paper", 1e-3) == "hstu-s-C1e9-seed1-paper-lr1e-3"
    assert [short_number(v) for v in (1e8, 1.5e8, 1e-3, 123456)] == ["1e8", "1.5e8", "1e-3", "1.23e5"]


def test_grid_counts_seed_rule_and_lr_grid():
    plans = expanded(budgets=[1e8, 2e8, 4e8], seeds=[0], extra_seeds={"seeds": [1, 2], "below": 2e8},
                     lr_grid={"hstu": {"xs": [1e-3, 3e-3]}})
    ids = [p.trial_id for p in plans]
    # hstu: (3 seeds at 1e8 + 1 + 1) x 2 lrs = 10; dlrm: 3 + 1 + 1 = 5
    assert len(ids) == len(set(ids)) == 15
    assert "hstu-xs-C1e8-seed2-lr3e-3" in ids and "hstu-xs-C2e8-seed1-lr1e-3" not in ids
    assert "dlrm-xs-C1e8-seed1" in ids and "dlrm-xs-C4e8-seed0" in ids
    by_id = {p.trial_id: p for p in plans}
    cfg = by_id["hstu-xs-C1e8-seed2-lr3e-3"].config
    assert (cfg.model.family, cfg.model.size, cfg.budget, cfg.seed, cfg.optim.lr) == ("hstu", "xs", 1e8, 2, 3e-3)
    assert cfg.optim.batch_size == 32 and cfg.data.synthetic.num_users == 120 and cfg.runtime.progress is False
    assert by_id["dlrm-xs-C1e8-seed0"].config.optim.lr == 1e-3
    # the swept rate is the trial's setting, a coordinate of its rows
    assert cfg.setting["peak_lr"] == 3e-3 and by_id["hstu-xs-C1e8-seed2-lr1e-3"].config.setting["peak_lr"] == 1e-3


def test_variants_are_swept_per_family_and_named_in_the_trial_ids():
    plans = expanded(variants={"hstu": ["default", "paper"]})
    by_id = {p.trial_id: p.config for p in plans}
    assert {i for i in by_id if i.startswith("hstu")} == {
        "hstu-xs-C1e8-seed0", "hstu-xs-C1e8-seed0-paper", "hstu-xs-C2e8-seed0", "hstu-xs-C2e8-seed0-paper"}
    assert by_id["hstu-xs-C1e8-seed0-paper"].model.variant == "paper"
    assert by_id["hstu-xs-C1e8-seed0-paper"].setting["variant"] == "paper"
    assert {c.model.variant for i, c in by_id.items() if i.startswith("dlrm")} == {"default"}


def test_yaml_numbers_without_a_dot_are_numbers_everywhere(tmp_path):
    """PyYAML reads 1e-3 as a string; every number field of a spec and its trial block takes it as the number."""
    path = tmp_path / "spec.yaml"
    path.write_text("name: t\nfamilies: {hstu: [xs]}\nbudgets: [1e8]\nlr_grid: {hstu: {xs: [1e-3, 3e-3]}}\n"
                    "extra_seeds: {seeds: [1], below: 2e8}\n"
                    "trial: {optim: {lr: 1e-3, warmup_fraction: 5e-2}, model: {dropout: 1e-1}}\n")
    configs = [p.config for p in expand(load_spec(path))]
    assert {c.optim.lr for c in configs} == {1e-3, 3e-3} and {c.seed for c in configs} == {0, 1}
    assert all(c.optim.warmup_fraction == 0.05 and c.model.dropout == 0.1 for c in configs)


def test_model_overrides_reach_their_family_only():
    plans = expanded(model_overrides={"hstu": {"query_time": "target", "qk_scale": 1.0},
                                      "dlrm": {"num_cross_layers": 2}})
    by_family = {p.config.model.family: p.config.model.overrides for p in plans}
    assert by_family == {"hstu": {"query_time": "target", "qk_scale": 1.0}, "dlrm": {"num_cross_layers": 2}}
    # A spec without them leaves the trial's own (here none) in place.
    assert {p.config.model.overrides.get("query_time") for p in expanded()} == {None}


def test_log_range_budgets_are_rounded_to_their_ids():
    spec = spec_from_dict(tiny_spec(budgets={"min": "1e8", "max": "1e9", "per_decade": 4}))
    values = budget_values(spec)
    assert values == [1e8, 1.78e8, 3.16e8, 5.62e8, 1e9]
    assert {p.trial_id for p in expand(spec) if p.config.model.family == "dlrm"} == {
        f"dlrm-xs-C{short_number(v)}-seed0" for v in values}


def test_example_spec_is_valid():
    spec = load_spec(REPO / "sweeps/specs/synthetic-small.yaml")
    plans = plan_trials(spec)
    assert len(plans) == len({p.trial_id for p in plans}) > 4
    # Its 1e10, 2e10, 1e-3 are strings to PyYAML: each arrives as the number it says.
    assert budget_values(spec) == [1e10, 2.15e10, 4.64e10, 1e11]
    assert {p.config.seed for p in plans if p.config.budget < 2e10} == {0, 1}
    assert {p.config.seed for p in plans if p.config.budget > 2e10} == {0}
    assert {p.config.optim.lr for p in plans if p.config.model.preset == "hstu-xs"} == {1e-3, 3e-3}
    assert {p.config.optim.lr for p in plans if p.config.model.preset != "hstu-xs"} == {1e-3}


def test_band_keeps_the_cells_between_min_steps_and_max_epochs():
    budgets = [1e7, 3e7, 1e8, 3e8, 1e9, 3e9]
    spec = spec_from_dict(tiny_spec(budgets=budgets, band={"min_steps": 2, "max_epochs": 10}))
    grid = expand(spec)
    kept = {p.trial_id for p in plan_trials(spec)}
    expected = set()
    for family in ("hstu", "dlrm"):
        cost = size_cost(next(p.config for p in grid if p.config.model.family == family), _tiny_split())
        inside = [b for b in budgets if 2 * cost.step <= b <= 10 * cost.epoch]
        assert 0 < len(inside) < len(budgets)  # the band cuts this grid
        expected |= {trial_id(family, "xs", b, 0) for b in inside}
    assert kept == expected
    # without a band the same grid is refused: its smallest budget is below one step
    with pytest.raises(GrscaleError, match="smaller than one training step"):
        plan_trials(spec_from_dict(tiny_spec(budgets=budgets)))


def _tiny_split():
    from scaling.data.splits import make_split
    from scaling.data.synthetic import SyntheticConfig, generate_synthetic

    return make_split(generate_synthetic(SyntheticConfig(**tiny_spec()["synthetic"])), "leave-one-out")
