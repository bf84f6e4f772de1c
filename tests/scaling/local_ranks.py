"""A trial on N local processes joined in a gloo group, without Ray: the ranks' arithmetic tested
apart from Ray Train's start-up (sweeps/train_workers.py runs the same Trainer under Ray)."""
from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from scaling.config import TrialConfig


class StopAtStep:
    """should_stop: asks the trial to stop once it has taken `step` steps (as a signal would)."""

    def __init__(self, trainer_ref: list, step: int) -> None:
        self.trainer_ref, self.step = trainer_ref, step

    def __call__(self) -> str | None:
        return "SIGTERM" if self.trainer_ref and self.trainer_ref[0].state.step >= self.step else None


def _rank_main(rank: int, world: int, port: int, config: dict, out_dir: str, resume: bool,
               stop_at: int | None) -> None:
    from scaling.distributed import Ranks
    from scaling.train import trial_trainer

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)  # the ranks share this machine's cores
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        ref: list = []
        stop = StopAtStep(ref, stop_at) if stop_at is not None else None
        trainer = trial_trainer(TrialConfig.from_dict(config), Path(out_dir), should_stop=stop, ranks=Ranks.current())
        ref.append(trainer)
        trainer.run(resume=resume)
        dist.barrier()  # no rank leaves the group while another still works in it
    finally:
        dist.destroy_process_group()
    # Reached only when the rank succeeded: leave without the interpreter's teardown, where gloo's
    # threads can still abort the process ("terminate called without an active exception", seen
    # once in a full-suite run after every result was written).
    os._exit(0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_ranks(cfg: TrialConfig, out_dir: Path, workers: int, resume: bool = False,
              stop_at: int | None = None) -> None:
    """Train `cfg` (its runtime.workers set to `workers`) in `out_dir` on `workers` spawned gloo ranks,
    stopping at step `stop_at` if given."""
    cfg = dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, workers=workers))
    mp.spawn(_rank_main, args=(workers, _free_port(), cfg.to_dict(), str(out_dir), resume, stop_at),
             nprocs=workers, join=True)
