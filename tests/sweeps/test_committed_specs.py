"""Every spec shipped in sweeps/specs/ loads, validates and expands; its budgets buy a step of
every size where the dataset is on this machine."""
import re
from pathlib import Path

import pytest
import yaml

from scaling.errors import GrscaleError
from sweeps.check import plan_trials
from sweeps.grid import budget_values, expand
from sweeps.spec import load_spec

SPECS = sorted((Path(__file__).resolve().parents[2] / "sweeps" / "specs").glob("*.yaml"))
REAL_DATA = Path(__import__("os").environ.get("GRSCALE_DATA_DIR", "/nonexistent"))


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_committed_spec_is_valid(path):
    spec = load_spec(path)
    plans = expand(spec)
    assert plans and len({p.trial_id for p in plans}) == len(plans)
    if spec.dataset != "synthetic" and not (REAL_DATA / spec.dataset).is_dir():
        pytest.skip(f"{spec.dataset} is not in {REAL_DATA}")
    try:
        plan_trials(spec)
    except GrscaleError as error:
        pytest.fail(str(error))


def _numbers_read_as_strings(raw, keys=()):
    """Where YAML reads a number as a string (`1e-3`: PyYAML wants a dot in a float), with the string."""
    if isinstance(raw, dict):
        for key, value in raw.items():
            yield from _numbers_read_as_strings(value, (*keys, key))
    elif isinstance(raw, list):
        for index, value in enumerate(raw):
            yield from _numbers_read_as_strings(value, (*keys, index))
    elif isinstance(raw, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", raw):
        yield keys, raw


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_numbers_yaml_reads_as_strings_load_as_the_numbers_they_spell(path):
    found = list(_numbers_read_as_strings(yaml.safe_load(path.read_text())))
    if path.stem == "synthetic-small":  # the README's example writes them so, as users do
        assert {".".join(map(str, keys)) for keys, _ in found} >= {
            "budgets.min", "budgets.max", "extra_seeds.below", "lr_grid.hstu.xs.0", "trial.optim.lr"}
    loaded = load_spec(path).to_dict()
    for keys, text in found:
        value = loaded
        for key in keys:
            value = value[key]
        assert isinstance(value, float) and value == float(text), keys


def test_demo_spec_meets_the_demo_brief():
    spec = load_spec(next(p for p in SPECS if p.stem == "demo"))
    budgets = budget_values(spec)
    assert set(spec.families) == {"hstu", "dlrm"} and all(len(s) >= 3 for s in spec.families.values())
    assert len(budgets) >= 4 and max(budgets) / min(budgets) >= 10**1.5 - 1e-9


@pytest.mark.parametrize("name", ["ml1m-retrieval", "ml1m-ranking", "ml1m-retrieval-cpu", "ml1m-ranking-cpu"])
def test_study_specs_meet_the_study_brief(name):
    """Per family: at least 4 sizes, budgets over two decades, 2 seeds at the two smallest budgets
    (of the trials that run, where a band needs the data to say which)."""
    spec = load_spec(next(p for p in SPECS if p.stem == name))
    expected = {"hstu", "sasrec", "dlrm"} if spec.task == "retrieval" else {"hstu", "dlrm"}
    assert set(spec.families) == expected and spec.dataset == "ml-1m"
    if spec.band is None:
        plans = expand(spec)
    elif (REAL_DATA / spec.dataset).is_dir():
        plans = plan_trials(spec)
    else:
        pytest.skip(f"{spec.dataset} is not in {REAL_DATA}: the band needs it")
    for family in spec.families:
        runs = [p.config for p in plans if p.config.model.family == family]
        budgets = sorted({c.budget for c in runs})
        assert len({c.model.size for c in runs}) >= 4
        assert max(budgets) / min(budgets) >= 100
        for budget in budgets[:2]:
            assert len({c.seed for c in runs if c.budget == budget}) == 2


def _at_tiny_scale(spec):
    """The spec as shipped (its trial block, overrides, variants, lr grid), on tiny synthetic data, one
    budget, the smallest size of each family and one seed: what a newcomer's first run exercises."""
    import dataclasses

    from scaling.data.synthetic import SyntheticConfig

    return dataclasses.replace(
        spec, dataset="synthetic", synthetic=SyntheticConfig(num_users=60, num_items=40, mean_seq_len=8, seed=1),
        families={family: sizes[:1] for family, sizes in spec.families.items()},
        lr_grid={f: {s: lrs for s, lrs in by_size.items() if s in spec.families[f][:1]}
                 for f, by_size in spec.lr_grid.items()},
        budgets=[1e9], seeds=[0], extra_seeds=None, band=None)


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_committed_spec_trains_at_tiny_scale(path, tmp_path):
    from scaling.train import train_to_budget

    spec = _at_tiny_scale(load_spec(path))
    plans = plan_trials(spec)
    assert {p.config.model.family for p in plans} == set(spec.families)
    for plan in plans:
        result = train_to_budget(plan.config, tmp_path / plan.trial_id)
        assert result.status == "done", result.error
        final = result.final
        assert final["flops"] >= plan.config.budget and final["peak_lr"] == plan.config.optim.lr
