import json
import math

import pytest

from scaling.config import OptimConfig, TrialConfig
from scaling.data.synthetic import SyntheticConfig
from scaling.errors import GrscaleError
from scaling.reporting import read_rows
from scaling.schedule import eval_fractions, lr_at
from scaling.train import Trainer, train_to_budget

TINY = SyntheticConfig(num_users=120, num_items=60, mean_seq_len=10, seed=1)
ROW_FIELDS = {"family", "size", "task", "dataset", "seed", "budget", "flops", "executed_flops", "tokens",
              "params_embedding", "params_nonembedding", "step", "wall_s", "status", "eval_kind"}


def tiny(family="hstu", size="xs", task="retrieval", budget=3e8, **kw) -> TrialConfig:
    return TrialConfig(family=family, size=size, task=task, budget=budget, synthetic=TINY, max_seq_len=16,
                       batch_size=32, num_negatives=16, progress=False, **kw)


class StopAfter:
    """A reporter that interrupts the trial after n rows, as a kill would."""

    def __init__(self, n: int) -> None:
        self.n, self.seen = n, 0

    def report(self, row):
        self.seen += 1
        if self.seen == self.n:
            raise KeyboardInterrupt


@pytest.mark.parametrize("family, task", [("hstu", "retrieval"), ("sasrec", "ranking"), ("dlrm", "retrieval"),
                                          ("dlrm", "ranking")])
def test_trial_spends_its_budget_and_writes_rows(tmp_path, family, task):
    cfg = tiny(family, task=task)
    result = train_to_budget(cfg, tmp_path)
    rows = read_rows(tmp_path / "metrics.jsonl")
    assert result.status == "done" and rows == result.rows
    assert len(rows) >= 5  # log-spaced points merge only where one step spans several
    assert all(ROW_FIELDS <= set(r) for r in rows)
    flops = [r["flops"] for r in rows]
    assert flops == sorted(flops) and flops[-1] >= cfg.budget
    # the last step crossed the budget: it overshoots by less than one step
    assert flops[-1] - cfg.budget < flops[-1] / rows[-1]["step"] * 2
    final = rows[-1]
    assert final["eval_kind"] == "final" and all(r["eval_kind"] == "val" for r in rows[:-1])
    metric = "nll" if task == "retrieval" else "ne"
    assert math.isfinite(final[f"test/{metric}"]) and math.isfinite(final[f"test_last/{metric}"])
    assert final["executed_flops"] >= final["flops"]
    info = json.loads((tmp_path / "run_info.json").read_text())
    assert info["config"]["family"] == family and info["params_nonembedding"] == final["params_nonembedding"]


def test_training_improves_on_the_untrained_model(tmp_path):
    result = train_to_budget(tiny(budget=1e9, optim=OptimConfig(lr=3e-3)), tmp_path)
    assert result.rows[-1]["val/nll"] < result.rows[0]["val/nll"] - 0.2


def test_resume_after_interruption_ends_like_an_uninterrupted_run(tmp_path):
    cfg = tiny(family="sasrec", budget=4e8)
    full = train_to_budget(cfg, tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, tmp_path / "cut", reporters=[StopAfter(3)]).run()
    assert len(read_rows(tmp_path / "cut" / "metrics.jsonl")) == 3
    resumed = train_to_budget(cfg, tmp_path / "cut", resume=True)
    assert len(resumed.rows) == len(full.rows)
    for a, b in zip(full.rows, resumed.rows):
        for key in a:
            if isinstance(a[key], float) and key != "wall_s":
                assert a[key] == pytest.approx(b[key], rel=1e-6, nan_ok=True), key
            elif key != "wall_s":
                assert a[key] == b[key], key


def test_a_kill_between_validation_points_loses_at_most_the_checkpoint_interval(tmp_path, monkeypatch):
    cfg = tiny(family="hstu", budget=4e8)
    full = train_to_budget(cfg, tmp_path / "full")
    calls, step = {"n": 0}, Trainer.train_step

    def killed_at_step_12(self, batch):
        calls["n"] += 1
        if calls["n"] == 12:
            raise KeyboardInterrupt
        return step(self, batch)

    monkeypatch.setattr(Trainer, "train_step", killed_at_step_12)
    cut = Trainer(cfg, tmp_path / "cut", checkpoint_every_s=0.0)  # checkpoint after every step
    with pytest.raises(KeyboardInterrupt):
        cut.run()
    assert cut.state.next_eval < len(cut.fractions) - 1  # killed with validation points still to come
    monkeypatch.undo()
    resumed = Trainer(cfg, tmp_path / "cut")
    assert resumed.load_checkpoint() and resumed.state.step == 11  # nothing before the kill is lost
    rows = train_to_budget(cfg, tmp_path / "cut", resume=True).rows
    assert [r["step"] for r in rows] == [r["step"] for r in full.rows]
    assert [r["val/nll"] for r in rows] == pytest.approx([r["val/nll"] for r in full.rows], rel=1e-6)
    assert rows[-1]["test/nll"] == pytest.approx(full.rows[-1]["test/nll"], rel=1e-6)


@pytest.mark.parametrize("metric", ["ndcg@10", "nll"])
def test_test_metrics_come_from_the_best_validation_point(tmp_path, metric):
    result = train_to_budget(tiny(budget=1e9, select_metric=metric, optim=OptimConfig(lr=3e-3)), tmp_path)
    rows = result.rows
    values = [r[f"val/{metric}"] for r in rows]
    best = (max if metric == "ndcg@10" else min)(range(len(rows)), key=values.__getitem__)
    assert rows[-1]["best_step"] == rows[best]["step"]
    if best == len(rows) - 1:  # the best point is the end: test at best equals test at the end
        assert rows[-1][f"test/{metric}"] == pytest.approx(rows[-1][f"test_last/{metric}"])


def test_validation_on_a_user_sample_leaves_the_test_split_whole(tmp_path):
    full = train_to_budget(tiny(), tmp_path / "full").rows[-1]
    sampled = train_to_budget(tiny(val_users=25), tmp_path / "sampled").rows[-1]
    # the training path is the same; only the validation metrics (and so the selected point) may move
    assert sampled["flops"] == full["flops"] and sampled["test_last/nll"] == pytest.approx(full["test_last/nll"])
    assert sampled["val/nll"] != pytest.approx(full["val/nll"])
    with pytest.raises(GrscaleError, match="val_users must be >= 0"):
        Trainer(tiny(val_users=-1), tmp_path / "bad")


def test_resume_refuses_a_different_config(tmp_path):
    cfg = tiny(budget=2e8)
    train_to_budget(cfg, tmp_path)
    with pytest.raises(GrscaleError, match="different trial config"):
        train_to_budget(tiny(budget=3e8), tmp_path, resume=True)


def test_divergence_ends_the_trial_with_its_step(tmp_path):
    cfg = tiny(optim=OptimConfig(lr=1e12, warmup_fraction=0.0, grad_clip=0.0), budget=3e9)
    result = train_to_budget(cfg, tmp_path)
    assert result.status == "diverged"
    assert result.final["status"] == "diverged" and "non-finite training loss" in result.final["error"]
    assert f"at step {result.final['step']}" in result.final["error"]
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "diverged"


@pytest.mark.parametrize("change, message", [
    (dict(family="bert"), "unknown model family 'bert'"),
    (dict(size="huge"), "unknown hstu size 'huge'"),
    (dict(task="regression"), "unknown task 'regression'"),
    (dict(negatives_per="batch"), "unknown negatives_per 'batch'"),
    (dict(ties="random"), "unknown ties 'random'"),
    (dict(model_overrides={"query_time": "next"}), "unknown query_time 'next'"),
    (dict(budget=10.0), "smaller than one training step"),
    (dict(kernel="triton"), "kernel='triton' cannot run on device 'cpu'"),
    (dict(dataset="beauty", task="ranking", data_dir="__fixture__"), "no engagement labels"),
])
def test_bad_trials_fail_before_training(tmp_path, monkeypatch, change, message):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # the kernel tests turn the interpreter on
    if change.get("data_dir") == "__fixture__":
        (tmp_path / "Beauty.txt").write_text("1 1 2 3 4\n2 2 3 4 5\n")
        change = {**change, "data_dir": str(tmp_path)}
    fields = {"family": "hstu", "size": "xs", "budget": 3e8, **change}
    cfg = TrialConfig.from_dict({**tiny().to_dict(), **fields})
    with pytest.raises(GrscaleError, match=message):
        Trainer(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_dataset_too_small_for_the_split(tmp_path):
    (tmp_path / "u.data").write_text("1\t1\t5\t1\n1\t2\t5\t2\n")
    cfg = TrialConfig.from_dict({**tiny().to_dict(), "dataset": "ml-100k", "data_dir": str(tmp_path)})
    with pytest.raises(GrscaleError, match="no user has the 3 interactions"):
        Trainer(cfg, tmp_path / "run")


def test_schedules_follow_the_budget():
    cosine = OptimConfig(lr=1.0, warmup_fraction=0.1, min_lr_ratio=0.1)
    assert lr_at(0.05, cosine) == pytest.approx(0.5)
    assert lr_at(0.1, cosine) == pytest.approx(1.0)
    assert lr_at(0.55, cosine) == pytest.approx(0.55)
    assert lr_at(1.0, cosine) == pytest.approx(0.1)
    wsd = OptimConfig(lr=1.0, schedule="wsd", warmup_fraction=0.0, decay_fraction=0.2)
    assert lr_at(0.5, wsd) == 1.0 and lr_at(0.9, wsd) == pytest.approx(0.5) and lr_at(1.0, wsd) == 0.0
    assert lr_at(0.7, OptimConfig(lr=2.0, schedule="constant")) == 2.0
    fractions = eval_fractions(8, 0.01)
    assert len(fractions) == 8 and fractions[0] == pytest.approx(0.01) and fractions[-1] == 1.0
    ratios = [b / a for a, b in zip(fractions, fractions[1:])]
    assert max(ratios) == pytest.approx(min(ratios))


def test_config_from_yaml_rejects_unknown_fields(tmp_path):
    path = tmp_path / "trial.yaml"
    path.write_text("family: hstu\nsize: xs\nbudget: 1e9\noptim:\n  lr: 0.01\n  momentum: 0.9\n")
    with pytest.raises(GrscaleError, match=r"trial.optim: unknown field\(s\) momentum"):
        TrialConfig.from_yaml(path)
    path.write_text("family: hstu\nsize: xs\nbudget: 1e9\noptim:\n  lr: 0.01\n")
    assert TrialConfig.from_yaml(path).optim.lr == 0.01
