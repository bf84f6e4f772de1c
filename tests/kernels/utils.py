"""Comparison helpers for kernel tests."""
from __future__ import annotations

import os

import torch

# Where the Triton tests run: the CPU interpreter, or CUDA when TRITON_INTERPRET=0.
DEVICE = "cpu" if os.environ.get("TRITON_INTERPRET") == "1" else "cuda"


def assert_close(name: str, actual: torch.Tensor, expected: torch.Tensor, *, atol: float,
                 rtol: float = 0.0, max_report: int = 5) -> None:
    """Elementwise |actual - expected| <= atol + rtol |expected|; NaN/inf anywhere fails.
    On failure the message lists how many elements disagree and the worst few by index."""
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    actual, expected = actual.detach().double().cpu(), expected.detach().double().cpu()
    err = (actual - expected).abs()
    bound = atol + rtol * expected.abs()
    bad = ~(err <= bound)  # NaN compares False: an unwritten (poisoned) element counts as bad
    if not bool(bad.any()):
        return
    worst = torch.where(bad, err.nan_to_num(float("inf")), -1.0).flatten().argsort(descending=True)
    lines = [f"{name}: {int(bad.sum())}/{bad.numel()} elements differ "
             f"(atol={atol:.2e}, rtol={rtol:.2e}, max err {err.nan_to_num(float('inf')).max():.3e})"]
    for flat in worst[:min(max_report, int(bad.sum()))].tolist():
        index = tuple(torch.unravel_index(torch.tensor(flat), actual.shape))
        index = tuple(int(i) for i in index)
        lines.append(f"  at {index}: got {actual[index]:.6g}, expected {expected[index]:.6g}")
    raise AssertionError("\n".join(lines))
