"""Suite-wide pytest hooks. GPU tests are skipped lazily: CUDA is queried only when a
collected test carries the `gpu` marker, never at import time.

Kernel tests run the Triton code on the CPU interpreter unless TRITON_INTERPRET is set already
(TRITON_INTERPRET=0 on a GPU machine runs them on CUDA). Triton reads the variable when a kernel
is defined, so it is set here, before any test module (of any folder) imports kernels.triton."""
from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in gpu_items:
        item.add_marker(skip)
