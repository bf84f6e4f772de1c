"""Files written whole: each to a temporary file beside its target, then renamed into place, so an
interruption or a full disk never leaves half a status, table, checkpoint or report behind.
Standard library only: `grscale sweep status` and the analysis use it without numpy or torch."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def user_file_mode() -> int:
    """The mode open() gives a new file under the process's umask (0o644 under umask 0o022).

    mkstemp creates its files 0o600, private to the user; a file renamed into place from one
    should read like any other the user writes. The umask can only be read by setting it: it is
    set to 0o077 for that instant, so a file another thread creates meanwhile is not opened up.
    """
    umask = os.umask(0o077)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call write(handle) on a temporary file beside `path`, then rename it into place; returns `path`.

    The file gets the user's usual mode (see user_file_mode), not mkstemp's 0o600.
    """
    path = Path(path)
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
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda handle: handle.write(text.encode()))


def atomic_copy(source: Path, path: Path) -> Path:
    with open(source, "rb") as src:
        return atomic_write(path, lambda handle: shutil.copyfileobj(src, handle))
