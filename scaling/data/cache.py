"""Prepared arrays cached on disk, keyed by the source file's sha256 and the preprocessing version.

A changed source file hashes differently, so it is never served stale; files are written whole
(scaling.files.atomic_write), so a failure never leaves half a file behind.
"""
from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np

from scaling.files import atomic_write

# Bump when preprocessing changes what it produces: old cache entries are then ignored.
PREPROCESS_VERSION = 1


def cache_root() -> Path:
    if os.environ.get("GRSCALE_CACHE_DIR"):
        return Path(os.environ["GRSCALE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "grscale"


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def prepared_path(name: str, source_sha256: str, variant: str = "") -> Path:
    suffix = f"-{variant}" if variant else ""
    return cache_root() / "prepared" / f"{name}-{source_sha256[:20]}{suffix}-v{PREPROCESS_VERSION}.npz"


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    atomic_write(path, lambda handle: np.savez(handle, **arrays))


def load_arrays(path: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None if absent or unreadable (a corrupt entry is removed)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        path.unlink(missing_ok=True)
        return None
