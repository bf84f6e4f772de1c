"""`grscale sweep run`: validate a spec, expand it, and run its unfinished trials under Ray Tune.

Layout of `<out>/<sweep>/`: spec.yaml (what was launched), trials/<trial_id>/ (one scaling.train
run folder each), tune/ (Tune's storage) and results.parquet. Resume is per trial, from the
trial folders: finished trials are skipped, the others restart from their own checkpoint; so
a sweep also resumes after a SIGKILL, which leaves Tune's experiment state behind.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

# Read by Ray at import / init: no usage stats, no auth token, the quiet (legacy) console output.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
# Tune's default loggers include TensorBoard's, which warns on every NaN metric; rows are in
# metrics.jsonl anyway, so only Tune's JSON logger is kept (added explicitly in _tuner).
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")

import ray  # noqa: E402
import yaml  # noqa: E402
from ray import tune  # noqa: E402

from scaling.data.cache import atomic_write  # noqa: E402
from scaling.errors import GrscaleError  # noqa: E402
from sweeps.check import plan_trials  # noqa: E402
from sweeps.grid import TrialPlan, expand  # noqa: E402
from sweeps.outcome import FINISHED, read_outcome, record_failure  # noqa: E402
from sweeps.results import TRIALS_DIR, write_results  # noqa: E402
from sweeps.spec import SweepSpec, load_spec  # noqa: E402
from sweeps.status import SPEC_FILE, format_status, sweep_status  # noqa: E402
from sweeps.trainable import TrialPayload, run_trial  # noqa: E402
from sweeps.wandb_logging import WandbSettings, resolve_mode  # noqa: E402


@dataclass(frozen=True, kw_only=True)
class LaunchOptions:
    out: Path = Path("runs")
    address: str | None = None  # an existing Ray cluster; None starts a local Ray
    resume: bool = False
    wandb: bool = True


def _tune_dirname(trial) -> str:
    return trial.config["trial_id"]


class ProgressPrinter(tune.Callback):
    """One line per finished trial; the results table is rewritten after each."""

    def __init__(self, spec: SweepSpec, sweep_dir: Path, plans: list[TrialPlan], already_done: int) -> None:
        self.spec, self.sweep_dir, self.plans = spec, sweep_dir, plans
        self.by_id = {p.trial_id: p for p in plans}
        self.done = already_done

    def _finished(self, trial_id: str, row: dict) -> None:
        self.done += 1
        metric = f"test/{self.by_id[trial_id].config.selection_metric}"
        status = read_outcome(self.sweep_dir / TRIALS_DIR / trial_id).state
        detail = f"{metric}={row[metric]:.4f}" if isinstance(row.get(metric), float) else str(row.get("error"))
        print(f"[{self.done}/{len(self.plans)}] {trial_id}  {status}  {detail}  ({row.get('wall_s') or 0:.1f} s)",
              flush=True)
        write_results(self.sweep_dir, self.spec.name, self.plans)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._finished(trial.config["trial_id"], trial.last_result)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        """The trainable records its own errors; this catches what kills it (a worker that died)."""
        plan = self.by_id[trial.config["trial_id"]]
        trial_dir = self.sweep_dir / TRIALS_DIR / plan.trial_id
        if read_outcome(trial_dir).state not in FINISHED:
            error = trial.get_error()
            message = str(error).strip().splitlines()[0] if error else "the trial's Ray worker failed"
            record_failure(trial_dir, plan.config, message)
        self._finished(plan.trial_id, {"error": read_outcome(trial_dir).error})


def _check_finished(sweep_dir: Path, plans: list[TrialPlan], resume: bool) -> list[TrialPlan]:
    """The finished trials; without --resume any is an error (results are never overwritten)."""
    finished = [p for p in plans if read_outcome(sweep_dir / TRIALS_DIR / p.trial_id).state in FINISHED]
    if finished and not resume:
        raise GrscaleError(f"{sweep_dir} already holds {len(finished)} finished trial(s): pass --resume to continue "
                           f"that sweep (finished trials are kept), or choose another --out")
    for plan in finished:
        info_path = sweep_dir / TRIALS_DIR / plan.trial_id / "run_info.json"
        planned = json.loads(json.dumps(plan.config.to_dict()))  # as run_info.json holds it (tuples as lists)
        if info_path.exists() and json.loads(info_path.read_text())["config"] != planned:
            raise GrscaleError(f"trial {plan.trial_id} finished with a different config than the spec now gives: "
                               f"restore the spec, or run the changed sweep under another --out or name")
    return finished


def _start_ray(address: str | None) -> None:
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    else:
        # "local": always a new instance; a bare init would join any cluster last started on this machine.
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING, _node_ip_address="127.0.0.1")


def _tuner(spec: SweepSpec, sweep_dir: Path, todo: list[TrialPlan], payloads: dict, callback) -> tune.Tuner:
    resources = {"cpu": spec.resources.cpus, "gpu": spec.resources.gpus}
    trainable = tune.with_resources(tune.with_parameters(run_trial, payloads=payloads), resources)
    return tune.Tuner(
        trainable,
        param_space={"trial_id": tune.grid_search([p.trial_id for p in todo])},
        tune_config=tune.TuneConfig(max_concurrent_trials=spec.max_concurrent_trials, reuse_actors=True,
                                    trial_dirname_creator=_tune_dirname),
        run_config=tune.RunConfig(storage_path=str(sweep_dir), name="tune", verbose=0,
                                  callbacks=[callback, tune.logger.JsonLoggerCallback()],
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )


def run_sweep(spec_path: Path, options: LaunchOptions) -> int:
    """Run every unfinished trial of the spec; 0 if all finished and none failed, else 1."""
    spec = load_spec(spec_path)
    plans = plan_trials(spec)
    sweep_dir = options.out.resolve() / spec.name
    finished = _check_finished(sweep_dir, plans, options.resume)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(sweep_dir / SPEC_FILE, lambda h: h.write(yaml.safe_dump(spec.to_dict(), sort_keys=False).encode()))
    # Largest budgets first: the long trials start early and short ones fill the gaps at the end,
    # so fewer slots idle while the last trial runs (longest-processing-time-first scheduling).
    todo = sorted((p for p in plans if p not in finished), key=lambda p: -p.config.budget)
    mode = resolve_mode(options.wandb)
    where = options.address or "a local Ray"
    band = f" (spec.band keeps {len(plans)} of the grid's {len(expand(spec))})" if spec.band else ""
    print(f"sweep {spec.name}: {len(plans)} trials{band} ({len(finished)} finished before, {len(todo)} to run) on {where}; "
          f"W&B {mode or 'off'}; folder {sweep_dir}", flush=True)
    if todo:
        settings = WandbSettings(mode=mode, project=spec.wandb.project, entity=spec.wandb.entity,
                                 group=spec.name) if mode else None
        payloads = {p.trial_id: TrialPayload(trial_id=p.trial_id, config=p.config.to_dict(), resume=options.resume,
                                             trial_dir=str(sweep_dir / TRIALS_DIR / p.trial_id), wandb=settings,
                                             threads=max(1, int(spec.resources.cpus)))
                    for p in todo}
        _start_ray(options.address)
        try:
            callback = ProgressPrinter(spec, sweep_dir, plans, already_done=len(finished))
            _tuner(spec, sweep_dir, todo, payloads, callback).fit()
        finally:
            ray.shutdown()
    results = write_results(sweep_dir, spec.name, plans)
    table = sweep_status(sweep_dir, plans)
    print(format_status(spec.name, table))
    print(f"results: {results}")
    counts = table["total"].counts
    return 0 if counts["done"] + counts["diverged"] == len(plans) else 1
