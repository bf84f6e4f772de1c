"""Where a trial's evaluation rows go: metrics.jsonl always, plus any reporter a sweep connects
(Ray Tune, W&B). A reporter is anything with `report(row: dict) -> None`."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Protocol

from scaling.files import atomic_write_text
from scaling.schema import STATUS_FILE


class Reporter(Protocol):
    def report(self, row: dict[str, Any]) -> None: ...


def _clean(value: Any) -> Any:
    """JSON has no NaN or inf: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class JsonlReporter:
    """Appends one JSON line per row and syncs it, so a crash loses no finished evaluation; a write
    that fails (a full disk) is cut back off, so the file never ends in half a row."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def report(self, row: dict[str, Any]) -> None:
        line = (json.dumps({k: _clean(v) for k, v in row.items()}) + "\n").encode()
        with open(self.path, "ab") as handle:
            size = handle.tell()
            try:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            except OSError:
                handle.truncate(size)
                raise

    def keep_first(self, num_rows: int) -> None:
        """Drop rows written after the checkpoint a resumed trial restarts from."""
        if not self.path.exists():
            return
        lines = self.path.read_text().splitlines(keepends=True)[:num_rows]
        atomic_write_text(self.path, "".join(lines))


def write_status(run_dir: Path, status: str, error: str | None, flops: float, step: int) -> None:
    """A run's status.json once it stops (done, diverged, failed or interrupted), read by `sweep status`,
    the results table and `--resume`."""
    payload = {"status": status, "error": error, "flops": flops, "step": step}
    atomic_write_text(Path(run_dir) / STATUS_FILE, json.dumps(payload))


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl ([] where there is none yet)."""
    if not Path(path).exists():
        return []
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]
