"""Figures drawn from a StudyResult: pure consumers of the fits, no fitting here.

Figures are built on matplotlib.figure.Figure directly (no pyplot), so nothing global is
touched and no display backend is needed.
"""
from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from scaling import files
from analysis.powerlaw import FORMS, predict_log
from analysis.study import StudyResult
from analysis.tables import law_curves

STYLE = {"saturating": "-", "power": "--", "loglinear": ":"}


def all_figures(result: StudyResult) -> dict[str, Figure]:
    """Every figure the data supports, by file stem."""
    figures = {}
    if result.fits:
        figures["quality_vs_flops"] = quality_vs_flops(result)
        figures["residuals"] = residuals(result)
    if result.isoflop:
        figures["isoflop"] = isoflop_profiles(result)
        figures["frontier"] = frontier(result)
    return figures


def save_figures(figures: dict[str, Figure], out_dir: Path) -> dict[str, dict[str, Path]]:
    """Write each figure as PNG and SVG; returns {stem: {"png": path, "svg": path}}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for stem, fig in figures.items():
        paths[stem] = {}
        for ext in ("png", "svg"):
            draw = partial(fig.savefig, format=ext, dpi=110, bbox_inches="tight")  # draw(handle)
            paths[stem][ext] = files.atomic_write(out_dir / f"{stem}.{ext}", draw)
    return paths


def quality_vs_flops(result: StudyResult) -> Figure:
    fig = Figure(figsize=(7, 4.8))
    ax = fig.add_subplot()
    pct = round(100 * result.level)
    curves = law_curves(result)  # the same curves W&B receives as line series
    for i, (family, fit) in enumerate(sorted(result.fits.items())):
        color = f"C{i}"
        mine = result.trials[(result.trials["family"] == family) & result.trials["usable"]]
        ax.scatter(mine["budget"], mine["loss"], s=10, color=color, alpha=0.3, lw=0)
        ax.scatter(fit.budgets, fit.losses, s=30, color=color, edgecolor="black", zorder=3, label=f"{family}: best per budget")
        curve = curves[curves["family"] == family]
        ax.fill_between(curve["flops"], curve["low"], curve["high"], color=color, alpha=0.2, lw=0,
                        label=f"{family}: {pct}% band")
        for form in FORMS:
            ax.plot(curve["flops"], curve[form], STYLE[form], color=color, lw=1.5 if form == "saturating" else 1,
                    label=f"{family}: {form}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training FLOPs C")
    ax.set_ylabel(result.metric.fitted)
    ax.set_title(f"{result.metric.fitted} vs compute (lower is better)")
    ax.legend(fontsize=7, ncol=2)
    return fig


def residuals(result: StudyResult) -> Figure:
    fits = sorted(result.fits.items())
    fig = Figure(figsize=(4 * len(fits), 3.5))
    axes = fig.subplots(1, len(fits), squeeze=False)[0]
    for ax, (family, fit) in zip(axes, fits):
        for form in FORMS:
            row = np.array([dataclasses.astuple(fit.law(form))])
            resid = np.log(fit.losses) - predict_log(form, row, np.log(fit.budgets))[0]
            ax.plot(fit.budgets, resid, STYLE[form], marker="o", ms=4, label=form)
        ax.axhline(0.0, color="gray", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("training FLOPs C")
        ax.set_title(family)
    axes[0].set_ylabel("log(observed / fitted)")
    axes[0].legend(fontsize=8)
    return fig


def isoflop_profiles(result: StudyResult) -> Figure:
    fits = sorted(result.isoflop.items())
    fig = Figure(figsize=(4.5 * len(fits), 3.8))
    axes = fig.subplots(1, len(fits), squeeze=False)[0]
    for ax, (family, iso) in zip(axes, fits):
        for i, profile in enumerate(iso.profiles):
            color = f"C{i}"
            ax.scatter(profile.n_params, profile.losses, s=14, color=color)
            grid = np.geomspace(profile.n_params.min(), profile.n_params.max(), 100)
            ax.plot(grid, profile.predict(grid), color=color, lw=1, label=f"C={profile.budget:.1e}")
            ax.scatter([profile.n_opt], [profile.loss_opt], marker="*", s=80, color=color, edgecolor="black", zorder=3)
        ax.set_xscale("log")
        ax.set_xlabel("non-embedding parameters N")
        ax.set_title(f"{family}: IsoFLOP profiles")
        ax.legend(fontsize=7)
    axes[0].set_ylabel(result.metric.fitted)
    return fig


def frontier(result: StudyResult) -> Figure:
    fig = Figure(figsize=(6, 4.2))
    ax = fig.add_subplot()
    for i, (family, iso) in enumerate(sorted(result.isoflop.items())):
        color = f"C{i}"
        front = iso.frontier
        budgets = np.array([p.budget for p in iso.profiles])
        n_opt = np.array([p.n_opt for p in iso.profiles])
        errors = np.array([[p.n_opt - p.n_opt_interval.low, p.n_opt_interval.high - p.n_opt] for p in iso.profiles]).T
        ax.errorbar(budgets, n_opt, yerr=np.clip(errors, 0, None), fmt="o", color=color, ms=4)
        grid = np.geomspace(budgets.min() / 2, budgets.max() * 2, 100)
        ok = front.samples[~np.isnan(front.samples).any(axis=1)]
        band = np.exp(ok[:, :1] + ok[:, 1:] * np.log(grid)[None, :])
        low, high = np.quantile(band, [(1 - result.level) / 2, (1 + result.level) / 2], axis=0)
        ax.fill_between(grid, low, high, color=color, alpha=0.2, lw=0)
        interval = front.exponent_interval
        ax.plot(grid, front.predict(grid), color=color,
                label=f"{family}: N* ~ C^{front.exponent:.3f} [{interval.low:.3f}, {interval.high:.3f}]")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training FLOPs C")
    ax.set_ylabel("compute-optimal N*")
    ax.set_title("compute-optimal frontier")
    ax.legend(fontsize=8)
    return fig
