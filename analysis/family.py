"""One family's quality against compute: the three forms, their intervals, model selection
(AIC and leave-one-budget-out error) and the extrapolation check to the largest budget."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analysis.bootstrap import (
    Batch, BestPerBudget, Interval, Points, best_per_budget, centred_on_curve, percentile_interval,
)
from analysis.powerlaw import (
    FORMS, LogLinearLaw, PowerLaw, SaturatingLaw, exponent_index, fit_batch, law_from_row, predict_log,
    predict_value,
)
from analysis.determinacy import bounds, judged_at_the_data, undetermined_reasons
from scaling.errors import GrscaleError

MIN_BUDGETS = 4
N_PARAMS = {"saturating": 3, "power": 2, "loglinear": 2}
PARAM_NAMES = {"saturating": ("E", "A", "alpha"), "power": ("A", "alpha"), "loglinear": ("a", "b")}
# Parameters positive by construction, whose spread is judged in decades (the log-linear form's
# intercept and slope may be any sign: a slope whose interval holds 0 is a finding, not a failure).
POSITIVE = {"saturating": ("E", "A", "alpha"), "power": ("A", "alpha"), "loglinear": ()}


@dataclass(frozen=True)
class FormScore:
    """How well one form describes the data: AIC on log residuals, held-out errors."""

    form: str
    n_params: int
    aic: float
    heldout_rmse: float  # leave-one-budget-out RMS of log(predicted / observed)
    extrapolation_error: float  # relative error at the largest budget, fitted without it


@dataclass(frozen=True)
class Extrapolation:
    """The saturating law fitted without the largest budget, predicting it."""

    budget: float
    observed: float
    predicted: float
    relative_error: float


@dataclass(frozen=True)
class FamilyFit:
    family: str
    budgets: np.ndarray  # nominal budgets
    losses: np.ndarray  # per budget, the chosen cell's mean error as measured
    best_sizes: tuple[str, ...]
    best_settings: tuple[str, ...]
    best_selection: np.ndarray  # the selecting (validation) error that chose each best cell
    point_flops: np.ndarray  # every trial the laws were fitted to, at its own achieved FLOPs
    point_losses: np.ndarray  # and its error
    saturating: SaturatingLaw
    power: PowerLaw
    loglinear: LogLinearLaw
    intervals: dict[str, Interval]  # "<form>.<param>" -> percentile interval
    undetermined: dict[str, tuple[str, ...]]  # form -> why its parameters are not determined (empty: they are)
    scores: tuple[FormScore, ...]
    preferred_by_aic: str
    preferred_by_heldout: str
    extrapolation: Extrapolation | None
    extrapolation_note: str
    scheme: str
    huber_delta: float  # the saturating fit's Huber threshold on log residuals
    n_resamples: int
    n_valid: int
    samples: dict[str, np.ndarray] = field(repr=False)  # form -> (n_resamples, k), NaN rows failed

    def law(self, form: str):
        return {"saturating": self.saturating, "power": self.power, "loglinear": self.loglinear}[form]

    def exponent_interval(self, form: str) -> Interval:
        return self.intervals[f"{form}.{PARAM_NAMES[form][exponent_index(form)]}"]


def check_budgets(points: Points) -> np.ndarray:
    """The distinct budgets of a family, refusing data that cannot determine a law."""
    budgets = np.unique(points.budget)
    if len(budgets) == 1:
        raise GrscaleError(
            f"no spread in compute: every usable run of family {points.family!r} has C = {budgets[0]:.3g} FLOPs"
        )
    if len(budgets) < MIN_BUDGETS:
        listed = ", ".join(f"{c:.3g}" for c in budgets)
        raise GrscaleError(
            f"family {points.family!r} has usable runs at only {len(budgets)} budgets ({listed}); "
            f"a fit needs at least {MIN_BUDGETS}"
        )
    return budgets


def fit_family(points: Points, batch: Batch, level: float) -> FamilyFit:
    """Fit every form to the trials of the best cell per budget (chosen on the selecting error in
    every data set), each trial at its own FLOPs, with bootstrap intervals over runs."""
    check_budgets(points)
    best = best_per_budget(points, batch)
    log_c, log_q = np.log(points.flops), np.log(batch.values)
    valid = best.drawn.sum(axis=1) >= MIN_BUDGETS
    params = fit_forms(points, batch, best)
    samples = {form: np.where(valid[1:, None], p[1:], np.nan) for form, p in params.items()}
    intervals = {
        f"{form}.{name}": percentile_interval(samples[form][:, j], level)
        for form in FORMS
        for j, name in enumerate(PARAM_NAMES[form])
    }
    fitted = best.weights[0] > 0
    budget_of = np.searchsorted(best.budgets, points.budget[points.cell])
    scores = tuple(_score(form, params[form][0], log_c[fitted], log_q[0, fitted], budget_of[fitted], batch.huber_delta)
                   for form in FORMS)
    extrapolation, note = _extrapolation(best.budgets, best.values[0], scores)
    lowest, centre = float(points.loss[fitted].min()), float(log_c[fitted].mean())
    undetermined = {}
    for form in FORMS:
        names = PARAM_NAMES[form]
        own = {name: intervals[f"{form}.{name}"] for name in names}
        amplitude = {"A": ("alpha", "C", centre)} if "A" in names else {}
        judged = judged_at_the_data(names, params[form][0], samples[form], own, amplitude)
        undetermined[form] = undetermined_reasons(judged, POSITIVE[form], bounds(names, lowest))
    return FamilyFit(
        family=points.family,
        budgets=best.budgets,
        losses=best.values[0],
        best_sizes=tuple(str(points.size[i]) for i in best.chosen[0]),
        best_settings=tuple(str(points.setting[i]) for i in best.chosen[0]),
        best_selection=best.selection[0],
        point_flops=points.flops[fitted],
        point_losses=points.loss[fitted],
        saturating=law_from_row("saturating", params["saturating"][0]),
        power=law_from_row("power", params["power"][0]),
        loglinear=law_from_row("loglinear", params["loglinear"][0]),
        intervals=intervals,
        undetermined=undetermined,
        scores=scores,
        preferred_by_aic=min(scores, key=lambda s: s.aic).form,
        preferred_by_heldout=min(scores, key=lambda s: s.heldout_rmse).form,
        extrapolation=extrapolation,
        extrapolation_note=note,
        scheme=batch.scheme,
        huber_delta=batch.huber_delta,
        n_resamples=batch.values.shape[0] - 1,
        n_valid=int(valid[1:].sum()),
        samples=samples,
    )


def fit_forms(points: Points, batch: Batch, best: BestPerBudget) -> dict[str, np.ndarray]:
    """Each form's parameters (rows, k) over the batch. The straight-line forms are fitted to the
    batch as drawn: for a linear estimator the centre of the resamples does not move their spread.
    The saturating law is not linear: its resamples are centred on its own fit to the measured data
    (row 0) rather than on the cell means, whose noise would otherwise widen its intervals beyond
    their level (benchmarks/fit_coverage.md)."""
    log_c = np.log(points.flops)
    params = {form: fit_batch(form, log_c, np.log(batch.values), best.weights, delta=batch.huber_delta)
              for form in FORMS if form != "saturating"}
    measured = fit_batch("saturating", log_c, np.log(batch.values[:1]), best.weights[:1], delta=batch.huber_delta)
    curve = predict_log("saturating", measured, log_c)[0]
    values = centred_on_curve(batch, curve, best.weights[0] > 0)
    params["saturating"] = fit_batch("saturating", log_c, np.log(values), best.weights, delta=batch.huber_delta)
    return {form: params[form] for form in FORMS}


def prediction_band(fit: FamilyFit, form: str, flops: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise percentile band of the bootstrap curves of `form` at `flops`."""
    pred = np.exp(predict_log(form, fit.samples[form], np.log(flops)))
    pred = pred[~np.isnan(fit.samples[form]).any(axis=1)]
    low, high = np.nanquantile(pred, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return low, high


def _score(form: str, row: np.ndarray, log_c: np.ndarray, log_q: np.ndarray, budget: np.ndarray,
           delta: float) -> FormScore:
    """AIC from the Gaussian likelihood of the trials' log residuals, and leave-one-budget-out errors
    (a budget's error: the mean log residual of its trials)."""
    n, k = len(log_c), N_PARAMS[form]
    resid = predict_log(form, row[None], log_c)[0] - log_q
    # A prediction of Q <= 0 (possible for the log-linear form) is an infinitely bad fit.
    resid = np.nan_to_num(resid, nan=np.inf)
    rss = max(float(np.sum(resid**2)), 1e-300)  # noise-free data: AIC tends to -inf, not NaN
    # Fold i leaves budget i out; the last fold is the extrapolation to the largest budget.
    budgets = np.unique(budget)
    folds = (budget[None, :] != budgets[:, None]).astype(float)
    # Fold 0 searches the dense grid; the others also start from its optimum, a near neighbour of theirs.
    fold_params = fit_batch(form, log_c, np.broadcast_to(log_q, folds.shape), folds, delta=delta)
    predicted = predict_log(form, fold_params, log_c)  # (folds, trials)
    heldout = np.array([np.mean(predicted[i, budget == b] - log_q[budget == b]) for i, b in enumerate(budgets)])
    heldout = np.nan_to_num(heldout, nan=np.inf)
    top = budget == budgets[-1]
    with np.errstate(over="ignore", invalid="ignore"):
        predicted_top = predict_value(form, fold_params[-1:], log_c[top])[0].mean()
    extrapolation = predicted_top / np.exp(log_q[top]).mean() - 1.0 if len(budgets) > MIN_BUDGETS else np.nan
    with np.errstate(over="ignore"):  # a fold whose law runs off towards inf scores an infinite error
        heldout_rmse = float(np.sqrt(np.mean(heldout**2)))
    return FormScore(
        form=form,
        n_params=k,
        aic=n * np.log(rss / n) + 2 * k,
        heldout_rmse=heldout_rmse,
        extrapolation_error=float(extrapolation),
    )


def _extrapolation(budgets: np.ndarray, losses: np.ndarray, scores: tuple[FormScore, ...]) -> tuple[Extrapolation | None, str]:
    if len(budgets) <= MIN_BUDGETS:
        return None, (
            f"not checked: fitting without the largest budget leaves {len(budgets) - 1} budgets, "
            f"fewer than the {MIN_BUDGETS} a fit needs"
        )
    error = next(s.extrapolation_error for s in scores if s.form == "saturating")
    observed = float(losses[-1])
    return Extrapolation(float(budgets[-1]), observed, observed * (1.0 + error), error), ""
