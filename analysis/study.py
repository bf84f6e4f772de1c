"""A whole sweep's analysis: the settings chosen on validation, every family's fits, the IsoFLOP
analyses and the comparison, with each analysis that cannot be made recorded as a refusal instead
of a curve."""
from __future__ import annotations

import dataclasses
import math
import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.bootstrap import DEFAULT_LEVEL, DEFAULT_RESAMPLES, family_points, resample
from analysis.approaches import ApproachComparison, compare_approaches, envelope_exponent
from analysis.compare import Comparison, compare, default_pair
from analysis.data_constrained import DataConstrainedFit, fit_data_constrained
from analysis.family import FamilyFit, fit_family
from analysis.isoflop import IsoflopFit, ParametricFit, fit_isoflop, fit_parametric
from analysis.learning_rate import RateLaw, RateProfile, fit_rate_law, rate_profiles
from analysis.results import Metric, choose_metric, trial_table
from analysis.selection import CellChoice, SelectionPolicy, choose_settings, selection_policy
from scaling.errors import GrscaleError


@dataclass(frozen=True)
class Refusal:
    """An analysis that the data cannot support, and why."""

    family: str
    analysis: str
    message: str


@dataclass(frozen=True)
class StudyResult:
    sweep: str
    metric: Metric
    level: float
    n_resamples: int
    seed: int
    selection: SelectionPolicy
    settings: tuple[CellChoice, ...]  # the cells that had several settings, and the one chosen in each
    fits: dict[str, FamilyFit]
    isoflop: dict[str, IsoflopFit]
    parametric: dict[str, ParametricFit]
    data_constrained: dict[str, DataConstrainedFit]
    approaches: dict[str, ApproachComparison]  # Chinchilla's three approaches, where two or more were possible
    comparison: Comparison | None
    refusals: tuple[Refusal, ...]
    rate_profiles: tuple[RateProfile, ...]  # cells that tried several learning rates
    rate_laws: dict[str, RateLaw]  # lr*(N) per family, where two sizes or more have a located optimum
    trials: pd.DataFrame = field(repr=False)

    def excluded(self) -> pd.DataFrame:
        """Trials left out of every fit (diverged, failed, unfinished), with their reasons."""
        return self.trials[~self.trials["usable"]]


def analyze(
    frame: pd.DataFrame,
    *,
    metric: str | None = None,
    higher_is_better: bool | None = None,
    select_on: str | None = None,
    families: list[str] | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> StudyResult:
    """Fit everything the results table supports; refusals are collected, not raised.

    `higher_is_better` states the direction of a metric the schema does not know; `select_on`
    ("validation" | "test") overrides the table's own. A table that cannot be selected on as asked
    is refused (GrscaleError).
    """
    if n_resamples < 1:
        raise GrscaleError(f"--bootstrap must be at least 1, got {n_resamples}")
    chosen = choose_metric(frame, metric, higher_is_better)
    trials = trial_table(frame, chosen)
    present = sorted(trials["family"].unique())
    families = families or present
    unknown = [f for f in families if f not in present]
    if unknown:
        raise GrscaleError(f"family {', '.join(unknown)} not in the table; it has {', '.join(present)}")
    policy = selection_policy(trials[trials["family"].isin(families)], chosen, select_on)
    trials, settings = choose_settings(trials, chosen, policy)
    fits, isoflop, parametric, constrained, approaches, refusals = {}, {}, {}, {}, {}, []
    for family in families:
        # One generator per family, so a family's intervals do not depend on which others run.
        rng = np.random.default_rng([seed, zlib.crc32(family.encode())])
        try:
            points = family_points(trials, family)
        except GrscaleError as error:
            refusals.append(Refusal(family, "all", str(error)))
            continue
        batch = resample(points, n_resamples, rng, level)
        envelope = {}
        for name, fitter, store in (
            ("quality vs compute", fit_family, fits),
            ("IsoFLOP", fit_isoflop, isoflop),
            ("L(N, D)", fit_parametric, parametric),
            ("data-constrained L(N, D')", fit_data_constrained, constrained),
            ("envelope", envelope_exponent, envelope),
        ):
            try:
                store[family] = fitter(points, batch, level)
            except GrscaleError as error:
                refusals.append(Refusal(family, name, str(error)))
        agreement = compare_approaches(family, envelope.get(family), isoflop.get(family), parametric.get(family), level)
        if agreement is not None:
            approaches[family] = agreement
    profiles = rate_profiles(trials[trials["family"].isin(families)])
    rate_laws = {}
    for family in sorted({p.family for p in profiles}):
        try:
            rate_laws[family] = fit_rate_law(profiles, family, n_resamples,
                                             np.random.default_rng([seed, zlib.crc32(f"lr {family}".encode())]), level)
        except GrscaleError as error:
            refusals.append(Refusal(family, "lr*(N)", str(error)))
    comparison = None
    pair = default_pair(families)
    if pair is not None:
        missing = [f for f in pair if f not in fits]
        if missing:
            refusals.append(Refusal(" vs ".join(pair), "comparison", f"no quality-vs-compute fit for {', '.join(missing)}"))
        else:
            comparison = compare(fits[pair[0]], fits[pair[1]], level)
    sweeps = sorted(trials["sweep"].astype(str).unique())
    return StudyResult(
        sweep=",".join(sweeps), metric=chosen, level=level, n_resamples=n_resamples, seed=seed, selection=policy,
        settings=tuple(c for c in settings if c.family in families), fits=fits, isoflop=isoflop,
        parametric=parametric, data_constrained=constrained, approaches=approaches, comparison=comparison, refusals=tuple(refusals),
        rate_profiles=profiles, rate_laws=rate_laws, trials=trials,
    )


def to_dict(result: StudyResult) -> dict:
    """JSON-ready form of a result: bootstrap samples and the trial frame left out (repr=False)."""
    out = _plain(result)
    out["metric"]["fitted"] = result.metric.fitted
    out["excluded_trials"] = [
        {"trial_id": r.trial_id, "family": r.family, "status": r.status, "reason": r.note}
        for r in result.excluded().itertuples()
    ]
    return out


def _plain(value):
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else (None if math.isnan(value) else str(value))
    if isinstance(value, np.generic):
        return value.item()
    return value
