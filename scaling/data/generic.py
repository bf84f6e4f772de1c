"""Preparing your own log (scaling.data.logspec.LogSpec) into the cached arrays the trainer reads.

The files are streamed with pyarrow in batches of BATCH_ROWS: one pass over the ID columns finds
the distinct users and items (dense IDs in the sorted order of the originals, as for the named
datasets), then the other columns are read batch by batch into arrays of one value per interaction
(4-byte codes, 8-byte times), so peak memory is a small multiple of the final arrays, never of the
raw text. The k-core filter and a stable sort by (user, time) follow, and the arrays are written
straight into the cache entry, memory-mapped, beside users.parquet and items.parquet: the original
ID of every dense ID. Every problem with the input is one GrscaleError naming the file and column,
raised before anything is put in the cache.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from scaling.data.cache import building, load_arrays, prepared_path, remembered_digest
from scaling.data.log import InteractionLog, k_core_mask
from scaling.data.logspec import TIME_UNITS, LogSpec
from scaling.errors import GrscaleError

BATCH_ROWS = 1 << 20
GATHER_ROWS = 1 << 24  # rows gathered at once when writing the sorted arrays (bounds temporaries)
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
# Numeric times with time_unit "auto": the largest |time| below a bound is in that unit (seconds
# since 1970 stay below 1e11 until the year 5138; milliseconds of any date since 1973 exceed it).
MAGNITUDE_UNITS = ((1e11, "s"), (1e14, "ms"), (1e17, "us"), (float("inf"), "ns"))
NULL_POLICY = "rows without a user or item cannot be placed: drop them first, or set dataset.drop_null_ids: true"


def source_files(spec: LogSpec) -> tuple[list[Path], str]:
    """The log's files, in name order, and their format ("parquet" or "csv")."""
    path = Path(spec.path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith((".", "_"))
                       and p.suffix.lower() in FORMATS)
        if not files:
            raise GrscaleError(f"{path}: no .parquet or .csv files in the folder")
    elif path.is_file():
        if path.suffix.lower() not in FORMATS:
            raise GrscaleError(f"{path}: not a .parquet or .csv file")
        files = [path]
    else:
        raise GrscaleError(f"{path}: no such file or folder")
    kinds = sorted({FORMATS[p.suffix.lower()] for p in files})
    if len(kinds) > 1:
        raise GrscaleError(f"{path}: the folder mixes Parquet and CSV files; keep one format")
    return files, kinds[0]


def source_digest(files: list[Path], root: Path) -> str:
    if len(files) == 1 and files[0] == root:
        return remembered_digest(files[0])
    listing = "".join(f"{f.name}\0{remembered_digest(f)}\n" for f in files)
    return hashlib.sha256(listing.encode()).hexdigest()


def entry_path(spec: LogSpec, sha256: str) -> Path:
    """The cache entry of `spec`'s log: keyed by the files' content and every field that changes the arrays."""
    fields = {k: v for k, v in asdict(spec).items() if k not in ("path", "name")}
    variant = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", spec.display_name) or "log"
    return prepared_path(f"log-{name}", sha256, variant)


def load_log(spec: LogSpec) -> tuple[InteractionLog, str, Path]:
    """(the prepared log, memory-mapped; the files' sha256; its cache entry, which holds the ID mapping)."""
    files, kind = source_files(spec)
    before = [_stat(f) for f in files]
    sha256 = source_digest(files, Path(spec.path))
    entry = entry_path(spec, sha256)
    arrays = load_arrays(entry)
    if arrays is None:
        with building(entry) as folder:
            _prepare(spec, files, kind, folder)
            if [_stat(f) for f in files] != before:
                raise GrscaleError(f"{spec.path} changed while it was being read; nothing was cached: "
                                   f"run again once it is complete")
        arrays = load_arrays(entry)
        if arrays is None:
            raise GrscaleError(f"{entry}: the prepared arrays could not be read back")
    return InteractionLog.from_arrays(spec.display_name, arrays), sha256, entry


def _stat(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (-1, -1)
    return stat.st_size, stat.st_mtime_ns


# --- reading -------------------------------------------------------------------------------------
def _roles(spec: LogSpec) -> dict[str, str]:
    """Mapped column -> the LogSpec field that names it."""
    return {getattr(spec, role): role for role in ("user", "item", "time", "label", "rating") if getattr(spec, role)}


def _schema(file: Path, kind: str) -> pa.Schema:
    try:
        if kind == "parquet":
            return pq.read_schema(file)
        return pacsv.open_csv(file).schema
    except (pa.ArrowException, OSError) as error:
        if file.stat().st_size == 0 or "Empty CSV file" in str(error):
            raise GrscaleError(f"{file}: the file is empty") from None
        raise GrscaleError(f"{file}: cannot be read as {kind}: {error}") from None


def _batches(file: Path, kind: str, columns: list[str]) -> Iterator[pa.RecordBatch]:
    try:
        if kind == "parquet":
            reader = pq.ParquetFile(file).iter_batches(batch_size=BATCH_ROWS, columns=columns)
        else:
            reader = pacsv.open_csv(file, read_options=pacsv.ReadOptions(block_size=32 << 20),
                                    convert_options=pacsv.ConvertOptions(include_columns=columns))
        yield from reader
    except (pa.ArrowException, OSError) as error:
        raise GrscaleError(f"{file}: cannot be read as {kind}: {error}") from None


def check_schemas(spec: LogSpec, files: list[Path], kind: str) -> dict[str, pa.DataType]:
    """The mapped columns' types, the same in every file; the first problem raises, naming file and column."""
    roles = _roles(spec)
    first: tuple[Path, dict[str, pa.DataType]] | None = None
    for file in files:
        schema = _schema(file, kind)
        for column, role in roles.items():
            if column not in schema.names:
                raise GrscaleError(f"{file}: no column {column!r} (dataset.{role}); its columns: "
                                   f"{', '.join(schema.names)}")
        types = {column: schema.field(column).type for column in roles}
        if first is None:
            first = (file, types)
            continue
        for column, type_ in types.items():
            if type_ != first[1][column]:
                raise GrscaleError(f"{spec.path}: the folder mixes schemas: {first[0].name} has {column}: "
                                   f"{first[1][column]}, {file.name} has {column}: {type_}; every file needs "
                                   f"the same columns and types")
    assert first is not None
    types = first[1]
    for role in ("user", "item"):
        type_ = types[getattr(spec, role)]
        if not (pa.types.is_integer(type_) or pa.types.is_string(type_) or pa.types.is_large_string(type_)):
            raise GrscaleError(f"{files[0]}: column {getattr(spec, role)!r} (dataset.{role}) has type {type_}: "
                               f"IDs must be integers or strings")
    if spec.time:
        type_ = types[spec.time]
        numeric = pa.types.is_integer(type_) or pa.types.is_floating(type_)
        if spec.time_unit != "auto" and not numeric:
            raise GrscaleError(f"dataset.time_unit: column {spec.time!r} has type {type_}, which carries its own "
                               f"unit; time_unit applies to numeric times")
    return types


# --- preparing -----------------------------------------------------------------------------------
def _prepare(spec: LogSpec, files: list[Path], kind: str, folder: Path) -> None:
    check_schemas(spec, files, kind)
    user_chunks, item_chunks, valid = _read_ids(spec, files, kind)
    users = _sorted_unique(user_chunks)
    items = _sorted_unique(item_chunks)
    size = sum(len(c) for c in user_chunks)
    user_codes = _encode(user_chunks, users, size)  # chunks are released as they are encoded
    item_codes = _encode(item_chunks, items, size)
    times, seconds_per_unit, labels, ratings = _read_values(spec, files, kind, size)
    keep = valid
    if spec.min_interactions > 1:
        core = k_core_mask(user_codes[valid], item_codes[valid], spec.min_interactions)
        keep = valid.copy()
        keep[np.flatnonzero(valid)[~core]] = False
    if not keep.all():
        user_codes, item_codes, times = user_codes[keep], item_codes[keep], times[keep]
        labels = labels[keep] if labels is not None else None
        ratings = ratings[keep] if ratings is not None else None
    if user_codes.size == 0:
        raise GrscaleError(f"{spec.path}: no interactions left after preprocessing "
                           f"(min_interactions={spec.min_interactions})")
    user_codes, users = _densify(user_codes, users)
    item_codes, items = _densify(item_codes, items)
    order = np.lexsort((times, user_codes))  # stable: equal times keep file order
    offsets = np.zeros(len(users) + 1, dtype=np.int64)
    np.cumsum(np.bincount(user_codes, minlength=len(users)), out=offsets[1:])
    del user_codes
    _write_gathered(folder / "item_ids.npy", item_codes, order, np.int64, lambda v: v.astype(np.int64) + 1)
    del item_codes
    _write_gathered(folder / "timestamps.npy", times, order, np.int64, lambda v: v // seconds_per_unit)
    del times
    _write_gathered(folder / "labels.npy", labels, order, np.float32, fill=1.0)  # no label: every one engaged
    _write_gathered(folder / "ratings.npy", ratings, order, np.float32, fill=np.nan)
    np.save(folder / "offsets.npy", offsets)
    np.save(folder / "has_labels.npy", np.asarray(spec.has_labels))
    pq.write_table(pa.table({"grscale_user": np.arange(len(users), dtype=np.int64), spec.user: users}),
                   folder / "users.parquet")
    pq.write_table(pa.table({"grscale_item": np.arange(1, len(items) + 1, dtype=np.int64), spec.item: items}),
                   folder / "items.parquet")


def _read_ids(spec: LogSpec, files: list[Path], kind: str) -> tuple[list[pa.Array], list[pa.Array], np.ndarray]:
    """The user and item columns as arrow chunks, and which rows have both (nulls: the policy)."""
    users, items, valid = [], [], []
    null_users = null_items = 0
    for file in files:
        rows = 0
        for batch in _batches(file, kind, [spec.user, spec.item]):
            user, item = batch.column(spec.user), batch.column(spec.item)
            null_users += user.null_count
            null_items += item.null_count
            users.append(user)
            items.append(item)
            valid.append(np.asarray(pc.and_(pc.is_valid(user), pc.is_valid(item))))
            rows += len(batch)
        if rows == 0:
            raise GrscaleError(f"{file}: the file is empty (no interactions)")
    if (null_users or null_items) and not spec.drop_null_ids:
        raise GrscaleError(f"{spec.path}: {null_users:,} rows have no {spec.user} and {null_items:,} no {spec.item}; "
                           f"{NULL_POLICY}")
    keep = np.concatenate(valid)
    if not keep.any():
        raise GrscaleError(f"{spec.path}: no row has both a {spec.user} and a {spec.item}")
    return users, items, keep


def _sorted_unique(chunks: list[pa.Array]) -> pa.Array:
    values = pc.unique(pa.chunked_array(chunks)).drop_null()
    return values.take(pc.sort_indices(values))


def _encode(chunks: list[pa.Array], values: pa.Array, size: int) -> np.ndarray:
    """[size] int32 (int64 past 2^31 values) position of each row's ID in `values`; -1 for a null."""
    index = pd.Index(values.to_numpy(zero_copy_only=False))  # its hash table is built once, then reused
    codes = np.empty(size, dtype=np.int32 if len(values) < 2**31 else np.int64)
    start = 0
    while chunks:
        chunk = chunks.pop(0)
        codes[start:start + len(chunk)] = index.get_indexer(chunk.to_numpy(zero_copy_only=False))
        start += len(chunk)
    return codes


def _densify(codes: np.ndarray, values: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Codes renumbered 0.. over the IDs still present (after dropped rows), and those IDs."""
    present = np.bincount(codes, minlength=len(values)) > 0
    if present.all():
        return codes, values
    renumber = np.cumsum(present, dtype=np.int64) - 1
    return renumber[codes].astype(codes.dtype), values.filter(pa.array(present))


def _read_values(spec: LogSpec, files: list[Path], kind: str, size: int):
    """(raw times [size] int64, their seconds-per-unit divisor, labels or None, ratings or None)."""
    columns = [c for c in (spec.time, spec.label, spec.rating) if c]
    times = np.empty(size, dtype=np.int64)
    labels = np.empty(size, dtype=np.float32) if spec.has_labels else None
    ratings = np.empty(size, dtype=np.float32) if spec.rating else None
    unit = None
    start = 0
    if not columns:
        times[:] = np.arange(size)  # the row order is the time order
        return times, 1, labels, ratings
    for file, batch in ((f, b) for f in files for b in _batches(f, kind, columns)):
        stop = start + len(batch)
        if stop > size:
            raise GrscaleError(f"{spec.path} changed while it was being read; nothing was cached: "
                               f"run again once it is complete")
        if spec.time:
            times[start:stop], unit = _times(batch.column(spec.time), spec, file, unit)
        else:
            times[start:stop] = np.arange(start, stop)
        if spec.rating:
            ratings[start:stop] = _numbers(batch.column(spec.rating), spec.rating, "rating", file)
        if spec.label:
            labels[start:stop] = _binary(batch.column(spec.label), spec.label, file)
        elif spec.positive_rating is not None:
            labels[start:stop] = ratings[start:stop] >= spec.positive_rating
        start = stop
    if start != size:
        raise GrscaleError(f"{spec.path} changed while it was being read; nothing was cached: "
                           f"run again once it is complete")
    if spec.time and unit is None:  # numeric times: the unit declared, or read off the largest
        largest = float(np.abs(times).max()) if size else 0.0
        unit = spec.time_unit if spec.time_unit != "auto" else next(u for bound, u in MAGNITUDE_UNITS
                                                                   if largest < bound)
    return times, TIME_UNITS[unit] if unit else 1, labels, ratings


def _times(column: pa.Array, spec: LogSpec, file: Path, unit: str | None) -> tuple[np.ndarray, str | None]:
    """A batch's times as int64 in their own unit (None: numeric, decided over the whole log)."""
    if column.null_count:
        raise GrscaleError(f"{file}: column {spec.time!r} (dataset.time) has {column.null_count:,} empty times "
                           f"in one batch; every interaction needs a time")
    type_ = column.type
    if pa.types.is_integer(type_):
        return column.to_numpy().astype(np.int64, copy=False), None
    if pa.types.is_floating(type_):
        values = column.to_numpy()
        if not np.isfinite(values).all():
            raise GrscaleError(f"{file}: column {spec.time!r} (dataset.time) holds a non-finite time "
                               f"{values[~np.isfinite(values)][0]!r}")
        return np.floor(values).astype(np.int64), None
    if pa.types.is_date(type_):
        column = pc.cast(column, pa.timestamp("s"))
        type_ = column.type
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        column, type_ = _parse_times(column, spec, file), pa.timestamp("ns")
    if pa.types.is_timestamp(type_):
        return np.asarray(column.cast(pa.int64())), type_.unit
    raise GrscaleError(f"{file}: column {spec.time!r} (dataset.time) has type {type_}: times must be numbers, "
                       f"dates, timestamps or date-time strings")


def _parse_times(column: pa.Array, spec: LogSpec, file: Path) -> pa.Array:
    for target in (pa.timestamp("ns"), pa.timestamp("ns", tz="UTC"), pa.date32()):  # date-times, then dates
        try:
            return pc.cast(pc.cast(column, target), pa.timestamp("ns"))
        except pa.ArrowException:
            continue
    for value in column.to_pylist():  # only on the way to an error: find the value to name
        try:
            _parse_one(value)
        except pa.ArrowException:
            raise GrscaleError(f"{file}: column {spec.time!r} (dataset.time) holds {value!r}, which is not a "
                               f"time (expected numbers, or date-times such as 2024-05-01T12:00:00)") from None
    raise GrscaleError(f"{file}: column {spec.time!r} (dataset.time) cannot be read as times")


def _parse_one(value: str) -> None:
    try:
        pc.cast(pa.array([value]), pa.timestamp("ns", tz="UTC"))
    except pa.ArrowException:
        pc.cast(pa.array([value]), pa.date32())


def _numbers(column: pa.Array, name: str, role: str, file: Path) -> np.ndarray:
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        raise GrscaleError(f"{file}: column {name!r} (dataset.{role}) has type {column.type}: expected numbers")
    if column.null_count:
        raise GrscaleError(f"{file}: column {name!r} (dataset.{role}) has {column.null_count:,} empty values")
    return column.to_numpy().astype(np.float32)


def _binary(column: pa.Array, name: str, file: Path) -> np.ndarray:
    if pa.types.is_boolean(column.type):
        if column.null_count:
            raise GrscaleError(f"{file}: column {name!r} (dataset.label) has {column.null_count:,} empty values; "
                               f"labels must be 0 or 1")
        return column.to_numpy(zero_copy_only=False).astype(np.float32)
    values = _numbers(column, name, "label", file)
    bad = (values != 0) & (values != 1)
    if bad.any():
        raise GrscaleError(f"{file}: column {name!r} (dataset.label) is not binary: it holds {values[bad][0]:g}; "
                           f"labels must be 0/1 or true/false (a rating column takes dataset.rating and "
                           f"positive_rating)")
    return values


def _write_gathered(path: Path, values: np.ndarray | None, order: np.ndarray, dtype: type,
                    convert=lambda v: v, fill: float = 0.0) -> None:
    """values[order] (converted) into a .npy file, GATHER_ROWS at a time; `fill` everywhere where values is None."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(order.size,))
    if values is None:
        out[:] = fill
    else:
        for start in range(0, order.size, GATHER_ROWS):
            out[start:start + GATHER_ROWS] = convert(values[order[start:start + GATHER_ROWS]])
    out.flush()
    del out
