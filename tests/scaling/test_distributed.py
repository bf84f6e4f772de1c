"""Data-parallel trials on two local gloo ranks (no Ray: tests/scaling/local_ranks.py; the sweep path
under Ray Train is tests/sweeps/test_multiworker.py): the same global batch gives one process's
result, the budget is spent exactly over the ranks, rank 0 alone writes, and an interrupted
two-rank trial resumes to the uninterrupted end."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from scaling import schema
from scaling.distributed import Ranks
from scaling.errors import GrscaleError
from scaling.reporting import read_rows
from scaling.train import Trainer, train_to_budget
from tests.scaling.local_ranks import run_ranks
from tests.scaling.test_train import tiny

# Ranking without dropout draws nothing at random, so two ranks take exactly one process's steps: the
# only difference is the order of additions (the loss, the gradients' all-reduce, evaluation batches).
EXACT = dict(task="ranking", budget=2e8, model={"dropout": 0.0})
REDUCTION_ORDER = 1e-6  # relative: float32 sums in another order, over a few dozen steps
# Retrieval ranks draw their own negatives and dropout, so they follow another random path to a
# result of the same quality: final test NLL within this fraction of one process's.
SAME_QUALITY = 0.05


def _compare(one: list[dict], two: list[dict], rel: float) -> None:
    assert len(one) == len(two)
    for a, b in zip(one, two):
        for key, value in a.items():
            if key in schema.TIMING_COLUMNS or key in ("workers", "mfu_basis", "executed_flops"):
                continue
            if isinstance(value, float) and rel:
                assert b[key] == pytest.approx(value, rel=rel, nan_ok=True), key
            else:
                assert b[key] == value, key


@pytest.fixture(scope="module")
def retrieval_runs(tmp_path_factory):
    """One retrieval trial on one process and on two ranks; the two-rank folder and its rows."""
    root = tmp_path_factory.mktemp("retrieval")
    cfg = tiny(budget=3e8)
    one = train_to_budget(cfg, root / "one").rows
    run_ranks(cfg, root / "two", 2)
    return cfg, one, read_rows(root / "two" / schema.METRICS_FILE), root


def test_two_ranks_match_one_process_at_the_same_global_batch(tmp_path):
    cfg = tiny(**EXACT)
    one = train_to_budget(cfg, tmp_path / "one").rows
    run_ranks(cfg, tmp_path / "two", 2)
    two = read_rows(tmp_path / "two" / schema.METRICS_FILE)
    _compare(one, two, REDUCTION_ORDER)  # loss, validation and test metrics, FLOPs, tokens, steps
    # Each rank pads its attention to its own longest sequence: executed FLOPs are at most one process's.
    assert all(b["executed_flops"] <= a["executed_flops"] for a, b in zip(one, two))
    assert {r["workers"] for r in one} == {1} and {r["workers"] for r in two} == {2}


def test_two_ranks_spend_the_budget_exactly_and_reach_the_same_quality(retrieval_runs):
    cfg, one, two, _ = retrieval_runs
    # The ranks count the FLOPs of their own jagged sequences and add them up every step: the same
    # global batches cost what they cost one process, and the trial stops at the same step.
    assert [(r["step"], r["flops"], r["tokens"], r["examples"]) for r in two] == \
           [(r["step"], r["flops"], r["tokens"], r["examples"]) for r in one]
    one_step = two[-1]["flops"] / two[-1]["step"]
    assert cfg.budget <= two[-1]["flops"] < cfg.budget + 2 * one_step
    assert two[-1]["test/nll"] == pytest.approx(one[-1]["test/nll"], rel=SAME_QUALITY)
    assert two[-1]["test/hr@10"] == pytest.approx(one[-1]["test/hr@10"], abs=0.1)
    assert 0 < two[-1]["mfu"] < 1 and two[-1]["mfu_basis"] == "measured fp32 matmul (cpu, 1 threads)"


def test_mfu_is_useful_flops_per_second_of_training_over_the_measured_peak(tmp_path):
    from scaling.peak import measured_cpu_matmul

    final = train_to_budget(tiny(budget=1e8), tmp_path).rows[-1]
    peak = measured_cpu_matmul(torch.get_num_threads())  # what the trial measured (cached in this process)
    assert final["mfu_basis"] == f"measured fp32 matmul (cpu, {torch.get_num_threads()} threads)"
    assert 0 < final["train_s"] < final["wall_s"]
    assert final["mfu"] == pytest.approx(final["flops"] / final["train_s"] / peak, rel=0.01)  # train_s is rounded
    # Measuring the peak draws from its own generator: the trial's random streams are untouched.
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    measured_cpu_matmul(torch.get_num_threads(), size=64, seconds=0.01)
    assert torch.equal(torch.rand(4), expected)


def test_rank_zero_alone_writes_the_trial_folder(retrieval_runs):
    _, _, two, root = retrieval_runs
    folder = root / "two"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [schema.CHECKPOINT_FILE, schema.METRICS_FILE, schema.RUN_INFO_FILE, schema.STATUS_FILE])
    assert [r["eval_kind"] for r in two].count("final") == 1  # one row per evaluation, not one per rank
    payload = torch.load(folder / schema.CHECKPOINT_FILE, weights_only=False)
    assert payload["workers"] == 2 and len(payload["rank_rng"]) == 2
    # Each rank drew from its own seeds: their negatives' generators are in different states.
    assert not torch.equal(payload["rank_rng"][0]["generator"], payload["rank_rng"][1]["generator"])
    assert json.loads((folder / schema.STATUS_FILE).read_text())["status"] == "done"


def test_an_interrupted_two_rank_trial_resumes_to_the_uninterrupted_end(retrieval_runs, tmp_path):
    cfg, _, uninterrupted, _ = retrieval_runs
    run_ranks(cfg, tmp_path, 2, stop_at=15)
    status = json.loads((tmp_path / schema.STATUS_FILE).read_text())
    assert status["status"] == "interrupted" and status["error"] == "interrupted by SIGTERM at step 15"
    run_ranks(cfg, tmp_path, 2, resume=True)
    _compare(uninterrupted, read_rows(tmp_path / schema.METRICS_FILE), rel=0.0)  # bit for bit
    # A checkpoint of two ranks does not resume on one: its random states are per rank.
    with pytest.raises(GrscaleError, match=r"written by a trial on 2 worker\(s\) and this one runs on 1: "
                                           r"resume it with resources.workers: 2"):
        Trainer(cfg, tmp_path).load_checkpoint()


def test_a_rank_takes_its_contiguous_share_and_its_own_seeds():
    rows = np.arange(7)
    shares = [Ranks(rank, 3).shard(rows) for rank in range(3)]
    assert [s.tolist() for s in shares] == [[0, 1, 2], [3, 4], [5, 6]]
    assert Ranks(1, 9).shard(np.arange(2)).tolist() == [1] and Ranks(5, 9).shard(np.arange(2)).size == 0
    assert Ranks(0, 2).seed(7) == 7 == Ranks().seed(7)  # rank 0 keeps one process's streams
    assert len({Ranks(r, 4).seed(7) for r in range(4)} | {Ranks(1, 4).seed(8)}) == 5


def test_a_trial_of_several_workers_is_refused_on_one_process(tmp_path):
    with pytest.raises(GrscaleError, match=r"^runtime.workers is 2 but this trial runs on 1 process\(es\): a trial "
                                           r"of several workers runs in a sweep \(resources.workers\)$"):
        Trainer(tiny(runtime={"workers": 2}), tmp_path)


def test_bf16_is_refused_where_it_cannot_run(tmp_path):
    """bf16 autocast is a CUDA option: a CPU config refuses it when loaded, and `device: auto` on a
    machine without CUDA when the trainer resolves the device (this CPU session cannot run bf16)."""
    with pytest.raises(GrscaleError, match=r"^trial.runtime.precision: bf16 autocast runs on CUDA only"):
        tiny(runtime={"precision": "bf16"})
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: device auto resolves to it")
    cfg = tiny(runtime={"precision": "bf16", "device": "auto"})
    with pytest.raises(GrscaleError, match=r"^runtime.precision: bf16 autocast runs on CUDA only, and this "
                                           r"trial runs on cpu: use fp32$"):
        Trainer(cfg, tmp_path)
