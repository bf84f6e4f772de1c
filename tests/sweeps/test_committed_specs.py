"""Every spec shipped in sweeps/specs/ loads, validates and expands; its budgets buy a step of
every size where the dataset is on this machine."""
from pathlib import Path

import pytest

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
        runs = [p.config for p in plans if p.config.family == family]
        budgets = sorted({c.budget for c in runs})
        assert len({c.size for c in runs}) >= 4
        assert max(budgets) / min(budgets) >= 100
        for budget in budgets[:2]:
            assert len({c.seed for c in runs if c.budget == budget}) == 2
