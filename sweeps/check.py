"""The spec check that needs the data: every budget must buy at least one training step of every size.

One step is counted as the Trainer counts it: the useful FLOPs of the first training batch of
`batch_size` sequences (the trial's seed), on a model built on the meta device (no memory).
"""
from __future__ import annotations

from pathlib import Path

from scaling.errors import GrscaleError
from sweeps.grid import TrialPlan, short_number
from sweeps.spec import SweepSpec


def one_step_flops(plan: TrialPlan, split) -> float:
    import torch

    from scaling.data.loader import TrainBatches
    from scaling.flops import training_flops
    from scaling.train import build_trial_model

    cfg = plan.config
    first = next(TrainBatches(split.train, cfg.batch_size, cfg.max_seq_len, cfg.seed).epoch(0))
    with torch.device("meta"):
        model = build_trial_model(cfg, split)
    return training_flops(model.config, cfg.task, first.lengths()).useful


def check_budgets(spec: SweepSpec, plans: list[TrialPlan]) -> None:
    """Raise naming spec.budgets where a budget is below one step of a size (cached per size)."""
    from scaling.data.dataset import load_dataset
    from scaling.data.splits import make_split

    cfg = plans[0].config
    try:
        log = load_dataset(cfg.dataset, Path(cfg.data_dir) if cfg.data_dir else None, cfg.synthetic)
        if cfg.task == "ranking" and not log.has_labels:
            raise GrscaleError(f"dataset {cfg.dataset!r} carries no engagement labels: the ranking task needs them")
        split = make_split(log, cfg.split)
    except GrscaleError as error:
        raise GrscaleError(f"spec.dataset: {error}") from None
    step: dict[str, float] = {}
    for plan in sorted(plans, key=lambda p: p.config.budget):
        cfg = plan.config
        preset = f"{cfg.family}-{cfg.size}"
        if preset not in step:
            try:
                step[preset] = one_step_flops(plan, split)
            except GrscaleError as error:
                raise GrscaleError(f"spec.trial: {preset}: {error}") from None
        if cfg.budget < step[preset]:
            raise GrscaleError(
                f"spec.budgets: {short_number(cfg.budget)} FLOPs is smaller than one training step of {preset} on "
                f"{cfg.dataset} ({short_number(step[preset])} FLOPs at batch size {cfg.batch_size}); "
                f"raise the smallest budget or drop the size")
