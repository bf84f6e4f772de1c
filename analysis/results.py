"""The results table a sweep writes, loaded into one tidy frame, and the trials it describes.

`load_results` gives a row per trial per evaluation point; `trial_table` a row per trial:
its final quality on the chosen metric, and whether it can enter a fit (and if not, why).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from scaling.errors import GrscaleError

REQUIRED_COLUMNS = (
    "sweep", "trial_id", "family", "size", "task", "seed", "budget", "flops", "tokens",
    "params_nonembedding", "status", "error", "eval_kind",
)
DEFAULT_METRIC = {"retrieval": "test/nll", "ranking": "test/ne"}
# Metrics where lower is better are fitted as they are; the others as 1 - metric.
LOWER_IS_BETTER = ("nll", "ne", "logloss")


@dataclass(frozen=True)
class Metric:
    """The metric the study reports and the error quantity that the laws are fitted to."""

    name: str
    higher_is_better: bool

    @property
    def fitted(self) -> str:
        """What the fits model, e.g. `1 - test/hr@10`."""
        return f"1 - {self.name}" if self.higher_is_better else self.name

    def error(self, values: pd.Series) -> pd.Series:
        return 1.0 - values if self.higher_is_better else values


def results_path(path: str | Path) -> Path:
    """The results table `path` names: the file itself, or a sweep directory's results.parquet / .csv."""
    path = Path(path)
    if path.is_dir():
        candidates = [path / "results.parquet", path / "results.csv"]
        found = [p for p in candidates if p.exists()]
        if not found:
            raise GrscaleError(f"{path} holds no results.parquet or results.csv")
        path = found[0]
    if not path.exists():
        raise GrscaleError(f"results table {path} does not exist")
    return path


def load_results(path: str | Path) -> pd.DataFrame:
    """Read results.parquet / .csv, or a sweep directory holding results.parquet."""
    path = results_path(path)
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif path.suffix == ".csv":
        frame = pd.read_csv(path)
    else:
        raise GrscaleError(f"{path}: expected a .parquet or .csv results table")
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise GrscaleError(f"{path} lacks the columns {', '.join(missing)}")
    if frame.empty:
        raise GrscaleError(f"{path} has no rows")
    return frame


def choose_metric(frame: pd.DataFrame, name: str | None) -> Metric:
    """The metric asked for, or the task's default; it must be a column of the table."""
    if name is None:
        tasks = sorted(frame["task"].dropna().unique())
        if len(tasks) != 1 or tasks[0] not in DEFAULT_METRIC:
            raise GrscaleError(f"cannot pick a default metric for tasks {tasks}: pass --metric")
        name = DEFAULT_METRIC[tasks[0]]
    if name not in frame.columns:
        metrics = sorted(c for c in frame.columns if "/" in c)
        raise GrscaleError(f"metric {name!r} is not in the table; it has {', '.join(metrics)}")
    short = name.split("/")[-1].split("@")[0]
    return Metric(name=name, higher_is_better=short not in LOWER_IS_BETTER)


def trial_table(frame: pd.DataFrame, metric: Metric) -> pd.DataFrame:
    """One row per trial: its final row's coordinates, metric, fitted error and usability.

    `usable` is true for finished trials with a finite, positive error; `note` says why
    any other trial is left out of the fits, so that the report can list every one.
    """
    # The final row where there is one, else the latest evaluation (a trial still running).
    keys = ["_final", "step"] if "step" in frame.columns else ["_final"]
    ordered = frame.assign(_final=frame["eval_kind"].eq("final")).sort_values(keys, kind="stable")
    last = ordered.groupby("trial_id", sort=True).tail(1).set_index("trial_id").sort_index()
    columns = ["sweep", "family", "size", "seed", "budget", "flops", "tokens", "params_nonembedding", "status", "error"]
    trials = last[columns].copy()
    trials["value"] = pd.to_numeric(last[metric.name], errors="coerce")
    trials["loss"] = metric.error(trials["value"])
    has_final = last["eval_kind"].eq("final")
    done = trials["status"].eq("done")
    finite = np.isfinite(trials["loss"]) & (trials["loss"] > 0)
    trials["usable"] = has_final & done & finite
    reason = trials["status"].astype(str) + ": " + trials["error"].fillna("no reason recorded").astype(str)
    trials["note"] = np.select(
        [~has_final, ~done, ~finite],
        ["no final row (still running?)", reason, f"{metric.fitted} is missing or not positive"],
        default="",
    )
    return trials.reset_index()
