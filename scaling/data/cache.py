"""Prepared arrays cached on disk, keyed by the source file's sha256 and the preprocessing version.

A changed source file hashes differently, so it is never served stale; files are written to a
temporary name and renamed, so a failure never leaves half a file behind.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

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


def user_file_mode() -> int:
    """The mode open() gives a new file under the process's umask (0o644 under umask 0o022).

    mkstemp creates its files 0o600, private to the user; a file renamed into place from one
    should read like any other the user writes. The umask can only be read by setting it: it is
    set to 0o077 for that instant, so a file another thread creates meanwhile is not opened up.
    """
    umask = os.umask(0o077)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: Path, write) -> None:
    """Call write(handle) on a temporary file beside `path`, then rename it into place.

    The file gets the user's usual mode (see user_file_mode), not mkstemp's 0o600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(tmp, user_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
