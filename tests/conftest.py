"""Suite-wide pytest hooks. GPU tests are skipped lazily: CUDA is queried only when a
collected test carries the `gpu` marker, never at import time.

Kernel tests run the Triton code on the CPU interpreter unless TRITON_INTERPRET is set already
(TRITON_INTERPRET=0 on a GPU machine runs them on CUDA). Triton reads the variable when a kernel
is defined, so it is set here, before any test module (of any folder) imports kernels.triton."""
from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

# Read once at collection, before any test isolates GRSCALE_DATA_DIR with monkeypatch.
_REAL_DATA_DIR = os.environ.get("GRSCALE_DATA_DIR")


@pytest.fixture
def real_data_dir() -> Path:
    """The folder of real datasets (CI: ../shared/data); skips where it is not configured."""
    if not _REAL_DATA_DIR or not Path(_REAL_DATA_DIR).is_dir():
        pytest.skip("GRSCALE_DATA_DIR with the real datasets is not set")
    return Path(_REAL_DATA_DIR)


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
