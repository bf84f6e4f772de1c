"""The data-parallel ranks of one trial: what each rank draws, and what they add up or agree on.

A trial with `runtime.workers` = N runs as N ranks of one torch.distributed group (gloo on CPUs,
NCCL on GPUs; sweeps/train_workers.py starts them under Ray Train). The global batch is the config's:
every rank draws the same shuffled order and takes its contiguous share of each batch. Per step the
ranks add up, in one all-reduce, the loss, the predictions it averages over, the FLOPs and tokens of
their real jagged sequences; each rank's loss is weighted by its share of the predictions and the
gradients are summed, so the step is the one a single process takes on the whole batch (up to the
order of the additions). Decisions that end or pause the loop (a stop request, a checkpoint) are
taken together, or a rank would wait forever in a collective the others never reach.

Rank 0 keeps a single-process trial's seeds, so a one-worker trial is exactly the trial it always
was; rank r > 0 draws its dropout and negatives from seeds derived from (seed, r).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist

from scaling.flops import FlopCount


@dataclass(frozen=True)
class StepTotals:
    """One training step summed over the ranks."""

    loss: float  # the batch's mean loss over all its predictions
    examples: int  # predictions over all ranks
    useful: float  # FLOPs (jagged, causal) over all ranks
    executed: float
    tokens: int
    weight: float  # this rank's share of the predictions: its mean loss times this is its part of the batch's


@dataclass(frozen=True)
class Ranks:
    """This process's place among the trial's ranks (rank 0 of 1 for an ordinary trial)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")  # where collectives' tensors live (CUDA for NCCL)

    @classmethod
    def current(cls, device: torch.device | None = None) -> "Ranks":
        """The initialised torch.distributed group's ranks (one rank where there is none)."""
        if not (dist.is_available() and dist.is_initialized()):
            return cls()
        if device is None:
            device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" \
                else torch.device("cpu")
        return cls(dist.get_rank(), dist.get_world_size(), device)

    @property
    def is_chief(self) -> bool:
        """Rank 0: the one that writes the trial's files and its W&B run."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world_size > 1

    def seed(self, seed: int) -> int:
        """This rank's seed for a stream seeded `seed` in one process: `seed` itself on rank 0."""
        if self.rank == 0:
            return seed
        return int(np.random.SeedSequence([seed, self.rank]).generate_state(1, np.uint32)[0])

    def shard(self, rows: np.ndarray) -> np.ndarray:
        """This rank's contiguous share of `rows` (sizes differ by at most one; empty where rows are few)."""
        if not self.parallel:
            return rows
        return np.array_split(rows, self.world_size)[self.rank]

    # --- collectives (each a no-op on one rank) ----------------------------------------------
    def sum(self, values: Sequence[float]) -> list[float]:
        """Each value summed over the ranks (float64)."""
        if not self.parallel:
            return [float(v) for v in values]
        tensor = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def any(self, flag: bool) -> bool:
        return bool(self.sum([1.0 if flag else 0.0])[0] > 0)

    def gather(self, value: Any) -> list[Any]:
        """Every rank's `value` (picklable), in rank order."""
        if not self.parallel:
            return [value]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out

    def barrier(self) -> None:
        if self.parallel:
            dist.barrier()

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Rank 0's parameters and buffers on every rank (the ranks start from one model)."""
        if not self.parallel:
            return
        with torch.no_grad():
            for tensor in [*module.parameters(), *module.buffers()]:
                on_device = tensor.data.to(self.device)
                dist.broadcast(on_device, src=0)
                tensor.data.copy_(on_device)

    def step_totals(self, loss: torch.Tensor | None, examples: int, count: FlopCount, tokens: int) -> StepTotals:
        """The step's loss, predictions, FLOPs and tokens over all ranks, in one all-reduce. `loss` is
        this rank's mean loss (None where its share of the batch is empty)."""
        value = float(loss.detach()) if loss is not None else 0.0
        if not self.parallel:
            return StepTotals(value, examples, count.useful, count.executed, tokens, 1.0)
        loss_sum, total, useful, executed, all_tokens = self.sum(
            [value * examples, examples, count.useful, count.executed, tokens])
        mean = loss_sum / total if total else float("nan")
        return StepTotals(mean, int(total), useful, executed, int(all_tokens), examples / total if total else 0.0)

    def sum_gradients(self, parameters: Sequence[torch.nn.Parameter]) -> None:
        """Gradients summed over the ranks, in one flat all-reduce. A parameter no rank computed a
        gradient for keeps None (the optimizer skips it, as in one process); one that only some ranks
        reached (a rank whose share of the batch was empty) counts zeros from the others."""
        if not self.parallel:
            return
        params = list(parameters)
        parts = [p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), dtype=p.dtype, device=p.device)
                 for p in params]
        reached = torch.tensor([p.grad is not None for p in params], dtype=parts[0].dtype, device=parts[0].device)
        flat = torch.cat([*parts, reached]).to(self.device)
        dist.all_reduce(flat)
        flat = flat.to(params[0].device)
        reached_any = (flat[-len(params):] > 0).tolist()
        offset = 0
        for p, any_rank in zip(params, reached_any):
            chunk = flat[offset:offset + p.numel()]
            offset += p.numel()
            p.grad = chunk.view_as(p).clone() if any_rank else None

    def agree(self, local: Callable[[], str | None], elsewhere: str) -> str | None:
        """A reason every rank acts on if any rank has one: this rank's, else `elsewhere`."""
        reason = local()
        if not self.parallel:
            return reason
        return (reason or elsewhere) if self.any(reason is not None) else None

    # --- random state, for checkpoints ---------------------------------------------------------
    def gather_rng(self, generator: torch.Generator, device: torch.device) -> list[dict[str, Any]]:
        """Every rank's random state (its negatives' generator, torch's CPU and CUDA RNG), rank order."""
        state = {"generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                 "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else None}
        return self.gather(state)

    def restore_rng(self, states: list[dict[str, Any]], generator: torch.Generator) -> None:
        state = states[self.rank]
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
