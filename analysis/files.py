"""The analysis' outputs written whole: each to a temporary file beside its target, then renamed
into place (scaling.data.cache.atomic_write), so an interruption never leaves half a report,
fits.json, trials.csv or figure."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import BinaryIO, Callable

from scaling.data.cache import atomic_write


def write_file(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    atomic_write(path, write)
    return path


def write_text(path: Path, text: str) -> Path:
    return write_file(path, lambda handle: handle.write(text.encode()))


def copy_file(source: Path, path: Path) -> Path:
    with open(source, "rb") as src:
        return write_file(path, lambda handle: shutil.copyfileobj(src, handle))
