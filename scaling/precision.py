"""The training step's numeric precision (runtime.precision): fp32, or bf16 autocast on CUDA.

bf16 runs the forward (and so the backward) of the training step under torch.autocast with bf16
matmuls while the weights, their gradients and AdamW's state stay fp32 (the master weights);
evaluation always runs in fp32. On a CPU the trainer refuses bf16 rather than ignore it: a
throughput or MFU figure labelled bf16 that ran in fp32 would mislead.
"""
from __future__ import annotations

import contextlib

import torch

from scaling.errors import GrscaleError


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse, in one line, a precision the resolved device cannot run."""
    if precision == "bf16" and device.type != "cuda":
        raise GrscaleError(f"runtime.precision: bf16 autocast runs on CUDA only, and this trial runs on "
                           f"{device.type}: use fp32")


def training_precision(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context the training forward runs in."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
