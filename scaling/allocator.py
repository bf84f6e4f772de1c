"""Keep freed memory inside the process during CPU training (glibc's malloc only).

A CPU training step allocates and frees the same large activations every step (HSTU's
[B, H, L, L] attention scores are 40 MB at the paper's ML-1M settings). By default glibc serves
such blocks with mmap and hands them back to the OS on free, and trims the heap top, so every
step page-faults its activations in again. Serving them from the heap and never trimming keeps
the process at its peak size, which training reaches on its first step anyway; measured on the
2-core CPU: hstu-large-ml1m 2.0 -> 0.96 s per step (the epoch times in benchmarks/train_throughput.md).
"""
from __future__ import annotations

import ctypes
import sys

# mallopt parameters from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_MAX = -4

_INT_MAX = 2**31 - 1


def keep_freed_memory() -> bool:
    """Stop glibc from returning freed blocks to the OS; False where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt worth setting
        return False
    settings = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, _INT_MAX), (M_TOP_PAD, 256 << 20))
    return all(mallopt(param, value) == 1 for param, value in settings)
