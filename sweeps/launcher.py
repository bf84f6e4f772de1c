"""`grscale sweep run`: validate a spec, expand it, and run its unfinished trials under Ray Tune.

Layout of `<out>/<sweep>/`: spec.yaml (what was launched), plan.json (its trials), trials/<trial_id>/
(one scaling.train run folder each), tune/ (Tune's storage), results.parquet, and .lock, held by
the one `sweep run` working there. Resume is per trial, from the trial folders: finished trials
are skipped, the others continue from their own checkpoint; so a sweep also resumes after a
SIGKILL, which leaves Tune's experiment state behind.

SIGINT or SIGTERM (Ctrl-C, a scheduler's preemption) stops the sweep cleanly: every running trial
checkpoints at its next step and stops (see sweeps/trainable.py), no new trial starts, Ray shuts
down, and the command exits 130 / 143 printing the command that resumes it. A second signal stops
at once; trials then resume from their last checkpoint.
"""
from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shlex
import sys
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
# Tune's own SIGINT handler ends the run loop, kills the running trials unsaved and advises
# `Tuner.restore`; the sweep handles SIGINT itself (scaling.interrupts), so Tune must not take it over.
os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
# A failed trial is recorded in its folder and printed as one line (ProgressPrinter); Tune would
# also log the Ray traceback of every trial whose worker died.
os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")

import ray  # noqa: E402
import yaml  # noqa: E402
from ray import tune  # noqa: E402
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: E402

from scaling.files import atomic_write_text  # noqa: E402
from scaling.interrupts import StopOnSignal  # noqa: E402
from scaling.config import TrialConfig  # noqa: E402
from scaling.errors import GrscaleError  # noqa: E402
from scaling.schema import FINISHED, RUN_INFO_FILE, SPEC_FILE, STOP_FILE, TRIALS_DIR  # noqa: E402
from scaling.typed import differences  # noqa: E402
from sweeps.branching import planned_cost, spent_cost  # noqa: E402
from sweeps.check import plan_trials  # noqa: E402
from sweeps.grid import TrialPlan, expand  # noqa: E402
from sweeps.outcome import read_outcome, record_failure  # noqa: E402
from sweeps.ready import ReadyTrials  # noqa: E402
from sweeps.results import write_results  # noqa: E402
from sweeps.spec import SweepSpec, load_spec  # noqa: E402
from sweeps.status import (format_status, hold_sweep, planned, sweep_status, trial_folders,  # noqa: E402
                           unlisted_finished, write_plan)
from sweeps.trainable import StopFile, TrialPayload, run_trial  # noqa: E402
from sweeps.train_workers import concurrent_trials, trial_resources  # noqa: E402
from sweeps.wandb_logging import WandbSettings, resolve_mode  # noqa: E402

# fit() ends by reading every trial's Tune results into a ResultGrid, which the sweep does not use
# (the trial folders are its record); after a stop it warns about each trial that was about to
# start and never reported: nothing the user needs to know.
logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
# ... and at the end lists the trials that errored, by Tune's ids: their one-line failures named them already.
logging.getLogger("ray.tune.tune").addFilter(
    lambda record: not record.getMessage().startswith("Trials did not complete"))

DEFAULT_OUT = Path("runs")


@dataclass(frozen=True, kw_only=True)
class LaunchOptions:
    out: Path = DEFAULT_OUT
    address: str | None = None  # an existing Ray cluster; None starts a local Ray
    resume: bool = False
    wandb: bool = True


def resume_command(spec_path: Path, options: LaunchOptions) -> str:
    """The command that continues this sweep: the same folder, cluster and W&B choice, with --resume."""
    words = ["grscale", "sweep", "run", str(spec_path)]
    if options.out != DEFAULT_OUT:
        words += ["--out", str(options.out)]
    if options.address:
        words += ["--address", options.address]
    if not options.wandb:
        words.append("--no-wandb")
    return shlex.join([*words, "--resume"])


def _tune_dirname(trial) -> str:
    return trial.config["trial_id"]


class ProgressPrinter(tune.Callback):
    """One line per finished or interrupted trial; the results table is rewritten after each.
    It also knows which trials are running, for StopWhenIdle."""

    def __init__(self, spec: SweepSpec, sweep_dir: Path, plans: list[TrialPlan], already_done: int) -> None:
        self.spec, self.sweep_dir, self.plans = spec, sweep_dir, plans
        self.by_id = {p.trial_id: p for p in plans}
        self.done = already_done
        self.running: set[str] = set()

    def _ended(self, trial_id: str, row: dict) -> None:
        self.running.discard(trial_id)
        outcome = read_outcome(self.sweep_dir / TRIALS_DIR / trial_id)
        if outcome.state == "pending":  # the sweep was stopping: the trial returned before it started
            return
        if outcome.state not in FINISHED:
            print(f"      {trial_id}  {outcome.state}  {outcome.error or ''}", flush=True)
            return
        self.done += 1
        cfg = self.by_id[trial_id].config
        metric = f"test/{cfg.selection_metric}"
        detail = f"{metric}={row[metric]:.4f}" if isinstance(row.get(metric), float) else str(outcome.error)
        if cfg.branch.role == "trunk" and outcome.state == "done":  # not tested: its branches are
            detail = f"trunk: snapshots for {len(cfg.branch.snapshots)} branches"
        print(f"[{self.done}/{len(self.plans)}] {trial_id}  {outcome.state}  {detail}  "
              f"({row.get('wall_s') or 0:.1f} s)", flush=True)
        write_results(self.sweep_dir, self.spec.name, self.spec.select_on)

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.running.add(trial.config["trial_id"])

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._ended(trial.config["trial_id"], trial.last_result)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        """The trainable records its own errors; this catches what kills it (a worker that died)."""
        plan = self.by_id[trial.config["trial_id"]]
        trial_dir = self.sweep_dir / TRIALS_DIR / plan.trial_id
        if read_outcome(trial_dir).state not in FINISHED:
            # Tune has written the error to the trial's local error file (its storage copy comes later).
            try:
                error = Path(trial.error_file).read_text()
            except (OSError, TypeError):
                error = ""
            record_failure(trial_dir, plan.config, worker_death_line(error))
        self._ended(plan.trial_id, {})


def worker_death_line(error: str) -> str:
    """One line for a trial whose Ray worker process died under it, from the error text Tune recorded."""
    memory = re.search(r"was ([\d.]+ ?[KMGT]?B) used / ([\d.]+ ?[KMGT]?B) limit", error)
    if memory or "running low on memory" in error:
        usage = f" ({memory[1]} used of {memory[2]})" if memory else ""
        return (f"Ray's memory monitor killed the trial's worker: the node ran out of memory{usage}; run fewer "
                f"trials at once (max_concurrent_trials) or on a machine with more memory")
    if "actor died" in error or "worker process has died" in error or not error.strip():
        return ("the trial's Ray worker process died (killed by a signal or the kernel's out-of-memory killer, "
                "or crashed)")
    lines = [line for line in error.strip().splitlines() if not line.startswith("Failure # ")]
    return lines[0] if lines else "the trial's Ray worker failed"


class StopWhenIdle(tune.Stopper):
    """Ends the experiment once a stop was requested and no trial runs any more: the running ones
    first checkpoint and return by themselves (stopping them here would kill them unsaved), and the
    pending ones are then dropped unstarted."""

    def __init__(self, signals: StopOnSignal, printer: ProgressPrinter) -> None:
        self.signals, self.printer = signals, printer

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.signals.received is not None and not self.printer.running


# --- the sweep folder -----------------------------------------------------------------------------
def _ran_with(trial_dir: Path) -> dict | None:
    """The identity (config without runtime) a trial folder's run started with."""
    info = trial_dir / RUN_INFO_FILE
    if not info.exists():
        return None
    # Read as the trainer reads a checkpoint's: a config of an older layout names its moved fields.
    return TrialConfig.from_dict(json.loads(info.read_text())["config"], f"{info}: trial").identity()


@dataclass(frozen=True)
class FolderState:
    finished: list[TrialPlan]  # planned trials that finished: not rerun
    unlisted: list[str]  # finished trials the spec no longer lists: kept in the results


def check_folder(sweep_dir: Path, plans: list[TrialPlan], resume: bool) -> FolderState:
    """What the folder holds; without --resume any started trial is an error (results are never
    overwritten), and with it a trial whose config the spec has since changed is one too."""
    outcomes = {d.name: read_outcome(d).state for d in trial_folders(sweep_dir)}
    started = {name: state for name, state in outcomes.items() if state != "pending"}
    if started and not resume:
        finished = sum(state in FINISHED for state in started.values())
        counts = ((finished, "finished"), (len(started) - finished, "unfinished"))
        held = " and ".join(f"{n} {what}" for n, what in counts if n)
        raise GrscaleError(f"{sweep_dir} already holds {held} trial(s): pass --resume to continue that sweep "
                           f"(finished trials are kept), or choose another --out")
    for plan in plans:
        if plan.trial_id not in started:
            continue
        ran = _ran_with(sweep_dir / TRIALS_DIR / plan.trial_id)
        changed = differences(ran, plan.config.identity()) if ran is not None else []
        if changed:
            how = "finished" if started[plan.trial_id] in FINISHED else "started"
            raise GrscaleError(f"trial {plan.trial_id} {how} with a different config than the spec now gives "
                               f"({'; '.join(changed)}): restore the spec, or run the changed sweep under another "
                               f"--out or name")
    finished = [p for p in plans if outcomes.get(p.trial_id) in FINISHED]
    return FolderState(finished=finished, unlisted=unlisted_finished(sweep_dir, [planned(p) for p in plans]))


# --- a cluster's nodes must share the sweep folder ------------------------------------------------
@dataclass(frozen=True)
class Probe:
    node: str  # "hostname (ip)"
    path: Path  # the file its worker was asked to write into the sweep folder
    error: str | None = None  # why it could not


@ray.remote(num_cpus=0)
def _write_probe(path: str) -> str | None:
    try:
        Path(path).write_text("grscale sweep folder probe\n")
        return None
    except OSError as error:
        return f"{type(error).__name__}: {error.strerror or error}"


def probe_nodes(sweep_dir: Path, timeout_s: float = 120.0) -> list[Probe]:
    """A tiny task pinned to every alive node writes a probe file into the sweep folder."""
    # A fresh name each time: the driver never looked it up before, so no file system (NFS's
    # negative lookup cache) can answer from a stale "absent".
    token = secrets.token_hex(4)
    probes, refs = [], []
    for node in (n for n in ray.nodes() if n["Alive"]):
        path = sweep_dir / f".probe-{token}-{node['NodeID'][:8]}"
        strategy = NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
        refs.append(_write_probe.options(scheduling_strategy=strategy).remote(str(path)))
        probes.append(Probe(node=f"{node['NodeManagerHostname']} ({node['NodeManagerAddress']})", path=path))
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
    return [Probe(probe.node, probe.path, ray.get(ref) if ref in ready else f"no answer within {timeout_s:.0f} s")
            for probe, ref in zip(probes, refs)]


def check_probes(sweep_dir: Path, probes: list[Probe]) -> None:
    """Every node wrote its probe where the driver sees it; else one error naming the node and the folder."""
    try:
        for probe in probes:
            if probe.error is None and probe.path.exists():
                continue
            why = (f"its workers cannot write there ({probe.error})" if probe.error
                   else "what its workers write there does not reach this machine")
            raise GrscaleError(f"node {probe.node}: {why}: the sweep folder {sweep_dir} must be on a file system "
                               f"every node shares, at the same path (choose such an --out)")
    finally:
        for probe in probes:
            probe.path.unlink(missing_ok=True)


# --- the run ----------------------------------------------------------------------------------------
def _start_ray(address: str | None) -> None:
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    else:
        # "local": always a new instance; a bare init would join any cluster last started on this machine.
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING, _node_ip_address="127.0.0.1")


def _tuner(spec: SweepSpec, sweep_dir: Path, todo: list[TrialPlan], payloads: dict, printer: ProgressPrinter,
           stopper: StopWhenIdle) -> tune.Tuner:
    trainable = tune.with_resources(tune.with_parameters(run_trial, payloads=payloads), trial_resources(spec.resources))
    ready = ReadyTrials(todo, sweep_dir / TRIALS_DIR, StopFile(sweep_dir / STOP_FILE))
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=ready,
                                    num_samples=len(todo), max_concurrent_trials=concurrent_trials(spec),
                                    # A process per trial would start torch again for each (2 s); a reused
                                    # one hands back its freed memory between trials (sweeps/trainable.py).
                                    reuse_actors=True,
                                    trial_dirname_creator=_tune_dirname),
        run_config=tune.RunConfig(storage_path=str(sweep_dir), name="tune", verbose=0, stop=stopper,
                                  callbacks=[printer, tune.logger.JsonLoggerCallback()],
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )


def _run_trials(spec: SweepSpec, sweep_dir: Path, plans: list[TrialPlan], todo: list[TrialPlan],
                options: LaunchOptions, already_done: int) -> StopOnSignal:
    """Run `todo` under Ray Tune until they end or a signal stops them; what was received says which."""
    mode = resolve_mode(options.wandb)
    settings = WandbSettings(mode=mode, project=spec.wandb.project, entity=spec.wandb.entity,
                             group=spec.name, select_on=spec.select_on) if mode else None
    stop = StopFile(sweep_dir / STOP_FILE)
    payloads = {p.trial_id: TrialPayload(trial_id=p.trial_id, config=p.config.to_dict(), resume=options.resume,
                                         trial_dir=str(sweep_dir / TRIALS_DIR / p.trial_id),
                                         stop_file=str(stop.path), wandb=settings, resources=spec.resources)
                for p in todo}
    _start_ray(options.address)
    # Installed after ray.init: it replaces the SIGTERM handler Ray's core worker installs (which
    # prints a C++ stack and exits).
    signals = StopOnSignal("every running trial checkpoints at its next step and stops; no new trial starts "
                           "(send it again to stop at once)",
                           "stopping at once (trials resume from their last checkpoint)", on_first=stop.request)
    try:
        if options.address:
            probes = probe_nodes(sweep_dir)
            check_probes(sweep_dir, probes)
            print(f"sweep folder shared by the cluster's {len(probes)} node(s)", flush=True)
        printer = ProgressPrinter(spec, sweep_dir, plans, already_done)
        _tuner(spec, sweep_dir, todo, payloads, printer, StopWhenIdle(signals, printer)).fit()
    except KeyboardInterrupt:
        if not signals.at_once:  # not the second signal's
            raise
    except RuntimeError as error:
        # Ray's memory monitor killing a trial's actor outside its training task (while it starts)
        # raises an error Tune's run loop does not handle: the loop ends, every trial stops where it is.
        if not isinstance(error.__cause__, ray.exceptions.OutOfMemoryError):
            raise
        print(f"the sweep stopped: {worker_death_line(str(error.__cause__))}; unfinished trials resume from their "
              f"last checkpoint with --resume", file=sys.stderr, flush=True)
    finally:
        ray.shutdown()
        signals.restore()
        stop.clear()
    return signals


def run_sweep(spec_path: Path, options: LaunchOptions) -> int:
    """Run every unfinished trial of the spec: 0 if all finished and none failed, 130 / 143 if a
    signal stopped it, else 1."""
    spec = load_spec(spec_path)
    plans = plan_trials(spec)
    sweep_dir = options.out.resolve() / spec.name
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with hold_sweep(sweep_dir):
        return _run_held(spec, spec_path, plans, sweep_dir, options)


def _run_held(spec: SweepSpec, spec_path: Path, plans: list[TrialPlan], sweep_dir: Path,
              options: LaunchOptions) -> int:
    folder = check_folder(sweep_dir, plans, options.resume)
    StopFile(sweep_dir / STOP_FILE).clear()  # left by a sweep killed while it stopped: no trial would run
    atomic_write_text(sweep_dir / SPEC_FILE, yaml.safe_dump(spec.to_dict(), sort_keys=False))
    trials = [planned(p) for p in plans]
    write_plan(sweep_dir, trials)
    # Largest budgets first: the long trials start early and short ones fill the gaps at the end,
    # so fewer slots idle while the last trial runs (longest-processing-time-first scheduling).
    todo = sorted((p for p in plans if p not in folder.finished), key=lambda p: -p.config.budget)
    where = options.address or "a local Ray"
    band = f" (spec.band keeps {len(plans)} of the grid's {len(expand(spec))})" if spec.band else ""
    print(f"sweep {spec.name}: {len(plans)} trials{band} ({len(folder.finished)} finished before, {len(todo)} to run) "
          f"on {where}; W&B {resolve_mode(options.wandb) or 'off'}; folder {sweep_dir}", flush=True)
    if spec.schedule is not None:
        print(planned_cost(plans).line("planned"), flush=True)
    if folder.unlisted:
        print(f"{len(folder.unlisted)} finished trial(s) the spec no longer lists, kept in the results: "
              f"{', '.join(folder.unlisted)}", flush=True)
    signals = _run_trials(spec, sweep_dir, plans, todo, options, len(folder.finished)) if todo else None
    results = write_results(sweep_dir, spec.name, spec.select_on)
    table = sweep_status(sweep_dir, trials, live=False)
    print(format_status(spec.name, table, folder.unlisted))
    print(f"results: {results}")
    spent = spent_cost(results) if spec.schedule is not None else None
    if spent is not None:
        print(spent.line("spent by the finished trials"))
    if signals is not None and signals.received is not None:
        how = "stopped at once" if signals.at_once else "stopped; its running trials checkpointed"
        print(f"sweep {spec.name}: {how} ({signals.received})\nresume with: {resume_command(spec_path, options)}",
              file=sys.stderr)
        return signals.exit_code
    counts = table["total"].counts
    return 0 if counts["done"] + counts["diverged"] == len(plans) else 1
