"""Prepared arrays cached on disk, keyed by the source's sha256 and the preprocessing version.

An entry is a folder of .npy files, memory-mapped on load: processes on one machine (Ray workers)
share one copy in the page cache instead of each reading its own. A changed source hashes
differently, so it is never served stale; an entry is built in a temporary folder beside its place
and renamed into it whole, so a failure or an interruption never leaves half an entry behind.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from scaling.files import atomic_write_text, user_file_mode

# Bump when preprocessing or the entry's layout changes: old entries are then ignored.
# 2: a folder of memory-mapped .npy files (1 was one .npz archive, read whole).
PREPROCESS_VERSION = 2


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


def remembered_digest(path: Path) -> str:
    """The file's sha256, hashed once per version of the file: the digest is kept under the cache
    keyed by the file's path, size, modification time and inode, so a warm load of a
    gigabyte-sized log does not read it all again (any write to the file changes its mtime)."""
    stat = path.stat()
    key = f"{path.absolute()}\0{stat.st_size}\0{stat.st_mtime_ns}\0{stat.st_ino}"
    memo = cache_root() / "digests" / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"
    try:
        return json.loads(memo.read_text())["sha256"]
    except (OSError, ValueError, KeyError):
        pass
    sha256 = file_digest(path)
    atomic_write_text(memo, json.dumps({"path": str(path.absolute()), "sha256": sha256}))
    return sha256


def prepared_path(name: str, source_sha256: str, variant: str = "") -> Path:
    suffix = f"-{variant}" if variant else ""
    return cache_root() / "prepared" / f"{name}-{source_sha256[:20]}{suffix}-v{PREPROCESS_VERSION}"


@contextmanager
def building(path: Path) -> Iterator[Path]:
    """A temporary folder beside `path` to write an entry into, renamed to `path` when the block ends
    and removed if it raises. Where another process put the entry in place first, ours is dropped."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        mode = user_file_mode()
        os.chmod(tmp, mode | (mode & 0o444) >> 2)  # a folder: searchable wherever it is readable
        try:
            os.rename(tmp, path)
        except OSError:
            if not path.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with building(path) as folder:
        for key, value in arrays.items():
            np.save(folder / f"{key}.npy", value)


def load_arrays(path: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, memory-mapped read-only, or None if absent or unreadable (a corrupt entry is removed)."""
    if not path.is_dir():
        return None
    try:
        arrays = {file.stem: np.load(file, mmap_mode="r", allow_pickle=False) for file in path.glob("*.npy")}
    except (OSError, ValueError, EOFError):
        arrays = {}
    if not arrays:
        shutil.rmtree(path, ignore_errors=True)
        return None
    return arrays
