"""The trials a spec runs, decided with the data in hand: every budget must buy at least one
training step of every size, and a `band` keeps only the (size, budget) cells inside it; a
branched schedule then makes each group of budgets a trunk and its branches (sweeps/branching.py).

Steps and epochs are counted as the Trainer counts them: the useful FLOPs of the trial's training
batches (its seed and length buckets; a step is their mean), and of a whole epoch, on a model built
on the meta device (no memory).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from scaling.config import TrialConfig
from scaling.errors import GrscaleError
from scaling.eval_budget import ValidationSizing, val_users_for
from scaling.schema import short_number
from sweeps.branching import branch_plans
from sweeps.grid import TrialPlan, expand
from sweeps.spec import SweepSpec


@dataclass(frozen=True)
class SizeCost:
    step: float  # useful FLOPs of one training step
    epoch: float  # useful FLOPs of one pass over the training split
    eval_user: float  # modelled FLOPs to evaluate one user (scaling.flops.evaluation_flops)


def size_cost(cfg: TrialConfig, split) -> SizeCost:
    """What one step and one epoch of `cfg`'s model cost on `split`, as its trial will count them."""
    import torch

    from scaling.data.loader import trial_batches
    from scaling.flops import evaluation_flops, training_flops
    from scaling.train import build_trial_model

    batches = trial_batches(split.train, cfg)
    with torch.device("meta"):
        model = build_trial_model(cfg, split)
    per_batch = [training_flops(model.config, cfg.task, batch.lengths()).useful for batch in batches.epoch(0)]
    history = float(split.val.history.lengths().clip(max=cfg.data.max_seq_len).mean())
    eval_user = evaluation_flops(model.config, cfg.task, history, split.num_items + 1, cfg.runtime.eval_batch_size)
    # The mean step: with length buckets the first batch may be one of the shortest or longest.
    return SizeCost(step=sum(per_batch) / len(per_batch), epoch=sum(per_batch), eval_user=eval_user)


def _model_name(cfg: TrialConfig) -> str:
    """The preset, with its variant where not the default (variants may differ in cost)."""
    return cfg.model.preset if cfg.model.variant == "default" else f"{cfg.model.preset} ({cfg.model.variant})"


def _load_split(plan: TrialPlan):
    from scaling.data.dataset import load_dataset
    from scaling.data.splits import make_split

    cfg = plan.config
    try:
        data_dir = Path(cfg.runtime.data_dir) if cfg.runtime.data_dir else None
        log = load_dataset(cfg.data.dataset, data_dir, cfg.data.synthetic, cfg.data.ties,
                           allow_modified=cfg.data.allow_modified)
        if cfg.task == "ranking" and not log.has_labels:
            raise GrscaleError(f"dataset {cfg.data.dataset_name!r} carries no engagement labels: "
                               f"the ranking task needs them")
        return make_split(log, cfg.data.split)
    except GrscaleError as error:
        raise GrscaleError(f"spec.dataset: {error}") from None


def plan_trials(spec: SweepSpec) -> list[TrialPlan]:
    """The grid's trials that run, in grid order; raises naming the spec field that leaves a size without trials."""
    plans = expand(spec)
    split = _load_split(plans[0])
    costs: dict[str, SizeCost] = {}
    kept: list[TrialPlan] = []
    for plan in plans:
        cfg = plan.config
        preset = _model_name(cfg)
        if preset not in costs:
            try:
                costs[preset] = size_cost(cfg, split)
            except GrscaleError as error:
                raise GrscaleError(f"spec.trial: {preset}: {error}") from None
        cost = costs[preset]
        if spec.band is None:
            if cfg.budget < cost.step:
                raise GrscaleError(
                    f"spec.budgets: {short_number(cfg.budget)} FLOPs is smaller than one training step of {preset} "
                    f"on {cfg.data.dataset_name} ({short_number(cost.step)} FLOPs at batch size {cfg.optim.batch_size}); "
                    f"raise the smallest budget, drop the size, or set spec.band")
            kept.append(plan)
        elif cfg.budget >= spec.band.min_steps * cost.step and (
                spec.band.max_epochs is None or cfg.budget <= spec.band.max_epochs * cost.epoch):
            kept.append(plan)
    if spec.band is not None:
        _check_band_leaves_every_size(spec, kept, costs)
    if spec.validation is not None:
        kept = [_sized_validation(plan, spec.validation, costs[_model_name(plan.config)], split) for plan in kept]
    if spec.schedule is not None:
        kept = branch_plans(kept, spec.schedule)
    return kept


def _sized_validation(plan: TrialPlan, sizing: ValidationSizing, cost: SizeCost, split) -> TrialPlan:
    """The plan with its validation users set by the spec's sizing rule (scaling.eval_budget)."""
    cfg = plan.config
    users = val_users_for(sizing, budget=cfg.budget, num_evals=cfg.eval.num_evals, user_flops=cost.eval_user,
                          test_users=split.test.num_examples, val_users=split.val.num_examples)
    config = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, val_users=users))
    return dataclasses.replace(plan, config=config)


def _check_band_leaves_every_size(spec: SweepSpec, kept: list[TrialPlan], costs: dict[str, SizeCost]) -> None:
    running = {_model_name(p.config) for p in kept}
    band = spec.band
    for preset, cost in costs.items():
        if preset not in running:
            low = f"{short_number(band.min_steps * cost.step)} FLOPs ({band.min_steps} steps)"
            high = ("no limit" if band.max_epochs is None else
                    f"{short_number(band.max_epochs * cost.epoch)} FLOPs ({band.max_epochs:g} epochs)")
            raise GrscaleError(f"spec.band: no budget of {preset} lies inside the band, from {low} to {high}; "
                               f"widen spec.budgets or spec.band, or drop the size")
