"""The result as tidy tables: what `grscale fit` prints, the report shows and W&B receives."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from analysis.bootstrap import Interval, as_measured, best_per_budget, family_points
from analysis.budget import flops_ratio, missed_budget
from analysis.family import PARAM_NAMES, prediction_band
from analysis.powerlaw import FORMS
from analysis.results import ONE_SETTING
from analysis.selection import EDGE_NOTE
from analysis.study import StudyResult
from scaling.schema import TASKS, short_number

# Repeated data loses value after about 4 passes (Muennighoff et al. 2023): points past it are marked.
MANY_EPOCHS = 4.0
EPOCHS_MARK = f"past {MANY_EPOCHS:g} epochs"

CURVE_POINTS = 200  # per fitted curve, log-spaced

PARAMETRIC_TEXT = "L = E + A/N^alpha + B/D^beta"
CONSTRAINED_TEXT = "L = E + A/N^alpha + B/D'^beta (data-constrained)"
LAW_TEXT = {
    "saturating": "Q = E + A C^-alpha",
    "power": "Q = A C^-alpha",
    "loglinear": "Q = a + b ln C",
}


def analysed_families(result: StudyResult) -> set[str]:
    """The families the study analysed (`fit --family` picks some): each has a fit or a refusal."""
    return {*result.fits, *result.isoflop, *result.parametric, *(r.family for r in result.refusals)}


def chosen_trials(result: StudyResult) -> pd.DataFrame:
    """The usable trials of each cell's chosen setting in the families analysed: what the curves and
    the fits are drawn from, with the metric's own column (its `value`) whatever it is named."""
    t = result.trials
    trials = t[t["usable"] & t["chosen"] & t["family"].isin(analysed_families(result))]
    return trials.assign(**{result.metric.name: trials["value"]})


def measured_cells(result: StudyResult) -> pd.DataFrame:
    """Per (family, size, budget), the chosen setting's seeds averaged: mean achieved FLOPs, error,
    selecting error, epochs and reported metrics, and `best`: whether it is its budget's best size
    on the selecting error (bootstrap.best_per_budget on the data as measured, as the fits choose).
    Sizes come in order of their non-embedding parameters; drawn from the trials alone, fitted or not."""
    trials = chosen_trials(result)
    metrics = reported_metrics(result)
    means = ["flops", "tokens", "params_nonembedding", "epochs", "loss", "selection_loss", *metrics]
    keys = ["family", "budget", "size"]
    cells = trials.groupby(keys, sort=True).agg(
        setting=("setting", "first"), seeds=("seed", "size"), **{c: (c, "mean") for c in means}).reset_index()
    best = set()
    for family in cells["family"].unique():  # chosen as the fits choose it, on the data as measured
        points = family_points(result.trials, family)
        best |= {(family, points.size[i], points.budget[i]) for i in best_per_budget(points, as_measured(points)).chosen[0]}
    cells["best"] = [key in best for key in zip(cells["family"], cells["size"], cells["budget"])]
    return cells.sort_values(["family", "params_nonembedding", "size", "budget"], kind="stable").reset_index(drop=True)


def best_size_trials(result: StudyResult) -> pd.DataFrame:
    """The trials of each budget's best size (at its chosen setting), each at its own coordinates."""
    best = measured_cells(result).loc[lambda c: c["best"], ["family", "budget", "size"]]
    return chosen_trials(result).merge(best, on=["family", "budget", "size"])


def reported_metrics(result: StudyResult) -> list[str]:
    """The fitted metric, then the task's other reported metrics (schema.TASKS) the table holds."""
    tasks = result.trials["task"].dropna().unique()
    reported = TASKS[tasks[0]].reported if len(tasks) == 1 and tasks[0] in TASKS else ()
    columns = [result.metric.name, *(f"test/{m}" for m in reported)]
    return [c for c in dict.fromkeys(columns) if c == result.metric.name or c in result.trials.columns]


def past_many_epochs(epochs: pd.Series) -> pd.Series:
    """Whether each epoch count is past MANY_EPOCHS (unknown counts are not)."""
    return epochs.fillna(0.0) > MANY_EPOCHS


def best_size_table(result: StudyResult) -> pd.DataFrame:
    """Per family and budget, the point the laws are fitted to: its size and setting, the selecting
    value that chose it (validation, unless the study selects on test), its test value and the
    task's other reported metrics, each a mean over the seeds; drawn from the trials, so it exists
    whether or not a law could be fitted."""
    metric, column = result.metric, result.selection.column
    selects, fitted = f"{column} (selects)", f"{metric.name} (fitted)"
    best = measured_cells(result).loc[lambda c: c["best"]].sort_values(["family", "budget"])
    frame = pd.DataFrame({
        "family": best["family"], "budget": best["budget"], "size": best["size"], "setting": best["setting"],
        "seeds": best["seeds"], selects: metric.error(best["selection_loss"]), fitted: metric.error(best["loss"]),
        **{name: best[name] for name in reported_metrics(result)[1:]},
        "epochs": best["epochs"],
    })
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
         "gap": c.gap, "note": c.edge_note}
        for c in result.settings
    ]
    return pd.DataFrame(rows, columns=["family", "size", "budget", "settings", "chosen", "seeds", chosen, "runner_up",
                                       runner_up, "gap", "note"])


def rate_profile_table(result: StudyResult) -> pd.DataFrame:
    """Per cell that tried several learning rates: the selecting error at each, the best rate, its
    located optimum and whether the best sits at the grid's edge."""
    column = result.selection.column
    rows = [
        {"family": p.family, "size": p.size, "budget": p.budget, "rates": ", ".join(short_number(r) for r in p.rates),
         column: ", ".join(f"{e:.4g}" for e in p.errors), "best": p.best, "optimum": p.optimum,
         "note": EDGE_NOTE if p.at_edge else ""}
        for p in result.rate_profiles
    ]
    return pd.DataFrame(rows, columns=["family", "size", "budget", "rates", column, "best", "optimum", "note"])


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
    """Every trial: its coordinates, size (N), data (tokens, epochs, with those past MANY_EPOCHS
    marked), learning rate, quality, and whether it entered the fits and why not."""
    t = result.trials
    nan = pd.Series(np.nan, index=t.index)
    return pd.DataFrame({
        "trial_id": t["trial_id"], "family": t["family"], "size": t["size"], "setting": t["setting"],
        "seed": t["seed"], "budget": t["budget"], "flops": t["flops"], "N": t["params_nonembedding"],
        "tokens": t["tokens"], "epochs": t["epochs"], EPOCHS_MARK: past_many_epochs(t["epochs"]).map({True: "yes", False: ""}),
        "peak_lr": t.get("peak_lr", nan), "status": t["status"], result.metric.validation: t["validation"],
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


def law_curves(result: StudyResult) -> pd.DataFrame:
    """Per family, every form's fitted curve and the saturating law's interval band on a log grid from
    half its smallest to twice its largest budget: what the quality-vs-compute figure draws and
    what W&B receives as the laws' line series. Values are the fitted error (`metric.fitted`)."""
    frames = []
    for family, fit in sorted(result.fits.items()):
        grid = np.geomspace(fit.budgets.min() / 2, fit.budgets.max() * 2, CURVE_POINTS)
        low, high = prediction_band(fit, "saturating", grid, result.level)
        frames.append(pd.DataFrame({"family": family, "flops": grid,
                                    **{form: fit.law(form).predict(grid) for form in FORMS}, "low": low, "high": high}))
    columns = ["family", "flops", *FORMS, "low", "high"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def law_points(result: StudyResult) -> pd.DataFrame:
    """Per family and budget, the measured point the laws are fitted to (its fitted error)."""
    rows = [{"family": family, "flops": budget, "size": size, "setting": setting, "loss": loss}
            for family, fit in sorted(result.fits.items())
            for budget, size, setting, loss in zip(fit.budgets, fit.best_sizes, fit.best_settings, fit.losses)]
    return pd.DataFrame(rows, columns=["family", "flops", "size", "setting", "loss"])


def budget_miss_table(result: StudyResult) -> pd.DataFrame:
    """Trials whose achieved FLOPs (their last row's) are off their planned budget by more than 1%,
    as their W&B summaries flag them (`budget_missed`)."""
    t = result.trials
    ratio = flops_ratio(t["flops"].astype(float), t["budget"].astype(float))
    missed = missed_budget(ratio)
    return pd.DataFrame({"trial_id": t["trial_id"], "family": t["family"], "size": t["size"], "status": t["status"],
                         "planned": t["budget"], "achieved": t["flops"], "ratio": ratio})[missed].reset_index(drop=True)
