"""A user's own interaction log, named by a column mapping instead of a dataset name.

`dataset: {path: events.parquet, user: user_id, item: item_id, time: ts, label: clicked}` in a
trial config or a sweep spec: a Parquet or CSV file, or a folder of them with one schema. IDs of any
type are remapped densely; preparation (scaling.data.generic) streams the file and caches the arrays.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from scaling.errors import GrscaleError

# Integer (or float) time columns: seconds per unit. "auto" reads the unit off the values' magnitude.
TIME_UNITS = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}


@dataclass(frozen=True, kw_only=True)
class LogSpec:
    path: str  # a .parquet or .csv file, or a folder of them (one schema); made absolute when loaded
    user: str  # column of user IDs (integers or strings)
    item: str  # column of item IDs (integers or strings)
    time: str = ""  # column of times; "" = the file's row order is the time order
    time_unit: str = "auto"  # numeric times: s | ms | us | ns, or auto (by magnitude); dates and strings carry their own
    label: str = ""  # column of binary engagement labels (0/1 or true/false); "" = none
    rating: str = ""  # column of numeric ratings, kept beside the label
    positive_rating: float | None = None  # with `rating` and no `label`: label = rating >= this
    min_interactions: int = 0  # k-core filter: users and items with fewer interactions are dropped, repeatedly
    drop_null_ids: bool = False  # rows without a user or item: an error (counted), or dropped when true
    name: str = ""  # the dataset's name in results; "" = the file or folder name without its extension

    def __post_init__(self) -> None:
        # A sweep's Ray workers run in other folders: the path is fixed where the config is read.
        object.__setattr__(self, "path", os.path.abspath(os.path.expanduser(self.path)))

    @property
    def display_name(self) -> str:
        return self.name or Path(self.path).name.split(".")[0]

    @property
    def has_labels(self) -> bool:
        return bool(self.label or self.positive_rating is not None)

    def validate(self) -> None:
        """Field combinations the log cannot be read with; data-free (the file is read at load)."""
        for field in ("user", "item"):
            if not getattr(self, field):
                raise GrscaleError(f"{field}: name the column that holds the {field} IDs")
        if self.time_unit != "auto" and self.time_unit not in TIME_UNITS:
            raise GrscaleError(f"time_unit: unknown unit {self.time_unit!r}; known: auto, {', '.join(TIME_UNITS)}")
        if self.time_unit != "auto" and not self.time:
            raise GrscaleError("time_unit: set `time` to the column it applies to")
        if self.positive_rating is not None and not self.rating:
            raise GrscaleError("positive_rating: set `rating` to the column it thresholds")
        if self.rating and self.positive_rating is None and not self.label:
            raise GrscaleError(f"rating: set positive_rating (label = {self.rating} >= it) or a label column")
        if self.label and self.positive_rating is not None:
            raise GrscaleError("label and positive_rating both define the label: keep one")
        if self.min_interactions < 0:
            raise GrscaleError(f"min_interactions: expected an integer >= 0, got {self.min_interactions}")
        columns = [c for c in (self.user, self.item, self.time, self.label, self.rating) if c]
        if len(set(columns)) != len(columns):
            raise GrscaleError(f"one column mapped twice in {columns}")


def check_dataset(dataset: str | LogSpec, where: str) -> None:
    """A dataset name known to the registry, or a valid log mapping; the error names `where`."""
    from scaling.data.registry import get_spec

    try:
        if isinstance(dataset, LogSpec):
            dataset.validate()
        else:
            get_spec(dataset)
    except GrscaleError as error:
        raise GrscaleError(f"{where}: {error}") from None


def dataset_name(dataset: str | LogSpec) -> str:
    """What results rows call the dataset."""
    return dataset.display_name if isinstance(dataset, LogSpec) else dataset
