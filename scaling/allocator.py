"""Keep freed memory inside the process during CPU training (glibc's malloc only).

A CPU training step allocates and frees the same large activations every step (HSTU's
[B, H, L, L] attention scores are 40 MB at the paper's ML-1M settings). By default glibc serves
such blocks with mmap and hands them back to the OS on free, and trims the heap top, so every
step page-faults its activations in again. Serving them from the heap and never trimming keeps
the process at its peak size, which training reaches on its first step anyway; measured on the
2-core CPU: hstu-large-ml1m 2.0 -> 0.96 s per step (the epoch times in benchmarks/train_throughput.md).

A process that runs several trials in turn (a reused Ray Tune actor) hands the kept memory back
between them (`return_freed_memory`): otherwise each trial's differently sized blocks extend the
heap past what the last one freed, and the process only grows (two reused actors of the CPU study
reached 12.5 and 8.7 GB where one trial peaks at 2 GB; six ML-1M trials in one process went 0.85 ->
1.41 GB, and stayed at 0.60 GB with the memory handed back after each).
"""
from __future__ import annotations

import ctypes
import sys

# mallopt parameters from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_MAX = -4

_INT_MAX = 2**31 - 1


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - musl and others have neither worth calling
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory() -> bool:
    """Stop glibc from returning freed blocks to the OS; False where the C library is not glibc."""
    libc = _glibc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    settings = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, _INT_MAX), (M_TOP_PAD, 256 << 20))
    return all(mallopt(param, value) == 1 for param, value in settings)


def return_freed_memory() -> bool:
    """Hand every free page of the heap back to the OS now (the settings stay); False where not glibc."""
    libc = _glibc()
    return libc is not None and libc.malloc_trim(0) in (0, 1)
