"""Chunked full-catalog evaluation gives the figures of scoring the catalog in one piece, and the
sampled-candidates protocol ranks the target among fixed, seeded negatives."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from scaling import typed
from scaling.config import TrialConfig
from scaling.data.dataset import load_dataset
from scaling.data.loader import eval_batches
from scaling.data.splits import leave_one_out
from scaling.data.synthetic import SyntheticConfig, generate_synthetic
from scaling.errors import GrscaleError
from scaling.evaluate import evaluate_retrieval, sampled_candidates
from scaling.metrics import RetrievalAccumulator, exclude_history
from scaling.train import build_trial_model

TINY = SyntheticConfig(num_users=150, num_items=90, mean_seq_len=12, seed=3)


def trial(family: str, **eval_fields) -> TrialConfig:
    return TrialConfig.from_dict({
        "model": {"family": family, "size": "xs"}, "budget": 1e9,
        "data": {"synthetic": typed.to_mapping(TINY), "max_seq_len": 16},
        "eval": eval_fields, "runtime": {"eval_batch_size": 32}})


def one_piece(model, data, cfg) -> dict[str, np.ndarray]:
    """The reference: every batch's whole [B, num_items + 1] score matrix at once."""
    accumulator = RetrievalAccumulator()
    with torch.no_grad():
        for batch in eval_batches(data, cfg.runtime.eval_batch_size, cfg.data.max_seq_len):
            scores = model.score_catalog(batch)
            if cfg.eval.exclude_history:
                h = batch.history
                scores = exclude_history(scores, h.item_ids, h.offsets, batch.target_item_ids)
            accumulator.add(scores, batch.target_item_ids)
    return accumulator.per_example()


def assert_same_figures(chunked: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> None:
    assert chunked.keys() == reference.keys()
    for name, expected in reference.items():  # ranks exactly; the log-sum-exp to float rounding
        np.testing.assert_allclose(chunked[name], expected, rtol=1e-5, atol=1e-5, err_msg=name)
    np.testing.assert_array_equal(chunked["mrr"], reference["mrr"])


@pytest.mark.parametrize("family", ["hstu", "dlrm"])
@pytest.mark.parametrize("exclude", [True, False])
def test_chunked_ranks_match_the_one_piece_scores(family, exclude):
    cfg = trial(family, exclude_history=exclude)
    split = leave_one_out(generate_synthetic(TINY))
    torch.manual_seed(0)
    model = build_trial_model(cfg, split).eval()
    reference = one_piece(model, split.test, cfg)
    # 7 splits history items and targets across chunks; 91 is the whole catalog in one chunk.
    for chunk in (1, 7, 64, 91):
        chunked = evaluate_retrieval(model, split.test, cfg, torch.device("cpu"), chunk=chunk).per_example()
        assert_same_figures(chunked, reference)


def test_ties_count_against_the_target_in_every_chunk():
    cfg = trial("sasrec")
    split = leave_one_out(generate_synthetic(TINY))
    model = build_trial_model(cfg, split).eval()
    with torch.no_grad():
        model.item_emb.weight.fill_(1.0)  # every item scores the same: the target ranks last
    ranks = 1.0 / evaluate_retrieval(model, split.test, cfg, torch.device("cpu"), chunk=10).per_example()["mrr"] - 1
    # Evaluation sees (and excludes) the last max_seq_len items of each history.
    history_items = [np.unique(split.test.history.item_ids[max(a, b - 16):b]) for a, b in
                     zip(split.test.history.offsets[:-1], split.test.history.offsets[1:])]
    candidates = np.array([TINY.num_items - h.size + np.isin(t, h) for h, t in
                           zip(history_items, split.test.target_item_ids)])
    np.testing.assert_array_equal(ranks, candidates - 1)


def test_sampled_candidates_are_fixed_by_seed_and_user_and_never_the_target():
    users, targets = np.array([5, 9, 5]), np.array([3, 7, 3])
    a = sampled_candidates(users, targets, num_items=20, count=500, seed=0)
    assert a.shape == (3, 500) and a.min() >= 1 and a.max() <= 20
    assert not (a == targets[:, None]).any()
    np.testing.assert_array_equal(a[0], a[2])  # the same user gets the same negatives
    np.testing.assert_array_equal(a[1:2], sampled_candidates(users[1:2], targets[1:2], 20, 500, 0))
    assert set(np.unique(a[0])) == set(range(1, 21)) - {3}  # uniform over every other item
    assert not np.array_equal(a, sampled_candidates(users, targets, 20, 500, 1))


def test_sampled_protocol_ranks_among_its_candidates():
    cfg = trial("hstu", candidates=20)
    split = leave_one_out(generate_synthetic(TINY))
    torch.manual_seed(0)
    model = build_trial_model(cfg, split).eval()
    result = evaluate_retrieval(model, split.test, cfg, torch.device("cpu")).per_example()
    # The same examples in other batches see the same negatives.
    rebatched = TrialConfig.from_dict(typed.merge(cfg.to_dict(), {"runtime": {"eval_batch_size": 7}}))
    np.testing.assert_array_equal(evaluate_retrieval(model, split.test, rebatched, torch.device("cpu"))
                                  .per_example()["mrr"], result["mrr"])
    # Against the one-piece scores restricted to the target and its negatives.
    expected_ranks, expected_nll = [], []
    with torch.no_grad():
        for batch in eval_batches(split.test, 32, 16):
            scores = exclude_history(model.score_catalog(batch), batch.history.item_ids, batch.history.offsets,
                                     batch.target_item_ids)
            negatives = torch.from_numpy(sampled_candidates(batch.history.user_ids.numpy(),
                                                            batch.target_item_ids.numpy(), TINY.num_items, 20, 0))
            target = scores.gather(1, batch.target_item_ids[:, None])
            among = scores.gather(1, negatives)
            expected_ranks.append((among >= target).sum(1).numpy())
            expected_nll.append((torch.logsumexp(torch.cat([target, among], 1), 1) - target[:, 0]).numpy())
    np.testing.assert_array_equal(1.0 / result["mrr"] - 1, np.concatenate(expected_ranks))
    np.testing.assert_allclose(result["nll"], np.concatenate(expected_nll), rtol=1e-5)
    assert cfg.eval.protocol == "sampled-20" and trial("hstu").eval.protocol == "full"


def test_more_candidates_than_the_catalog_holds_is_refused():
    cfg = trial("hstu", candidates=TINY.num_items)
    split = leave_one_out(generate_synthetic(TINY))
    model = build_trial_model(cfg, split)
    with pytest.raises(GrscaleError, match="eval.candidates: 90 sampled negatives need a catalog"):
        evaluate_retrieval(model, split.test, cfg, torch.device("cpu"))


ML1M = Path(os.environ.get("GRSCALE_DATA_DIR", "/nonexistent")) / "ml-1m" / "ratings.dat"


@pytest.mark.skipif(not ML1M.is_file(), reason="needs ML-1M under $GRSCALE_DATA_DIR")
def test_chunked_figures_on_ml1m_match_the_one_piece_scores():
    cfg = TrialConfig.from_dict({"model": {"family": "sasrec", "size": "xs"}, "budget": 1e9, "data": {
        "dataset": "ml-1m", "max_seq_len": 50}, "runtime": {"eval_batch_size": 512}})
    split = leave_one_out(load_dataset("ml-1m"))
    torch.manual_seed(0)
    model = build_trial_model(cfg, split).eval()
    reference = one_piece(model, split.test, cfg)
    chunked = evaluate_retrieval(model, split.test, cfg, torch.device("cpu"), chunk=1000).per_example()
    assert_same_figures(chunked, reference)


class ThreadRanks:
    """Two ranks as two threads of this process: gather by a barrier (what dist.all_gather_object does)."""

    def __init__(self, world: int) -> None:
        import threading

        self.barrier, self.slots, self.world = threading.Barrier(world), [None] * world, world

    def rank(self, rank: int):
        from scaling.distributed import Ranks

        group = self

        class Member(Ranks):
            def gather(self, value):
                group.slots[self.rank] = value
                group.barrier.wait()
                out = list(group.slots)
                group.barrier.wait()  # no rank overwrites its slot before every rank has read them
                return out

        return Member(rank, group.world)


@pytest.mark.parametrize("exclude", [True, False])
def test_a_catalog_split_by_items_over_ranks_gives_one_process_figures(monkeypatch, exclude):
    from concurrent.futures import ThreadPoolExecutor

    import scaling.sharded_eval as sharded
    from scaling.data.splits import select_examples
    from scaling.evaluate import evaluate

    cfg = trial("hstu", exclude_history=exclude)
    split = leave_one_out(generate_synthetic(TINY))
    torch.manual_seed(0)
    model = build_trial_model(cfg, split).eval()
    few = select_examples(split.test, np.arange(40))  # 40 users, a catalog of 91 ids: split by items
    shares = []
    real = sharded.evaluate_retrieval
    monkeypatch.setattr(sharded, "evaluate_retrieval", lambda *a, **k: shares.append(k.get("items")) or real(*a, **k))
    group = ThreadRanks(2)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda r: sharded.evaluate_on_ranks(model, few, cfg, torch.device("cpu"),
                                                                     group.rank(r)), range(2)))
    assert sorted(shares) == [(0, 46), (46, 91)]
    reference = evaluate(model, few, cfg, torch.device("cpu"))
    for result in results:
        assert result.keys() == reference.keys()
        for name, value in reference.items():
            assert result[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
