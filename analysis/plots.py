"""Figures drawn from a StudyResult, each with its caption: pure consumers of the trials and fits.

The measured curves come from the trials table alone, so they exist when nothing can be fitted;
the fitted laws, residuals and IsoFLOP figures exist where their fits do. Every figure is at least
MIN_WIDTH_IN wide with its legend outside the plot area (constrained layout makes the room).
Figures are built on matplotlib.figure.Figure directly (no pyplot), so nothing global is touched
and no display backend is needed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis import tables
from analysis.powerlaw import FORMS, predict_log
from analysis.study import StudyResult
from analysis.tables import EPOCHS_MARK, LAW_TEXT, MANY_EPOCHS
from scaling import files

DPI = 110
MIN_WIDTH_IN = 11.5  # 1,265 px at DPI
PANEL_IN = 5.0  # width of one panel, its legend aside
STYLE = {"saturating": "-", "power": "--", "loglinear": ":"}
FORM_COLOR = {"saturating": "C0", "power": "C1", "loglinear": "C2"}
EPOCHS_SENTENCE = (f"Hollow markers are trials past {MANY_EPOCHS:g} epochs: they repeated their training data more "
                   f"than {MANY_EPOCHS:g} times, past which repeated data loses value (Muennighoff et al. 2023), so "
                   "such a point may understate what the same compute on fresh data reaches.")


@dataclass(frozen=True)
class Captioned:
    figure: Figure
    caption: str  # what it shows, its seeds and its interval level


def all_figures(result: StudyResult) -> dict[str, Captioned]:
    """Every figure the data supports, by file stem, in the order the report shows them."""
    if tables.chosen_trials(result).empty:
        return {}
    figures = {"quality_vs_flops": measured_curves(result), "metrics_vs_flops": metric_panels(result)}
    if result.fits:
        figures |= {"fitted_laws": fitted_laws(result), "residuals": residuals(result)}
    if result.isoflop:
        figures |= {"isoflop": isoflop_profiles(result), "frontier": frontier(result)}
    if result.rate_profiles:
        figures["learning_rate"] = learning_rate_profiles(result)
    return figures


def save_figures(figures: dict[str, Captioned], out_dir: Path) -> dict[str, dict[str, Path]]:
    """Write each figure as PNG and SVG; returns {stem: {"png": path, "svg": path}}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for stem, drawn in figures.items():
        paths[stem] = {}
        for ext in ("png", "svg"):
            draw = partial(drawn.figure.savefig, format=ext, dpi=DPI)  # draw(handle)
            paths[stem][ext] = files.atomic_write(out_dir / f"{stem}.{ext}", draw)
    return paths


def _panels(n: int, height: float = 4.2) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(max(MIN_WIDTH_IN, n * PANEL_IN + 2.5), height), layout="constrained")
    return fig, list(fig.subplots(1, n, squeeze=False)[0])


def _legend_outside(ax: Axes, handles: list | None = None, **kwargs) -> None:
    """The axes' legend to the right of its plot area, never over the data."""
    if handles is None:
        handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, borderaxespad=0, **kwargs)


def _scatter(ax: Axes, x, y, epochs: pd.Series, color, **kwargs) -> None:
    """Points, hollow where their trials went past MANY_EPOCHS."""
    past = tables.past_many_epochs(pd.Series(np.asarray(epochs, dtype=float))).to_numpy()
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ax.scatter(x[~past], y[~past], color=color, lw=0, **kwargs)
    ax.scatter(x[past], y[past], facecolors="none", edgecolors=color, lw=0.9, **kwargs)


def _epochs_handles(trials: pd.DataFrame) -> list[Line2D]:
    """The hollow marker's legend entry, where some trial drawn is past MANY_EPOCHS."""
    if not tables.past_many_epochs(trials["epochs"]).any():
        return []
    return [Line2D([], [], ls="", marker="o", mfc="none", mec="gray", label=EPOCHS_MARK)]


def _log_axes(ax: Axes, ylabel: str | None = None, log_y: bool = True) -> None:
    ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("training FLOPs C (achieved)")
    if ylabel:
        ax.set_ylabel(ylabel)


def _seeds(result: StudyResult) -> str:
    counts = tables.measured_cells(result)["seeds"]
    low, high = int(counts.min()), int(counts.max())
    return f"{low} seed{'s' if high > 1 else ''} per point" if low == high else f"{low} to {high} seeds per point"


def _epochs_note(trials: pd.DataFrame) -> str:
    return f" {EPOCHS_SENTENCE}" if tables.past_many_epochs(trials["epochs"]).any() else ""


def measured_curves(result: StudyResult) -> Captioned:
    """Per family a panel: each size's measured error against FLOPs, the best size per budget starred."""
    cells, trials = tables.measured_cells(result), tables.chosen_trials(result)
    families = sorted(cells["family"].unique())
    fig, axes = _panels(len(families))
    for ax, family in zip(axes, families):
        mine = cells[cells["family"] == family]
        sizes = list(dict.fromkeys(mine["size"]))  # smallest first
        colors = _size_colors(len(sizes))
        for size, color in zip(sizes, colors):
            curve = mine[mine["size"] == size].sort_values("budget")
            runs = trials[(trials["family"] == family) & (trials["size"] == size)]
            _scatter(ax, runs["flops"], runs["loss"], runs["epochs"], color, s=10, alpha=0.35)
            ax.plot(curve["flops"], curve["loss"], "-", color=color, lw=1.3, label=size)
            _scatter(ax, curve["flops"], curve["loss"], curve["epochs"], color, s=22, zorder=3)
            best = curve[curve["best"]]
            ax.scatter(best["flops"], best["loss"], marker="*", s=140, color=color, edgecolor="black", lw=0.7,
                       zorder=4)
        handles, _ = ax.get_legend_handles_labels()
        handles += [Line2D([], [], ls="", marker="*", ms=11, mfc="white", mec="black", label="best size per budget"),
                    *_epochs_handles(trials)]
        _legend_outside(ax, handles, title="size")
        _log_axes(ax, result.metric.fitted)
        ax.set_title(family)
    fig.suptitle(f"measured {result.metric.fitted} vs compute, per size (lower is better)")
    caption = (f"Measured {result.metric.fitted} against achieved training FLOPs, a panel per family and a line per "
               f"size: the mean over the chosen setting's seeds at each budget ({_seeds(result)}), each trial a faint "
               f"point at its own FLOPs; stars mark each budget's best size on {result.selection.column}. "
               f"Measurements only: no fit, no interval.{_epochs_note(trials)}")
    return Captioned(fig, caption)


def _size_colors(n: int) -> list:
    from matplotlib import colormaps

    return list(colormaps["viridis"](np.linspace(0.0, 0.85, n)))


def metric_panels(result: StudyResult) -> Captioned:
    """A panel per reported metric (the fitted one, then the task's others): the best size per budget."""
    metrics = tables.reported_metrics(result)
    cells = tables.measured_cells(result)
    best = cells[cells["best"]]
    trials = tables.best_size_trials(result)
    fig, axes = _panels(len(metrics), height=3.8)
    for ax, metric in zip(axes, metrics):
        for i, family in enumerate(sorted(best["family"].unique())):
            color = f"C{i}"
            runs = trials[trials["family"] == family]
            _scatter(ax, runs["flops"], runs[metric], runs["epochs"], color, s=10, alpha=0.35)
            curve = best[best["family"] == family].sort_values("budget")
            ax.plot(curve["flops"], curve[metric], "-o", color=color, ms=4, lw=1.3, label=family)
        _log_axes(ax, metric, log_y=False)
        ax.set_title(metric)
    _legend_outside(axes[-1], [*axes[-1].get_legend_handles_labels()[0], *_epochs_handles(trials)], title="family")
    fig.suptitle("the best size per budget on each reported metric")
    caption = (f"{', '.join(metrics)} against achieved training FLOPs, a panel per metric and a line per family: the "
               f"best size per budget (chosen on {result.selection.column}), mean over its seeds ({_seeds(result)}), "
               f"each trial a faint point. Measurements only: no interval.{_epochs_note(trials)}")
    return Captioned(fig, caption)


def fitted_laws(result: StudyResult) -> Captioned:
    """Per fitted family a panel: the three forms, the saturating law's bootstrap band, the trials fitted."""
    fits = sorted(result.fits.items())
    pct = round(100 * result.level)
    trials = tables.best_size_trials(result)
    curves = tables.law_curves(result)
    fig, axes = _panels(len(fits), height=4.4)
    for ax, (family, fit) in zip(axes, fits):
        runs = trials[trials["family"] == family]
        _scatter(ax, runs["flops"], runs["loss"], runs["epochs"], "black", s=14, alpha=0.7, zorder=3)
        curve = curves[curves["family"] == family]  # the same curves W&B receives as line series
        ax.fill_between(curve["flops"], curve["low"], curve["high"], color=FORM_COLOR["saturating"], alpha=0.2, lw=0,
                        label=f"saturating: {pct}% bootstrap band")
        for form in FORMS:
            ax.plot(curve["flops"], curve[form], STYLE[form], color=FORM_COLOR[form],
                    lw=1.8 if form == "saturating" else 1.2, label=f"{form}: {LAW_TEXT[form]}")
        _log_axes(ax, result.metric.fitted)
        ax.set_title(family)
    handles, _ = axes[0].get_legend_handles_labels()
    points = Line2D([], [], ls="", marker="o", ms=4, color="black", label="best size per budget: its trials")
    _legend_outside(axes[-1], [*handles, points, *_epochs_handles(trials)])
    fig.suptitle(f"fitted laws of {result.metric.fitted} vs compute")
    caption = (f"The three laws fitted to {result.metric.fitted} against training FLOPs, a panel per family, with the "
               f"saturating law's {pct}% pointwise bootstrap band ({result.n_resamples} resamples); points are the "
               f"best size per budget's trials at their own achieved FLOPs ({_seeds(result)}).{_epochs_note(trials)}")
    return Captioned(fig, caption)


def residuals(result: StudyResult) -> Captioned:
    fits = sorted(result.fits.items())
    fig, axes = _panels(len(fits), height=3.5)
    for ax, (family, fit) in zip(axes, fits):
        for form in FORMS:
            row = np.array([dataclasses.astuple(fit.law(form))])
            resid = np.log(fit.losses) - predict_log(form, row, np.log(fit.budgets))[0]
            ax.plot(fit.budgets, resid, STYLE[form], marker="o", ms=4, color=FORM_COLOR[form], label=form)
        ax.axhline(0.0, color="gray", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("training FLOPs C (budget)")
        ax.set_title(family)
    axes[0].set_ylabel("log(observed / fitted)")
    _legend_outside(axes[-1])
    caption = (f"Residuals of each law, log(observed / fitted), at the best point per budget (mean over its seeds, "
               f"{_seeds(result)}), a panel per family. A trend left in them is curvature the form misses. No interval.")
    return Captioned(fig, caption)


def isoflop_profiles(result: StudyResult) -> Captioned:
    fits = sorted(result.isoflop.items())
    fig, axes = _panels(len(fits), height=3.8)
    for ax, (family, iso) in zip(axes, fits):
        for i, profile in enumerate(iso.profiles):
            color = f"C{i % 10}"
            ax.scatter(profile.n_params, profile.losses, s=14, color=color)
            grid = np.geomspace(profile.n_params.min(), profile.n_params.max(), 100)
            ax.plot(grid, profile.predict(grid), color=color, lw=1, label=f"C={profile.budget:.1e}")
            ax.scatter([profile.n_opt], [profile.loss_opt], marker="*", s=80, color=color, edgecolor="black", zorder=3)
        ax.set_xscale("log")
        ax.set_xlabel("non-embedding parameters N")
        ax.set_title(f"{family}: IsoFLOP profiles")
        _legend_outside(ax)
    axes[0].set_ylabel(result.metric.fitted)
    caption = (f"IsoFLOP profiles: {result.metric.fitted} against non-embedding parameters N at each budget (mean over "
               f"seeds, {_seeds(result)}), a parabola in log N fitted per budget; stars mark its minimum N*. "
               f"The {round(100 * result.level)}% intervals of N* are in the IsoFLOP table.")
    return Captioned(fig, caption)


def frontier(result: StudyResult) -> Captioned:
    fig, (ax,) = _panels(1)
    pct = round(100 * result.level)
    for i, (family, iso) in enumerate(sorted(result.isoflop.items())):
        color = f"C{i}"
        front = iso.frontier
        budgets = np.array([p.budget for p in iso.profiles])
        n_opt = np.array([p.n_opt for p in iso.profiles])
        errors = np.array([[p.n_opt - p.n_opt_interval.low, p.n_opt_interval.high - p.n_opt] for p in iso.profiles]).T
        ax.errorbar(budgets, n_opt, yerr=np.clip(errors, 0, None), fmt="o", color=color, ms=4)
        grid = np.geomspace(budgets.min() / 2, budgets.max() * 2, 100)
        ok = front.samples[~np.isnan(front.samples).any(axis=1)]
        if len(ok):  # no resample with a frontier (e.g. every resample's profiles lack a minimum): no band
            band = np.exp(ok[:, :1] + ok[:, 1:] * np.log(grid)[None, :])
            low, high = np.quantile(band, [(1 - result.level) / 2, (1 + result.level) / 2], axis=0)
            ax.fill_between(grid, low, high, color=color, alpha=0.2, lw=0)
        interval = front.exponent_interval
        ax.plot(grid, front.predict(grid), color=color,
                label=f"{family}: N* ~ C^{front.exponent:.3f} [{interval.low:.3f}, {interval.high:.3f}]")
    _log_axes(ax, "compute-optimal N*")
    ax.set_xlabel("training FLOPs C (budget)")
    ax.set_title("compute-optimal frontier")
    _legend_outside(ax)
    caption = (f"Compute-optimal size N* per budget (the IsoFLOP minima, with {pct}% bootstrap intervals) and the "
               f"fitted N* ~ C^a with its {pct}% band ({result.n_resamples} resamples; {_seeds(result)}).")
    return Captioned(fig, caption)


def learning_rate_profiles(result: StudyResult) -> Captioned:
    """Per family a panel: each cell's selecting error against learning rate, one colour per size
    and one line per budget; the best rate marked, hollow where it sits at the grid's edge."""
    families = sorted({p.family for p in result.rate_profiles})
    fig, axes = _panels(len(families))
    for ax, family in zip(axes, families):
        mine = [p for p in result.rate_profiles if p.family == family]
        sizes = sorted({p.size for p in mine}, key=lambda z: min(p.n_params for p in mine if p.size == z))
        colors = dict(zip(sizes, _size_colors(len(sizes))))
        for p in mine:
            errors = np.array(p.errors)
            ax.plot(p.rates, np.where(np.isfinite(errors), errors, np.nan), color=colors[p.size], lw=0.8, alpha=0.7,
                    marker="o", ms=2.5)
            best = errors[p.rates.index(p.best)]
            face = "none" if p.at_edge else colors[p.size]
            ax.scatter([p.best], [best], s=40, facecolors=face, edgecolors=colors[p.size], zorder=3)
        law = result.rate_laws.get(family)
        title = f"{family}: learning-rate profiles"
        if law is not None:
            title += f"\nlr*(N) ~ N^-{law.b:.2f} [{law.b_interval.low:.2f}, {law.b_interval.high:.2f}]"
        ax.set_xscale("log")
        ax.set_xlabel("peak learning rate")
        ax.set_title(title, fontsize=9)
        handles = [Line2D([], [], color=colors[z], label=z) for z in sizes]
        handles.append(Line2D([], [], ls="", marker="o", mfc="none", mec="gray", label="best rate at the grid's edge"))
        _legend_outside(ax, handles)
    axes[0].set_ylabel(result.selection.column)
    pct = round(100 * result.level)
    caption = (f"Learning-rate profiles: each (size, budget) cell's {result.selection.column} (mean over its seeds, "
               f"{_seeds(result)}) against the peak learning rate, one line per budget, coloured by size; the large "
               "marker is the best rate, hollow where it is the smallest or largest tried (the optimum may lie "
               f"outside the grid). Where shown, lr*(N) ~ N^-b is fitted to the located optima, with its {pct}% "
               "interval from resampling the cells.")
    return Captioned(fig, caption)
