"""A device's peak FLOP/s, the denominator of MFU (model FLOPs utilisation = useful training FLOP/s
over the peak of the devices that ran them).

On a GPU the peak is the vendor's dense figure for the precision the matmuls run in (fp32 without
TF32, as torch runs fp32 matmuls by default, or bf16 tensor cores), from a table of known devices.
A CPU has no such figure: its peak is *measured*, as the fp32 matmul rate of this process on its
torch threads, and rows say so (`mfu_basis`). CPU MFU is therefore relative to what a large matmul
achieves here, not to a theoretical peak.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import torch

# Dense FLOP/s by device name fragment: (fp32 without TF32, bf16 tensor cores), vendor data sheets.
GPU_PEAKS = {
    "H200": (67e12, 989e12),
    "H100": (67e12, 989e12),
    "A100": (19.5e12, 312e12),
    "L40S": (91.6e12, 362e12),
    "A10": (31.2e12, 125e12),
}
MATMUL_SIZE = 1024  # the measured CPU matmul is [n, n] x [n, n]
MATMUL_SECONDS = 0.2  # measured for about this long (best of its repetitions)


@dataclass(frozen=True)
class Peak:
    flops_per_s: float  # NaN where the device is unknown
    basis: str  # what the figure is: "measured fp32 matmul (cpu, 2 threads)", "H200 bf16 data sheet"


@functools.lru_cache(maxsize=None)
def measured_cpu_matmul(threads: int, size: int = MATMUL_SIZE, seconds: float = MATMUL_SECONDS) -> float:
    """FLOP/s of the best of repeated fp32 [size, size] matmuls on this process's torch threads."""
    # A private generator: the trial's own random streams (dropout) must not depend on whether this
    # process measured its peak before.
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(size, size, generator=generator), torch.randn(size, size, generator=generator)
    a @ b  # warm-up: threads and allocator
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2.0 * size ** 3 / best


def device_peak(device: torch.device, precision: str) -> Peak:
    """This process's device's peak FLOP/s for training at `precision` ("fp32" | "bf16")."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for fragment, (fp32, bf16) in GPU_PEAKS.items():
            if fragment in name:
                return Peak(bf16 if precision == "bf16" else fp32, f"{fragment} {precision} data sheet")
        return Peak(float("nan"), f"unknown device {name}")
    threads = torch.get_num_threads()
    return Peak(measured_cpu_matmul(threads), f"measured fp32 matmul (cpu, {threads} threads)")
