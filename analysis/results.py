"""The results table a sweep writes, loaded into one tidy frame, and the trials it describes.

`load_results` gives a row per trial per evaluation point; `trial_table` a row per trial: its
coordinates (with a readable label of its setting), its final quality on the chosen metric, the
validation value at the point that quality comes from, and whether it can enter a fit (and if
not, why).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from scaling.errors import GrscaleError
from scaling.schema import (
    REQUIRED_COLUMNS, RESULTS_FILE, SETTING_COLUMNS, TASKS, higher_is_better, short_number, validation_column,
)

NUMERIC_COLUMNS = ("seed", "budget", "flops", "tokens", "params_nonembedding")
# How a setting column reads in a label: `lr 3e-3, variant paper`.
SETTING_NAMES = {"peak_lr": "lr", "schedule": "schedule", "variant": "variant", "overrides": "overrides"}
ONE_SETTING = "one setting"  # the label where no setting column varies in the table


@dataclass(frozen=True)
class Metric:
    """The metric the study reports and the error quantity that the laws are fitted to."""

    name: str
    higher_is_better: bool

    @property
    def fitted(self) -> str:
        """What the fits model, e.g. `1 - test/hr@10`."""
        return f"1 - {self.name}" if self.higher_is_better else self.name

    @property
    def validation(self) -> str:
        """The validation counterpart that selects settings and sizes: `val/hr@10`."""
        return validation_column(self.name)

    def error(self, values: pd.Series | np.ndarray | float) -> pd.Series | np.ndarray | float:
        """The fitted error of metric values; it is its own inverse (error of an error is the value)."""
        return 1.0 - values if self.higher_is_better else values


def results_path(path: str | Path) -> Path:
    """The results table `path` names: the file itself, or a sweep directory's results.parquet / .csv."""
    path = Path(path)
    if path.is_dir():
        candidates = [path / RESULTS_FILE, path / "results.csv"]
        found = [p for p in candidates if p.exists()]
        if not found:
            raise GrscaleError(f"{path} holds no {RESULTS_FILE} or results.csv")
        path = found[0]
    if not path.exists():
        raise GrscaleError(f"results table {path} does not exist")
    return path


def read_results_table(path: str | Path) -> pd.DataFrame:
    """A results.parquet / .csv (or a sweep directory's results.parquet) as it is on disk, trunks included."""
    path = results_path(path)
    if path.suffix not in (".parquet", ".csv"):
        raise GrscaleError(f"{path}: expected a .parquet or .csv results table")
    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as error:  # any failure to parse a user's file is bad input: say so in one line
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise GrscaleError(f"{path} is not a readable results table: {reason}") from None


def load_results(path: str | Path) -> pd.DataFrame:
    """Read results.parquet / .csv, or a sweep directory holding results.parquet: the grid's points, checked."""
    path = results_path(path)
    frame = read_results_table(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise GrscaleError(f"{path} lacks the columns {', '.join(missing)}")
    if "branch_role" in frame.columns:  # a branched sweep's trunk is no point of the grid (its branches are)
        frame = frame[frame["branch_role"].ne("trunk")].reset_index(drop=True)
    if frame.empty:
        raise GrscaleError(f"{path} has no rows")
    wrong = [c for c in NUMERIC_COLUMNS if not pd.api.types.is_numeric_dtype(frame[c])]
    if wrong:
        raise GrscaleError(f"{path}: column {', '.join(wrong)} holds values that are not numbers")
    return frame


def load_study(paths: list[Path]) -> pd.DataFrame:
    """One study's results from the tables of the sweeps it was run in (load_results each); a trial id in two
    of them is refused, since the parts of one study share no trial."""
    frames = [load_results(path) for path in paths]
    if len(frames) == 1:
        return frames[0]
    seen: dict[str, Path] = {}
    for path, frame in zip(paths, frames):
        for trial in frame["trial_id"].astype(str).unique():
            if trial in seen:
                raise GrscaleError(f"trial {trial} is in both {seen[trial]} and {path}: the parts of a study "
                                   "share no trial")
            seen[trial] = path
    return pd.concat(frames, ignore_index=True)


def choose_metric(frame: pd.DataFrame, name: str | None, higher: bool | None = None) -> Metric:
    """The metric asked for, or the task's default; it must be a column of the table.

    Its direction comes from the schema's registry; `higher` (the --higher-is-better /
    --lower-is-better flags) is required for a metric the registry does not know, and must
    agree with it for one it does.
    """
    if name is None:
        tasks = sorted(frame["task"].dropna().unique())
        if len(tasks) != 1 or tasks[0] not in TASKS:
            raise GrscaleError(f"cannot pick a default metric for tasks {tasks}: pass --metric")
        name = TASKS[tasks[0]].default_column
    if name not in frame.columns:
        metrics = sorted(c for c in frame.columns if "/" in c)
        raise GrscaleError(f"metric {name!r} is not in the table; it has {', '.join(metrics)}")
    known = higher_is_better(name)
    if known is None and higher is None:
        raise GrscaleError(f"metric {name!r} has no known direction: pass --lower-is-better or --higher-is-better")
    if known is not None and higher is not None and known != higher:
        raise GrscaleError(f"{name} is {_direction(known)}, but {_flag(higher)} says it is {_direction(higher)}")
    return Metric(name=name, higher_is_better=known if known is not None else higher)


def _direction(higher: bool) -> str:
    return "higher-is-better" if higher else "lower-is-better"


def _flag(higher: bool) -> str:
    return f"--{_direction(higher)}"


def trial_table(frame: pd.DataFrame, metric: Metric) -> pd.DataFrame:
    """One row per trial: its final row's coordinates, setting, metric, validation value and usability.

    `value` is the metric in the final row (test at the best validation point), `loss` its fitted
    error; `validation` is the validation counterpart at that same point: in the row whose step
    is the final row's `best_step` (the final row's own where best_step is missing). `usable` is
    true for finished trials with a finite, positive error; `note` says why any other trial is
    left out of the fits, so that the report can list every one.
    """
    # The final row where there is one, else the latest evaluation (a trial still running).
    keys = ["_final", "step"] if "step" in frame.columns else ["_final"]
    ordered = frame.assign(_final=frame["eval_kind"].eq("final")).sort_values(keys, kind="stable")
    last = ordered.groupby("trial_id", sort=True).tail(1).set_index("trial_id").sort_index()
    columns = ["sweep", "family", "size", "task", "seed", "budget", "flops", "tokens", "params_nonembedding", "status",
               "error"]
    optional = [c for c in (*SETTING_COLUMNS, "split", "select_on", "eval_protocol") if c in last.columns]
    test_metrics = [c for c in last.columns if c.startswith("test/")]  # the report shows a few beside the fitted one
    trials = last[columns + optional + test_metrics].copy()
    # Tables written before `epochs` was recorded analyse as well; their epochs are unknown.
    trials["epochs"] = pd.to_numeric(last["epochs"], errors="coerce") if "epochs" in last.columns else np.nan
    trials["setting"] = setting_labels(trials)
    trials["value"] = pd.to_numeric(last[metric.name], errors="coerce")
    trials["loss"] = metric.error(trials["value"])
    trials["validation"] = validation_at_best_step(ordered, last, metric.validation)
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


def validation_at_best_step(rows: pd.DataFrame, last: pd.DataFrame, column: str) -> pd.Series:
    """Per trial (indexed like `last`), `column` in its row at the final row's best_step, else in the final row."""
    if column not in rows.columns:
        return pd.Series(np.nan, index=last.index)
    own = pd.to_numeric(last[column], errors="coerce")
    if "best_step" not in last.columns or "step" not in rows.columns:
        return own
    # `rows` is sorted with the final row last, so where a val row shares its step the final row wins.
    steps = rows.assign(step=pd.to_numeric(rows["step"], errors="coerce").astype(float))
    at_step = steps.drop_duplicates(["trial_id", "step"], keep="last").set_index(["trial_id", "step"])[column]
    wanted = pd.MultiIndex.from_arrays([last.index, pd.to_numeric(last["best_step"], errors="coerce").astype(float)])
    at_best = pd.to_numeric(at_step.reindex(wanted), errors="coerce").to_numpy(dtype=float)
    return pd.Series(np.where(np.isnan(at_best), own.to_numpy(), at_best), index=last.index)


def setting_labels(trials: pd.DataFrame) -> pd.Series:
    """A readable name for each trial's setting, from the setting columns that vary in the table:
    `lr 3e-3, variant paper`."""
    shown = [c for c in SETTING_COLUMNS if c in trials.columns and trials[c].nunique(dropna=False) > 1]
    if not shown:
        return pd.Series(ONE_SETTING, index=trials.index)
    parts = [trials[c].map(lambda v, c=c: f"{SETTING_NAMES[c]} {_setting_value(v)}") for c in shown]
    return pd.Series([", ".join(p) for p in zip(*parts)], index=trials.index)


def _setting_value(value) -> str:
    if pd.isna(value):
        return "none"
    if isinstance(value, (float, np.floating)):
        return short_number(float(value))  # as trial ids name learning rates: 3e-3, 3.16e-4
    return str(value)
