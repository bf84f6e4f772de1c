"""A trial on several workers: the Tune trial function launches a Ray Train TorchTrainer (the
pattern Ray 2.60's Train V2 supports for Train inside Tune), whose workers run the same Trainer as
one data-parallel group (scaling/distributed.py): gloo on CPUs, NCCL on GPUs.

Rank 0 owns the trial folder and the W&B run, as a one-worker trial does itself. The trial function
owns what happens when the job fails (a worker raised, or its process died): it records the trial
as `failed` with one line naming the rank and why, in the trial folder and the W&B run, and the
sweep goes on. Tune reserves next to nothing for the trial function (the workers' placement group
holds the CPUs and GPUs), so the number of trials at once is capped by what the cluster can give
their workers instead (concurrent_trials).
"""
from __future__ import annotations

import math
import secrets
import traceback
from pathlib import Path
from typing import Any

from scaling.errors import GrscaleError
from sweeps.spec import Resources, SweepSpec
from sweeps.trainable import StopFile, TrialPayload, TuneReporter

# The trial function's own bundle when its workers hold the resources: Tune needs a non-empty one.
DRIVER_BUNDLE = {"cpu": 0, "memory": 1}


def trial_resources(resources: Resources) -> dict[str, float]:
    """What Tune reserves per trial: all of it for one worker, a token for a Ray Train job's driver."""
    if resources.workers == 1:
        return {"cpu": resources.worker_cpus, "gpu": resources.worker_gpus}
    return dict(DRIVER_BUNDLE)


def concurrent_trials(spec: SweepSpec) -> int | None:
    """Trials at once: the spec's cap, and for multi-worker trials at most as many as the connected
    cluster's CPUs and GPUs hold whole worker groups of (else they would wait on each other's workers)."""
    resources = spec.resources
    if resources.workers == 1:
        return spec.max_concurrent_trials
    import ray

    cluster = ray.cluster_resources()
    need = {"CPU": resources.workers * resources.worker_cpus, "GPU": resources.workers * resources.worker_gpus}
    fits = min(math.floor(cluster.get(kind, 0.0) / amount + 1e-9) for kind, amount in need.items() if amount > 0)
    if fits < 1:
        have = ", ".join(f"{cluster.get(kind, 0.0):g} {kind}" for kind in need)
        raise GrscaleError(f"spec.resources: a trial's {resources.workers} workers need "
                           f"{need['CPU']:g} CPU and {need['GPU']:g} GPU together; the cluster has {have}")
    return min(fits, spec.max_concurrent_trials or fits)


def failure_line(error: BaseException, workers: int) -> str:
    """One line for a Ray Train job that failed, naming its cause rather than what the cause did to
    the other ranks (a collective whose peer vanished): a worker that died first, then an error of
    ours (a bad input every rank meets), then the lowest failing rank's error."""
    from ray.exceptions import RayActorError
    from ray.train import WorkerGroupError
    from ray.train.v2._internal.exceptions import WorkerHealthCheckFailedError

    from sweeps.outcome import error_line

    if not isinstance(error, WorkerGroupError) or not error.worker_failures:
        return error_line(error)
    failures = sorted(error.worker_failures.items())
    # Ray Train reports a worker whose process ended as a failed health check caused by its actor's death.
    died = [(rank, e) for rank, e in failures if isinstance(e, RayActorError) or (
        isinstance(e, WorkerHealthCheckFailedError) and isinstance(e.health_check_failure, RayActorError))]
    if died:
        return (f"worker rank {died[0][0]} of {workers} died (its process ended: killed, out of memory or its "
                f"node lost); the trial stopped")
    ours = [e for _, e in failures if isinstance(e, GrscaleError)]
    if ours:
        return error_line(ours[0])
    rank, cause = failures[0]
    return f"worker rank {rank} of {workers} failed: {error_line(cause)}"


def _worker_main(config: dict[str, Any]) -> None:
    """Each worker of the job: one rank of the trial (Ray Train has joined the process group)."""
    from scaling.config import TrialConfig
    from scaling.distributed import Ranks
    from scaling.train import trial_trainer
    from sweeps.wandb_logging import WandbReporter

    payload: TrialPayload = config["payload"]
    ranks = Ranks.current()
    cfg = TrialConfig.from_dict(payload.config)
    trial_dir = Path(payload.trial_dir)
    wandb_run = (WandbReporter(payload.wandb, payload.trial_id, cfg, trial_dir)
                 if payload.wandb and ranks.is_chief else None)
    status, error = "failed", "the worker stopped"
    try:
        trainer = trial_trainer(cfg, trial_dir, [wandb_run] if wandb_run else [],
                                should_stop=StopFile(Path(payload.stop_file)), ranks=ranks)
        result = trainer.run(resume=payload.resume)
        status, error = result.status, result.error
    finally:
        if wandb_run is not None and status != "failed":
            wandb_run.finish(status, error)
        elif wandb_run is not None:  # the trial function records the failure, and closes the run then
            wandb_run.run.finish(exit_code=1)


def worker_group_trainer(payload: TrialPayload, device: str, storage: Path) -> Any:
    """The Ray Train TorchTrainer of the trial on `payload.resources.workers` workers, Ray Train's own
    files under `storage`; it does not retry (a failed trial is recorded, and resumes under --resume)."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    resources = payload.resources
    gpus = resources.worker_gpus
    return TorchTrainer(
        _worker_main, train_loop_config={"payload": payload},
        torch_config=TorchConfig(backend="nccl" if gpus and device != "cpu" else "gloo"),
        scaling_config=ScalingConfig(num_workers=resources.workers, use_gpu=gpus > 0,
                                     resources_per_worker={"CPU": resources.worker_cpus, "GPU": gpus}),
        # A fresh name per attempt: Ray Train's own folder holds nothing the trial resumes from.
        run_config=RunConfig(name=f"{payload.trial_id}-{secrets.token_hex(3)}", storage_path=str(storage),
                             failure_config=FailureConfig(max_failures=0)),
    )


def run_worker_group(payload: TrialPayload, device: str, storage: Path) -> None:
    """The trial as a Ray Train job (worker_group_trainer); a failed job is recorded as a failed trial."""
    from scaling.config import TrialConfig
    from scaling.reporting import read_rows
    from scaling.schema import METRICS_FILE
    from sweeps.outcome import record_failure
    from sweeps.wandb_logging import WandbReporter

    trainer = worker_group_trainer(payload, device, storage)
    trial_dir = Path(payload.trial_dir)
    try:
        trainer.fit()
    except Exception as exc:  # noqa: BLE001 - a failed job is a failed trial; the sweep goes on
        (trial_dir / "error.txt").write_text("".join(traceback.format_exception(exc)))
        cfg = TrialConfig.from_dict(payload.config)
        wandb_run = WandbReporter(payload.wandb, payload.trial_id, cfg, trial_dir) if payload.wandb else None
        error = failure_line(exc, payload.resources.workers)
        record_failure(trial_dir, cfg, error, [TuneReporter(), *([wandb_run] if wandb_run else [])])
        if wandb_run is not None:
            wandb_run.finish("failed", error)
        return
    rows = read_rows(trial_dir / METRICS_FILE)
    TuneReporter().report(rows[-1] if rows else {"started": False})
