import dataclasses
import json
import math

import pytest

from scaling import schema, typed
from scaling.config import OptimConfig, TrialConfig
from scaling.data.synthetic import SyntheticConfig
from scaling.errors import GrscaleError
from scaling.reporting import read_rows
from scaling.schedule import eval_fractions, lr_at
from scaling.train import Trainer, train_to_budget

TINY = SyntheticConfig(num_users=120, num_items=60, mean_seq_len=10, seed=1)
ROW_FIELDS = {*schema.COORDINATE_COLUMNS, *schema.SETTING_COLUMNS, *schema.MEASURE_COLUMNS, *schema.PROVENANCE_COLUMNS,
              *schema.LINEAGE_COLUMNS, "status", "eval_kind"} - {"sweep", "trial_id", "select_on"}


def tiny(family="hstu", size="xs", task="retrieval", budget=3e8, **sections) -> TrialConfig:
    """A trial of seconds; `sections` are laid over it, e.g. optim={"lr": 3e-3}."""
    base = {"model": {"family": family, "size": size, "loss": {"num_negatives": 16}}, "task": task, "budget": budget,
            "data": {"synthetic": typed.to_mapping(TINY), "max_seq_len": 16}, "optim": {"batch_size": 32},
            "runtime": {"progress": False}}
    return TrialConfig.from_dict(typed.merge(base, sections))


def with_runtime(cfg: TrialConfig, **changes) -> TrialConfig:
    return dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, **changes))


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
    assert info["config"]["model"]["family"] == family and info["params_nonembedding"] == final["params_nonembedding"]
    # every row carries the trial's coordinates, setting and provenance (the results schema's columns)
    assert final["peak_lr"] == cfg.optim.lr and final["variant"] == "default" and final["overrides"] == "{}"
    assert final["split"] == "leave-one-out" and final["node"] and final["data_modified"] is None


def test_training_improves_on_the_untrained_model(tmp_path):
    result = train_to_budget(tiny(budget=1e9, optim={"lr": 3e-3}), tmp_path)
    assert result.rows[-1]["val/nll"] < result.rows[0]["val/nll"] - 0.2


@pytest.mark.parametrize("family, buckets", [("sasrec", False), ("hstu", True)])
def test_resume_after_interruption_ends_like_an_uninterrupted_run(tmp_path, family, buckets):
    cfg = tiny(family=family, budget=4e8, data={"length_buckets": buckets})
    full = train_to_budget(cfg, tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, tmp_path / "cut", reporters=[StopAfter(3)]).run()
    assert len(read_rows(tmp_path / "cut" / "metrics.jsonl")) == 3
    resumed = train_to_budget(cfg, tmp_path / "cut", resume=True)
    assert len(resumed.rows) == len(full.rows)
    for a, b in zip(full.rows, resumed.rows):
        for key in a:
            if isinstance(a[key], float) and key not in schema.TIMING_COLUMNS:
                assert a[key] == pytest.approx(b[key], rel=1e-6, nan_ok=True), key
            elif key not in schema.TIMING_COLUMNS:
                assert a[key] == b[key], key
    final = full.rows[-1]
    assert 0 < final["eval_s"] < final["wall_s"] and final["val_users"] == TINY.num_users  # all validate


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
    cut = Trainer(with_runtime(cfg, checkpoint_every_s=0.0), tmp_path / "cut")  # checkpoint after every step
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
    result = train_to_budget(tiny(budget=1e9, eval={"select_metric": metric}, optim={"lr": 3e-3}), tmp_path)
    rows = result.rows
    values = [r[f"val/{metric}"] for r in rows]
    best = (max if metric == "ndcg@10" else min)(range(len(rows)), key=values.__getitem__)
    assert rows[-1]["best_step"] == rows[best]["step"]
    if best == len(rows) - 1:  # the best point is the end: test at best equals test at the end
        assert rows[-1][f"test/{metric}"] == pytest.approx(rows[-1][f"test_last/{metric}"])


def test_epochs_count_passes_over_the_training_sequences(tmp_path):
    trainer = Trainer(tiny(budget=1e9), tmp_path)
    rows = trainer.run().rows
    per_pass = int((trainer.split.train.lengths() >= 2).sum())  # the sequences that yield a prediction
    batch = trainer.cfg.optim.batch_size
    sizes = [min(batch, per_pass - start) for start in range(0, per_pass, batch)]  # one pass: the last batch is short
    for row in rows:
        drawn = sum(sizes[i % len(sizes)] for i in range(row["step"]))
        assert row["epochs"] == pytest.approx(drawn / per_pass, rel=1e-12)
    assert rows[-1]["epochs"] > 2  # this budget goes round the data more than twice


def test_validation_on_a_user_sample_leaves_the_test_split_whole(tmp_path):
    full = train_to_budget(tiny(), tmp_path / "full").rows[-1]
    sampled = train_to_budget(tiny(data={"val_users": 25}), tmp_path / "sampled").rows[-1]
    # the training path is the same; only the validation metrics (and so the selected point) may move
    assert sampled["flops"] == full["flops"] and sampled["test_last/nll"] == pytest.approx(full["test_last/nll"])
    assert sampled["val/nll"] != pytest.approx(full["val/nll"])
    assert sampled["val_users"] == 25 and full["val_users"] == TINY.num_users
    with pytest.raises(GrscaleError, match=r"trial.data.val_users: expected an integer >= 0, got -1"):
        tiny(data={"val_users": -1})


def test_resume_refuses_a_different_config(tmp_path):
    cfg = tiny(budget=2e8)
    train_to_budget(cfg, tmp_path)
    with pytest.raises(GrscaleError, match=r"different trial \(budget 200000000.0 -> 300000000.0\)"):
        train_to_budget(tiny(budget=3e8), tmp_path, resume=True)


def test_divergence_ends_the_trial_with_its_step(tmp_path):
    cfg = tiny(optim={"lr": 1e12, "warmup_fraction": 0.0, "grad_clip": 0.0}, budget=3e9)
    result = train_to_budget(cfg, tmp_path)
    assert result.status == "diverged"
    assert result.final["status"] == "diverged" and "non-finite training loss" in result.final["error"]
    assert f"at step {result.final['step']}" in result.final["error"]
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "diverged"


@pytest.mark.parametrize("change, message", [
    (dict(model={"family": "bert"}), "unknown model family 'bert'"),
    (dict(model={"size": "huge"}), "unknown hstu size 'huge'"),
    (dict(model={"variant": "huge"}), "unknown model variant 'huge'"),
    (dict(task="regression"), r"trial.task: unknown value 'regression'"),
    (dict(model={"loss": {"negatives_per": "batch"}}), "negatives_per must be one of sequence, prediction"),
    (dict(data={"ties": "random"}), r"trial.data.ties: unknown value 'random'"),
    (dict(model={"overrides": {"query_time": "next"}}), "unknown query_time 'next'"),
    (dict(model={"overrides": {"dropout": 0.1}}), r"trial.model.overrides.dropout: set model.dropout instead"),
    (dict(optim={"lr": "1e-x"}), r"trial.optim.lr: expected a number, got '1e-x'"),
    (dict(optim={"batch_size": 32.5}), r"trial.optim.batch_size: expected an integer, got 32.5"),
    (dict(budget=float("inf")), r"trial.budget: expected a finite number"),
    (dict(budget=-1e9), r"trial.budget: expected a positive, finite number of FLOPs, got -1000000000.0"),
    (dict(eval={"select_metric": "auc"}), r"trial.eval.select_metric: 'auc' is not a retrieval metric"),
])
def test_bad_configs_name_the_field(change, message):
    with pytest.raises(GrscaleError, match=message):
        tiny(**change)


def test_yaml_numbers_without_a_dot_are_numbers_and_old_flat_keys_name_their_new_place(tmp_path):
    path = tmp_path / "trial.yaml"
    path.write_text("model: {family: hstu, size: xs}\nbudget: 1e9\noptim: {lr: 1e-3}\n")  # PyYAML: strings
    cfg = TrialConfig.from_yaml(path)
    assert cfg.budget == 1e9 and cfg.optim.lr == 1e-3
    path.write_text("model: {family: hstu, size: xs}\nbudget: 1e9\nmax_seq_len: 50\n")
    with pytest.raises(GrscaleError, match=r"trial.yaml: trial.max_seq_len: this field moved to data.max_seq_len"):
        TrialConfig.from_yaml(path)


@pytest.mark.parametrize("change, message", [
    (dict(budget=10.0), "smaller than one training step"),
    (dict(model={"kernel": "triton"}), "kernel='triton' cannot run on device 'cpu'"),
    (dict(data={"dataset": "beauty", "allow_modified": True}, task="ranking"), "no engagement labels"),
])
def test_bad_trials_fail_before_training(tmp_path, monkeypatch, change, message):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # the kernel tests turn the interpreter on
    (tmp_path / "Beauty.txt").write_text("1 1 2 3 4\n2 2 3 4 5\n")
    cfg = tiny(**change, runtime={"data_dir": str(tmp_path)})
    with pytest.raises(GrscaleError, match=message):
        Trainer(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_dataset_too_small_for_the_split(tmp_path):
    (tmp_path / "u.data").write_text("1\t1\t5\t1\n1\t2\t5\t2\n")
    cfg = tiny(data={"dataset": "ml-100k", "allow_modified": True}, runtime={"data_dir": str(tmp_path)})
    with pytest.raises(GrscaleError, match="no user has the 3 interactions"):
        Trainer(cfg, tmp_path / "run")


def test_a_modified_named_dataset_is_refused_unless_allowed_and_then_recorded_in_every_row(tmp_path):
    from tests.scaling.fixtures import write_ml100k

    write_ml100k(tmp_path)
    with pytest.raises(GrscaleError, match="expected sha256 06416e59.*found"):
        Trainer(tiny(data={"dataset": "ml-100k"}, runtime={"data_dir": str(tmp_path)}), tmp_path / "refused")
    cfg = tiny(data={"dataset": "ml-100k", "allow_modified": True, "max_seq_len": 4}, optim={"batch_size": 2},
               runtime={"data_dir": str(tmp_path)}, budget=2e5, model={"loss": {"num_negatives": 2}})
    rows = train_to_budget(cfg, tmp_path / "run").rows
    assert rows and all(r["data_modified"] is True and len(r["data_sha256"]) == 64 for r in rows)


def test_a_folder_holding_a_run_is_refused_without_resume(tmp_path):
    cfg = tiny(budget=2e8)
    first = train_to_budget(cfg, tmp_path)
    with pytest.raises(GrscaleError, match="already holds a run: pass --resume"):
        train_to_budget(cfg, tmp_path)
    assert read_rows(tmp_path / "metrics.jsonl") == first.rows  # nothing overwritten
    # runtime fields are not the trial's identity: a resume without the progress bar or on other threads goes on
    again = train_to_budget(with_runtime(cfg, progress=False, threads=1, eval_batch_size=7), tmp_path, resume=True)
    assert again.status == "done" and again.rows == first.rows


def test_a_stop_request_checkpoints_and_the_resume_ends_like_an_uninterrupted_run(tmp_path):
    cfg = tiny(family="sasrec", budget=4e8)
    full = train_to_budget(cfg, tmp_path / "full")
    steps = iter(range(10**6))
    cut = train_to_budget(cfg, tmp_path / "cut", should_stop=lambda: "SIGTERM" if next(steps) == 9 else None)
    status = json.loads((tmp_path / "cut" / "status.json").read_text())
    assert cut.status == status["status"] == "interrupted"
    assert cut.error == f"interrupted by SIGTERM at step {status['step']}" and 10 <= status["step"] < full.final["step"]
    resumed = train_to_budget(cfg, tmp_path / "cut", resume=True)
    assert [r["step"] for r in resumed.rows] == [r["step"] for r in full.rows]
    assert resumed.rows[-1]["test/nll"] == pytest.approx(full.rows[-1]["test/nll"], rel=1e-6)


def test_without_a_validation_split_nothing_is_selected(tmp_path):
    rows = train_to_budget(tiny(budget=6e8, data={"split": "leave-last-out"}), tmp_path).rows
    final = rows[-1]
    # "validation" is the test set here: test figures are those of the end of training
    assert final["best_step"] == final["step"] and final["test/nll"] == pytest.approx(final["test_last/nll"])


def test_schedules_follow_the_budget():
    cosine = OptimConfig(lr=1.0, warmup_fraction=0.1, min_lr_ratio=0.1)
    assert lr_at(0.05, cosine) == pytest.approx(0.5)
    assert lr_at(0.1, cosine) == pytest.approx(1.0)
    assert lr_at(0.55, cosine) == pytest.approx(0.55)
    assert lr_at(1.0, cosine) == pytest.approx(0.1)
    wsd = OptimConfig(lr=1.0, schedule="wsd", warmup_fraction=0.0, decay_fraction=0.2)
    assert lr_at(0.5, wsd) == 1.0 and lr_at(0.9, wsd) == pytest.approx(0.5) and lr_at(1.0, wsd) == 0.0
    assert lr_at(0.7, OptimConfig(lr=2.0, schedule="constant")) == 2.0
    # 1-sqrt cooldown: at a quarter of the cooldown, 1 - sqrt(1/4) of the peak.
    one_sqrt = OptimConfig(lr=1.0, schedule="wsd", warmup_fraction=0.0, decay_fraction=0.2, decay_shape="1-sqrt")
    assert lr_at(0.8, one_sqrt) == 1.0 and lr_at(0.85, one_sqrt) == pytest.approx(0.5) and lr_at(1.0, one_sqrt) == 0.0
    # Warmups independent of the budget: by steps and by FLOPs, whatever fraction of it is spent.
    by_steps = OptimConfig(lr=1.0, schedule="wsd", warmup_fraction=0.0, warmup_steps=100)
    assert lr_at(0.001, by_steps, step=25) == pytest.approx(0.25) and lr_at(0.5, by_steps, step=100) == 1.0
    by_flops = OptimConfig(lr=1.0, schedule="constant", warmup_fraction=0.0, warmup_flops=1e9)
    assert lr_at(0.3, by_flops, flops=5e8) == pytest.approx(0.5) and lr_at(0.3, by_flops, flops=2e9) == 1.0
    fractions = eval_fractions(8, 0.01)
    assert len(fractions) == 8 and fractions[0] == pytest.approx(0.01) and fractions[-1] == 1.0
    ratios = [b / a for a, b in zip(fractions, fractions[1:])]
    assert max(ratios) == pytest.approx(min(ratios))


def test_warmups_and_cooldown_shapes_are_checked():
    with pytest.raises(GrscaleError, match=r"trial.optim: warmup_fraction and warmup_steps both set: warm up by one"):
        tiny(optim={"warmup_steps": 10})  # warmup_fraction keeps its default 0.02
    with pytest.raises(GrscaleError, match=r"trial.optim.decay_shape: unknown value 'sqrt'; known: linear, 1-sqrt"):
        tiny(optim={"schedule": "wsd", "decay_shape": "sqrt"})
    with pytest.raises(GrscaleError, match=r"warmup_steps and warmup_flops must be >= 0"):
        tiny(optim={"warmup_fraction": 0.0, "warmup_flops": -1.0})
    assert tiny(optim={"warmup_fraction": 0.0, "warmup_steps": 10}).optim.warmup_steps == 10


def test_config_from_yaml_rejects_unknown_fields(tmp_path):
    path = tmp_path / "trial.yaml"
    path.write_text("model: {family: hstu, size: xs}\nbudget: 1e9\noptim:\n  lr: 0.01\n  momentum: 0.9\n")
    with pytest.raises(GrscaleError, match=r"trial.yaml: trial.optim: unknown field 'momentum'"):
        TrialConfig.from_yaml(path)
    path.write_text("model: {family: hstu, size: xs}\nbudget: 1e9\noptim:\n  lr: 0.01\n")
    assert TrialConfig.from_yaml(path).optim.lr == 0.01
