"""Parsers from the official file formats to one raw interaction log (ids not yet remapped).

Fast path: pandas' C parser over the whole file. Where it fails or finds a hole, a line-by-line
scan finds the first bad line, so the error names the file, the line number and the line.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from scaling.errors import GrscaleError


@dataclass(frozen=True)
class RawLog:
    """Interactions in file order. Ids are the source's (ints or strings), not yet contiguous."""

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray  # int64
    ratings: np.ndarray  # float32 (NaN where the format has none)


def _malformed(path: Path, lineno: int, line: str, expected: str) -> GrscaleError:
    return GrscaleError(f"{path}:{lineno}: malformed line {line!r} (expected {expected})")


def _scan_for_bad_line(path: Path, check: Callable[[str], bool], expected: str, skip: int = 0) -> None:
    """Raise for the first line `check` rejects; blank lines are allowed, as in the fast path."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for lineno, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if lineno <= skip or not line.strip():
                continue
            if not check(line):
                raise _malformed(path, lineno, line, expected)


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _is_float(text: str) -> bool:
    try:
        return np.isfinite(float(text))
    except ValueError:
        return False


def _numeric_fields(sep: str, kinds: str) -> Callable[[str], bool]:
    """A line checker: fields split by `sep`, one per kind ('i' int, 'f' float, 's' non-empty)."""
    checkers = {"i": _is_int, "f": _is_float, "s": lambda t: bool(t.strip())}

    def check(line: str) -> bool:
        fields = line.split(sep)
        return len(fields) == len(kinds) and all(checkers[k](f) for k, f in zip(kinds, fields))

    return check


def _read_table(path: Path, data: bytes | Path, sep: str, kinds: str, expected: str, header: bool,
                scan_sep: str) -> pd.DataFrame:
    dtypes = {"i": "int64", "f": "float64", "s": "str"}
    names = [f"c{i}" for i in range(len(kinds))]
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        frame = pd.read_csv(
            source, sep=sep, header=None, names=names, engine="c", skiprows=1 if header else 0,
            dtype={n: dtypes[k] for n, k in zip(names, kinds)}, na_filter=True,
        )
        if not frame.notna().all(axis=None):
            raise ValueError("missing fields")
    except (ValueError, pd.errors.ParserError):
        _scan_for_bad_line(path, _numeric_fields(scan_sep, kinds), expected, skip=1 if header else 0)
        raise GrscaleError(f"{path}: could not be parsed as {expected}") from None
    if frame.empty:
        raise GrscaleError(f"{path}: no interactions in the file")
    return frame


def _ratings_log(frame: pd.DataFrame) -> RawLog:
    return RawLog(
        users=frame["c0"].to_numpy(),
        items=frame["c1"].to_numpy(),
        timestamps=frame["c3"].to_numpy(np.int64),
        ratings=frame["c2"].to_numpy(np.float32),
    )


def parse_tsv_ratings(path: Path) -> RawLog:
    """MovieLens 100K u.data: user<TAB>item<TAB>rating<TAB>timestamp."""
    expected = "4 tab-separated fields: user item rating timestamp"
    return _ratings_log(_read_table(path, path, "\t", "iifi", expected, False, "\t"))


def parse_ml1m_ratings(path: Path) -> RawLog:
    """MovieLens 1M ratings.dat: user::item::rating::timestamp."""
    expected = "user::item::rating::timestamp"
    # pandas' C parser takes one-character separators only: swap '::' for a tab first.
    data = path.read_bytes().replace(b"::", b"\t")
    return _ratings_log(_read_table(path, data, "\t", "iifi", expected, False, "::"))


def parse_ml20m_ratings(path: Path) -> RawLog:
    """MovieLens 20M ratings.csv with its header userId,movieId,rating,timestamp."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        first = handle.readline().strip()
    if first != "userId,movieId,rating,timestamp":
        raise _malformed(path, 1, first, "the header userId,movieId,rating,timestamp")
    expected = "userId,movieId,rating,timestamp"
    return _ratings_log(_read_table(path, path, ",", "iifi", expected, True, ","))


def parse_amazon_ratings(path: Path) -> RawLog:
    """SNAP Amazon ratings_<Category>.csv: user,item,rating,timestamp, no header, string ids."""
    expected = "user,item,rating,timestamp"
    return _ratings_log(_read_table(path, path, ",", "ssfi", expected, False, ","))


def parse_s3rec_sequences(path: Path) -> RawLog:
    """S3-Rec format: `user item1 item2 ...` per line, items in time order, no timestamps.

    The position in the line stands in for the timestamp, so order is kept and gaps are 1.
    """
    users: list[int] = []
    items: list[int] = []
    positions: list[int] = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for lineno, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            try:
                ids = [int(f) for f in fields]
            except ValueError:
                raise _malformed(path, lineno, line.rstrip("\r\n"), "integers: user item1 item2 ...") from None
            if len(ids) < 2:
                raise _malformed(path, lineno, line.rstrip("\r\n"), "a user followed by at least one item")
            users.extend([ids[0]] * (len(ids) - 1))
            items.extend(ids[1:])
            positions.extend(range(len(ids) - 1))
    if not users:
        raise GrscaleError(f"{path}: no interactions in the file")
    return RawLog(
        users=np.asarray(users, dtype=np.int64),
        items=np.asarray(items, dtype=np.int64),
        timestamps=np.asarray(positions, dtype=np.int64),
        ratings=np.full(len(users), np.nan, dtype=np.float32),
    )


PARSERS: dict[str, Callable[[Path], RawLog]] = {
    "tsv-ratings": parse_tsv_ratings,
    "ml1m-ratings": parse_ml1m_ratings,
    "ml20m-ratings": parse_ml20m_ratings,
    "amazon-ratings": parse_amazon_ratings,
    "s3rec-sequences": parse_s3rec_sequences,
}
