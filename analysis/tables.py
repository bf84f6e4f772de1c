"""The result as tidy tables: what `grscale fit` prints, the report shows and W&B receives."""
from __future__ import annotations

import dataclasses

import pandas as pd

from analysis.bootstrap import Interval
from analysis.family import PARAM_NAMES
from analysis.powerlaw import FORMS
from analysis.results import ONE_SETTING
from analysis.selection import EDGE_NOTE
from analysis.study import StudyResult

PARAMETRIC_TEXT = "L = E + A/N^alpha + B/D^beta"
CONSTRAINED_TEXT = "L = E + A/N^alpha + B/D'^beta (data-constrained)"
LAW_TEXT = {
    "saturating": "Q = E + A C^-alpha",
    "power": "Q = A C^-alpha",
    "loglinear": "Q = a + b ln C",
}


def best_size_table(result: StudyResult) -> pd.DataFrame:
    """Per family and budget, the point the laws are fitted to: its size and setting, the selecting
    value that chose it (validation, unless the study selects on test) and its test value."""
    metric, column = result.metric, result.selection.column
    selects, fitted = f"{column} (selects)", f"{metric.name} (fitted)"
    rows = [
        {"family": family, "budget": budget, "size": size, "setting": setting, selects: metric.error(chose),
         fitted: metric.error(loss)}
        for family, fit in sorted(result.fits.items())
        for budget, size, setting, chose, loss in zip(fit.budgets, fit.best_sizes, fit.best_settings,
                                                      fit.best_selection, fit.losses)
    ]
    frame = pd.DataFrame(rows, columns=["family", "budget", "size", "setting", selects, fitted])
    # A study with one setting per cell has nothing to say in that column.
    return frame.drop(columns="setting") if frame["setting"].eq(ONE_SETTING).all() else frame


def setting_table(result: StudyResult) -> pd.DataFrame:
    """Per (family, size, budget) cell that had several settings: the one chosen, the runner-up and
    how much worse the runner-up is on the selecting metric (mean over seeds)."""
    column = result.selection.column
    chosen, runner_up = f"chosen {column}", f"runner-up {column}"
    rows = [
        {"family": c.family, "size": c.size, "budget": c.budget, "settings": c.settings, "chosen": c.chosen,
         "seeds": c.seeds, chosen: c.chosen_value, "runner_up": c.runner_up, runner_up: c.runner_up_value,
         "gap": c.gap, "note": EDGE_NOTE if c.at_edge else ""}
        for c in result.settings
    ]
    return pd.DataFrame(rows, columns=["family", "size", "budget", "settings", "chosen", "seeds", chosen, "runner_up",
                                       runner_up, "gap", "note"])


def parameter_table(result: StudyResult) -> pd.DataFrame:
    """Every fitted parameter with its bootstrap interval."""
    rows = []

    def add(family: str, fit: str, name: str, value: float, interval: Interval) -> None:
        rows.append(dict(family=family, fit=fit, parameter=name, value=value, low=interval.low, high=interval.high))

    for family, fit in sorted(result.fits.items()):
        for form in FORMS:
            law = dataclasses.asdict(fit.law(form))
            for name in PARAM_NAMES[form]:
                add(family, LAW_TEXT[form], name, law[name], fit.intervals[f"{form}.{name}"])
    for family, iso in sorted(result.isoflop.items()):
        front = iso.frontier
        add(family, "N*(C) = k C^a (IsoFLOP)", "a", front.exponent, front.exponent_interval)
    for family, par in sorted(result.parametric.items()):
        law = dataclasses.asdict(par.law)
        for name, interval in par.intervals.items():
            add(family, PARAMETRIC_TEXT, name, law[name], interval)
    for family, dc in sorted(result.data_constrained.items()):
        law = dataclasses.asdict(dc.law)
        for name, interval in dc.intervals.items():
            add(family, CONSTRAINED_TEXT, name, law[name], interval)
        add(family, CONSTRAINED_TEXT, "R*", dc.r_star, dc.r_star_interval)
    return pd.DataFrame(rows, columns=["family", "fit", "parameter", "value", "low", "high"])


def selection_table(result: StudyResult) -> pd.DataFrame:
    """AIC and held-out errors of the three forms, per family."""
    rows = []
    for family, fit in sorted(result.fits.items()):
        best_aic = min(s.aic for s in fit.scores)
        for s in fit.scores:
            rows.append(dict(
                family=family, form=LAW_TEXT[s.form], params=s.n_params, aic=s.aic, delta_aic=s.aic - best_aic,
                lobo_rmse_log=s.heldout_rmse, extrapolation_rel_error=s.extrapolation_error,
            ))
    return pd.DataFrame(rows, columns=["family", "form", "params", "aic", "delta_aic", "lobo_rmse_log", "extrapolation_rel_error"])


def isoflop_table(result: StudyResult) -> pd.DataFrame:
    rows = [
        dict(family=family, budget=p.budget, n_opt=p.n_opt, low=p.n_opt_interval.low, high=p.n_opt_interval.high, loss_at_opt=p.loss_opt)
        for family, iso in sorted(result.isoflop.items())
        for p in iso.profiles
    ]
    return pd.DataFrame(rows, columns=["family", "budget", "n_opt", "low", "high", "loss_at_opt"])


def multiplier_table(result: StudyResult) -> pd.DataFrame:
    """Compute family B needs to match family A's fitted quality, as a multiple of A's."""
    cmp = result.comparison
    rows = [] if cmp is None else [
        dict(flops=m.flops, quality_a=m.quality, multiplier=m.multiplier, low=m.interval.low, high=m.interval.high)
        for m in cmp.multipliers
    ]
    return pd.DataFrame(rows, columns=["flops", "quality_a", "multiplier", "low", "high"])


def trials_for_report(result: StudyResult) -> pd.DataFrame:
    """Every trial, with whether it entered the fits and why not."""
    t = result.trials
    return pd.DataFrame({
        "trial_id": t["trial_id"], "family": t["family"], "size": t["size"], "setting": t["setting"],
        "seed": t["seed"], "budget": t["budget"], "status": t["status"], result.metric.validation: t["validation"],
        result.metric.name: t["value"], "used": t["chosen"], "reason": t["note"],
    })


def undetermined_table(result: StudyResult) -> pd.DataFrame:
    """Every fit the data do not determine, and why (analysis.determinacy)."""
    rows = [dict(family=family, fit=LAW_TEXT[form], why="; ".join(reasons))
            for family, fit in sorted(result.fits.items()) for form, reasons in fit.undetermined.items() if reasons]
    rows += [dict(family=family, fit="N*(C) = k C^a (IsoFLOP)", why="; ".join(iso.frontier.undetermined))
             for family, iso in sorted(result.isoflop.items()) if iso.frontier.undetermined]
    rows += [dict(family=family, fit=fit_name, why="; ".join(par.undetermined))
             for fit_name, fits in ((PARAMETRIC_TEXT, result.parametric), (CONSTRAINED_TEXT, result.data_constrained))
             for family, par in sorted(fits.items()) if par.undetermined]
    return pd.DataFrame(rows, columns=["family", "fit", "why"])


def approaches_table(result: StudyResult) -> pd.DataFrame:
    """Chinchilla's approaches to N*(C) ~ C^a side by side, per family."""
    rows = [dict(family=family, approach=e.approach, a=e.exponent, low=e.interval.low, high=e.interval.high,
                 determined=not e.undetermined, agree=cmp.agree)
            for family, cmp in sorted(result.approaches.items()) for e in cmp.estimates]
    return pd.DataFrame(rows, columns=["family", "approach", "a", "low", "high", "determined", "agree"])


def refusal_table(result: StudyResult) -> pd.DataFrame:
    return pd.DataFrame([dataclasses.asdict(r) for r in result.refusals], columns=["family", "analysis", "message"])
