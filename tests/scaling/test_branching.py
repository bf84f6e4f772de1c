"""A WSD trunk and the cooldowns branched from it (scaling/train.py, branch section of the config)."""
import pytest

from scaling import schema
from scaling.errors import GrscaleError
from scaling.reporting import read_rows
from scaling.train import train_to_budget
from tests.scaling.test_train import tiny

BUDGETS = (1e8, 2e8)
WARMUP = {"warmup_fraction": 0.0, "warmup_steps": 3}
COOLDOWN = {"schedule": "wsd", "decay_fraction": 0.2, "decay_shape": "1-sqrt", **WARMUP}


def trunk(**optim):
    starts = [0.8 * b for b in BUDGETS]
    return tiny(budget=starts[-1], optim={"schedule": "constant", **WARMUP, **optim},
                branch={"role": "trunk", "snapshots": starts})


def branch(budget, trunk_id="trunk", **optim):
    return tiny(budget=budget, optim={**COOLDOWN, **optim},
                branch={"role": "branch", "trunk": trunk_id, "start": 0.8 * budget})


class StopAtStep:
    """`should_stop` that asks the trial to stop once, after `n` steps: a kill it checkpoints for."""

    def __init__(self, n: int) -> None:
        self.n, self.asked = n, 0

    def __call__(self):
        self.asked += 1
        return "a test's stop" if self.asked == self.n else None


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    """A trunk, a branch of each budget beside it, and the independent WSD trial of the smaller budget."""
    root = tmp_path_factory.mktemp("branched")
    assert train_to_budget(trunk(), root / "trunk").status == "done"
    branches = {b: train_to_budget(branch(b), root / f"branch-{b:g}") for b in BUDGETS}
    independent = train_to_budget(tiny(budget=BUDGETS[0], optim=COOLDOWN), root / "independent")
    return root, branches, independent


def test_a_branch_computes_what_an_independent_wsd_trial_of_its_budget_computes(grown):
    _, branches, independent = grown
    mine, theirs = branches[BUDGETS[0]].final, independent.final
    assert mine["status"] == "done" and mine["step"] == theirs["step"] and mine["flops"] == theirs["flops"]
    for metric in ("nll", "ndcg@10", "hr@10"):
        assert mine[f"test_last/{metric}"] == pytest.approx(theirs[f"test_last/{metric}"], rel=1e-5)
    assert mine["lr"] == pytest.approx(theirs["lr"]) and mine["lr"] < 0.2 * 1e-3  # cooled down from 1e-3


def test_a_branch_begins_with_its_trunks_rows_and_names_its_lineage(grown):
    root, branches, _ = grown
    trunk_rows = read_rows(root / "trunk" / schema.METRICS_FILE)
    assert trunk_rows[-1]["eval_kind"] == "final" and "test/nll" not in trunk_rows[-1]  # a trunk is not tested
    assert {r["branch_role"] for r in trunk_rows} == {"trunk"} and {r["schedule"] for r in trunk_rows} == {"constant"}
    for budget, result in branches.items():
        rows, start = result.rows, 0.8 * budget
        inherited = [r for r in trunk_rows if r["flops"] < start]
        assert [r["flops"] for r in rows[:len(inherited)]] == [r["flops"] for r in inherited]
        assert [r["val/nll"] for r in rows[:len(inherited)]] == [r["val/nll"] for r in inherited]
        assert all(r["budget"] == budget and r["schedule"] == "wsd" and r["branch_role"] == "branch"
                   and r["trunk"] == "trunk" for r in rows)
        own = rows[len(inherited):]
        assert own and all(r["flops"] > start for r in own) and own[-1]["flops"] >= budget
        # It took over the trunk's FLOPs at the first step past its branch point.
        taken = rows[-1]["branch_flops"]
        assert start <= taken < start + rows[-1]["flops"] / rows[-1]["step"]
    assert (root / "trunk" / schema.snapshot_name(0.8 * BUDGETS[0])).exists()


def test_an_interrupted_trunk_and_branch_resume_to_the_uninterrupted_ends(grown, tmp_path):
    root, branches, _ = grown
    stopped = train_to_budget(trunk(), tmp_path / "trunk", should_stop=StopAtStep(5))
    assert stopped.status == schema.INTERRUPTED
    assert train_to_budget(trunk(), tmp_path / "trunk", resume=True).status == "done"
    budget = BUDGETS[1]
    cut = train_to_budget(branch(budget), tmp_path / "branch", should_stop=StopAtStep(3))
    assert cut.status == schema.INTERRUPTED
    resumed = train_to_budget(branch(budget), tmp_path / "branch", resume=True)
    again, before = resumed.final, branches[budget].final
    assert again["step"] == before["step"]
    assert again["test_last/nll"] == pytest.approx(before["test_last/nll"], rel=1e-5)
    assert [r["flops"] for r in resumed.rows] == [r["flops"] for r in branches[budget].rows]


def test_a_branch_without_its_snapshot_or_from_another_trunk_is_refused_in_one_line(grown, tmp_path):
    root, _, _ = grown
    with pytest.raises(GrscaleError, match=r"the trunk nowhere has no snapshot at 8e\+07 FLOPs"):
        train_to_budget(branch(1e8, trunk_id="nowhere"), root / "orphan")
    with pytest.raises(GrscaleError, match=r"snapshot of a different trunk \(optim.lr 0.001 -> 0.003\)"):
        train_to_budget(branch(1e8, lr=3e-3), root / "other-lr")


@pytest.mark.parametrize("sections, message", [
    ({"optim": {"schedule": "cosine", **WARMUP}, "branch": {"role": "trunk", "snapshots": [1e8]}},
     "a trunk trains at constant rate"),
    ({"optim": {"schedule": "constant"}, "branch": {"role": "trunk", "snapshots": [1e8]}},
     "warms up by steps or FLOPs"),
    ({"optim": {"schedule": "constant", **WARMUP}, "branch": {"role": "trunk", "snapshots": [5e7, 9e7]}},
     "ending at the budget"),
    ({"optim": COOLDOWN, "branch": {"role": "branch", "trunk": "t", "start": 2e8}}, "between 0 and the budget"),
    ({"optim": COOLDOWN, "branch": {"role": "sapling"}}, "unknown value 'sapling'"),
])
def test_a_malformed_lineage_is_one_line_naming_its_field(sections, message):
    with pytest.raises(GrscaleError, match=message):
        tiny(budget=1e8, **sections)
