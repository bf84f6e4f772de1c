"""Choosing on validation: which setting of each (family, size, budget) cell enters the fits, and
whether the table can be selected on at all.

A trial's coordinates are (family, size, budget, setting, seed): trials that differ in setting
are alternatives, not seeds. Per cell, the settings are compared on the mean over their seeds of
the selecting error (the validation counterpart of the fitted metric, at each trial's best
validation point), and the winner's seeds are the cell's data from then on. The best size per
budget is chosen in the bootstrap (`bootstrap.best_per_budget`) on that same selecting error.
Nothing selects on the test metric unless the table's `select_on` or `--select-on` says `test`;
a split whose validation set is its test set (leave-last-out) is refused otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.results import Metric
from scaling.errors import GrscaleError
from scaling.schema import SELECT_ON, SETTING_COLUMNS, SPLITS_WITHOUT_VALIDATION

CELL = ["family", "size", "budget"]
EDGE_NOTE = "at the edge of its grid: the best rate may lie outside it"
FLAT_EDGE_NOTE = "at the edge of its grid, but flat there: it beats the next rate by less than two standard errors " \
    "of the seed noise"


@dataclass(frozen=True)
class SelectionPolicy:
    """What selects settings and sizes, and where that was decided."""

    select_on: str  # "validation" | "test"
    source: str  # where select_on came from: "from --select-on", "from the table's select_on column", "by default"
    column: str  # the column whose values select: `val/nll`, or the fitted `test/nll` itself


@dataclass(frozen=True)
class CellChoice:
    """The setting chosen in a (family, size, budget) cell that had several, and its runner-up."""

    family: str
    size: str
    budget: float
    settings: int
    chosen: str
    chosen_value: float  # mean over its seeds of the selecting metric, in the metric's own units
    seeds: int
    runner_up: str
    runner_up_value: float
    gap: float  # how much worse the runner-up is on the selecting metric (>= 0)
    at_edge: bool  # the chosen learning rate is the smallest or largest of the cell's grid
    # At an edge: how much better the chosen rate is than the next rate inward (mean over seeds), and two
    # standard errors of that difference from the two rates' seed spreads (nan with fewer than 2 seeds each).
    edge_gap: float = float("nan")
    edge_noise: float = float("nan")

    @property
    def flat_edge(self) -> bool:
        """At an edge, but the next rate inward is as good within the seed noise: the profile's top is flat
        there, so a rate beyond the edge can gain little that seeds would show."""
        return self.at_edge and bool(self.edge_gap <= self.edge_noise)

    @property
    def edge_note(self) -> str:
        if not self.at_edge:
            return ""
        if self.flat_edge:
            return f"{FLAT_EDGE_NOTE} ({self.edge_gap:.3g} <= {self.edge_noise:.3g})"
        return EDGE_NOTE


def selection_policy(trials: pd.DataFrame, metric: Metric, select_on: str | None = None) -> SelectionPolicy:
    """Resolve select_on (the flag over the table's column over "validation") and refuse a table
    that cannot be selected on validation where there is anything to select."""
    choice, source = _resolve_select_on(trials, select_on)
    if choice == "test":
        return SelectionPolicy("test", source, metric.name)
    usable = trials[trials["usable"]]
    todo = _to_select(usable)
    if todo:
        way_out = f"pass --select-on test to select on {metric.name} (the report will say so)"
        splits = sorted(set(usable["split"].dropna()) & set(SPLITS_WITHOUT_VALIDATION)) if "split" in usable else []
        if splits:
            raise GrscaleError(f"cannot select on validation: split {splits[0]!r} has no validation set apart from "
                               f"test, and the table has {todo} to choose between; {way_out}, or rerun on a split "
                               "with one (leave-one-out, temporal)")
        lacking = usable[~np.isfinite(usable["validation"])]
        if len(lacking):
            what = (f"no {metric.validation} values" if len(lacking) == len(usable)
                    else f"no {metric.validation} value for {len(lacking)} trials (e.g. {lacking['trial_id'].iloc[0]})")
            raise GrscaleError(f"cannot select on validation: the table has {what}, and it has {todo} to choose "
                               f"between; {way_out}, or rerun recording {metric.validation}")
    return SelectionPolicy("validation", source, metric.validation)


def _resolve_select_on(trials: pd.DataFrame, flag: str | None) -> tuple[str, str]:
    if flag is not None:
        choice, source = flag, "from --select-on"
    elif "select_on" in trials and trials["select_on"].notna().any():
        values = sorted(set(trials["select_on"].dropna().astype(str)))
        if len(values) > 1:
            raise GrscaleError(f"the table's select_on column holds {' and '.join(values)}: pass --select-on to "
                               "choose one")
        choice, source = values[0], "from the table's select_on column"
    else:
        return "validation", "by default"
    if choice not in SELECT_ON:
        raise GrscaleError(f"select_on {choice!r} ({source}) is not one of {', '.join(SELECT_ON)}")
    return choice, source


def _to_select(usable: pd.DataFrame) -> str:
    """What usable trials leave to choose, in words ("" for nothing): settings within cells, sizes within budgets."""
    settings = usable.groupby(CELL)["setting"].nunique()
    sizes = usable.groupby(["family", "budget"])["size"].nunique()
    parts = []
    if (settings > 1).any():
        parts.append(f"{int((settings > 1).sum())} (family, size, budget) cells with several settings")
    if (sizes > 1).any():
        parts.append(f"{int((sizes > 1).sum())} budgets with several sizes")
    return " and ".join(parts)


def choose_settings(
    trials: pd.DataFrame, metric: Metric, policy: SelectionPolicy
) -> tuple[pd.DataFrame, tuple[CellChoice, ...]]:
    """Mark the trials of each cell's chosen setting (`chosen`), with the error that selects
    (`selection_loss`); returns them and the choices made in cells that had several settings."""
    trials = trials.copy()
    selecting = trials["validation"] if policy.select_on == "validation" else trials["value"]
    trials["selection_loss"] = metric.error(selecting)
    usable = trials[trials["usable"]]
    ranked = (usable.groupby([*CELL, "setting"], sort=True)["selection_loss"].agg(["mean", "count"]).reset_index()
              .assign(_key=lambda f: f["mean"].fillna(np.inf))  # a setting without a value ranks last
              .sort_values([*CELL, "_key", "setting"], kind="stable"))
    ranked["rank"] = ranked.groupby(CELL).cumcount()
    winners = ranked[ranked["rank"] == 0]
    trials["chosen"] = trials["usable"] & _row_keys(trials).isin(set(_row_keys(winners)))
    cells = []
    for key, cell in ranked.groupby(CELL, sort=True):
        if len(cell) < 2:
            continue
        best, second = cell.iloc[0], cell.iloc[1]
        at_edge = _at_edge(trials, key, best["setting"])
        gap, noise = _edge_margin(usable, key, best["setting"]) if at_edge else (np.nan, np.nan)
        cells.append(CellChoice(
            family=str(key[0]), size=str(key[1]), budget=float(key[2]), settings=len(cell), chosen=best["setting"],
            chosen_value=float(metric.error(best["mean"])), seeds=int(best["count"]), runner_up=second["setting"],
            runner_up_value=float(metric.error(second["mean"])), gap=float(second["_key"] - best["_key"]),
            at_edge=at_edge, edge_gap=gap, edge_noise=noise,
        ))
    winner = dict(zip(map(tuple, winners[CELL].to_numpy()), winners["setting"]))
    passed = trials["usable"] & ~trials["chosen"]
    trials.loc[passed, "note"] = [
        f"setting {s} not chosen: {winner[(f, z, b)]} is better on {policy.column}"
        for f, z, b, s in trials.loc[passed, [*CELL, "setting"]].itertuples(index=False)
    ]
    return trials, tuple(cells)


def _row_keys(frame: pd.DataFrame) -> pd.Series:
    return pd.Series(list(zip(*(frame[c] for c in [*CELL, "setting"]))), index=frame.index)


def _at_edge(trials: pd.DataFrame, cell: tuple, chosen: str) -> bool:
    """Whether the chosen learning rate is the smallest or largest tried in its cell, among the
    settings that differ from the chosen one only in learning rate (diverged trials count: a rate
    that diverged bounds the search as well as one that ran)."""
    if "peak_lr" not in trials:
        return False
    line = rate_line(trials[(trials[CELL] == list(cell)).all(axis=1)], chosen)
    rates = np.unique(pd.to_numeric(line["peak_lr"], errors="coerce").dropna())
    best = float(line.loc[line["setting"] == chosen, "peak_lr"].iloc[0])
    return len(rates) > 1 and best in (rates[0], rates[-1])


def _edge_margin(usable: pd.DataFrame, cell: tuple, chosen: str) -> tuple[float, float]:
    """For a choice at the edge of its rate grid: how much worse the next rate inward is (mean over seeds of
    the selecting error), and two standard errors of that difference (nan where a rate has one seed)."""
    line = rate_line(usable[(usable[CELL] == list(cell)).all(axis=1)], chosen)
    per_rate = line.groupby("peak_lr")["selection_loss"].agg(["mean", "var", "count"]).sort_index()
    if len(per_rate) < 2:
        return np.nan, np.nan
    best = float(line.loc[line["setting"] == chosen, "peak_lr"].iloc[0])
    position = list(per_rate.index).index(best)
    inner = per_rate.iloc[1] if position == 0 else per_rate.iloc[-2]
    edge = per_rate.loc[best]
    gap = float(inner["mean"] - edge["mean"])
    if min(edge["count"], inner["count"]) < 2:
        return gap, np.nan
    return gap, float(2 * np.sqrt(edge["var"] / edge["count"] + inner["var"] / inner["count"]))


def rate_line(cell: pd.DataFrame, chosen: str) -> pd.DataFrame:
    """The trials of one cell whose settings differ from `chosen` only in learning rate."""
    others = [c for c in SETTING_COLUMNS if c in cell and c != "peak_lr"]
    if not others:
        return cell
    best = cell[cell["setting"] == chosen].iloc[0]
    return cell[(cell[others].astype(str) == best[others].astype(str)).all(axis=1)]
