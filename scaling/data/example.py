"""`grscale data example-log`: a small interaction log in the shape of a company's own, to try the
generic dataset path on (string user IDs, sparse integer item IDs, millisecond times, a click label)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from scaling.data.synthetic import SyntheticConfig, generate_synthetic
from scaling.errors import GrscaleError
from scaling.files import atomic_write


def write_example_log(path: Path, users: int = 300, items: int = 200, seed: int = 0) -> int:
    """Write the log to `path` (.parquet or .csv), rows shuffled as an export would be; returns its row count."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path = Path(path)
    if path.suffix.lower() not in (".parquet", ".csv"):
        raise GrscaleError(f"{path}: the example log is written as .parquet or .csv")
    log = generate_synthetic(SyntheticConfig(num_users=users, num_items=items, mean_seq_len=20, seed=seed))
    user = np.repeat(np.arange(log.num_users), log.lengths())
    order = np.random.default_rng(seed).permutation(log.num_interactions)
    table = pa.table({
        "user_id": pa.array([f"u{u:06d}" for u in user[order]]),
        "item_id": (log.item_ids[order] * 7 + 100_000).astype(np.int64),
        "ts": log.timestamps[order] * 1000,
        "clicked": log.labels[order].astype(np.int8),
    })
    if path.suffix.lower() == ".csv":
        atomic_write(path, lambda handle: pacsv.write_csv(table, handle))
    else:
        atomic_write(path, lambda handle: pq.write_table(table, handle))
    return table.num_rows
