import os
from pathlib import Path

import pytest

# Read once at collection, before any test isolates GRSCALE_DATA_DIR with monkeypatch.
_REAL_DATA_DIR = os.environ.get("GRSCALE_DATA_DIR")


@pytest.fixture
def real_data_dir() -> Path:
    """The folder of real datasets (CI: ../shared/data); skips where it is not configured."""
    if not _REAL_DATA_DIR or not Path(_REAL_DATA_DIR).is_dir():
        pytest.skip("GRSCALE_DATA_DIR with the real datasets is not set")
    return Path(_REAL_DATA_DIR)
