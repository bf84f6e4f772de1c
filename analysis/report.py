"""The study's answer in words, tables and figures: report.md and a self-contained report.html.

The report is built once as a list of blocks and rendered twice, so the Markdown and the
HTML always say the same thing.
"""
from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import pandas as pd

from analysis import tables
from analysis.bootstrap import Interval
from analysis.compare import Multiplier
from analysis.family import MIN_BUDGETS, FamilyFit
from scaling import files
from analysis.study import StudyResult

# Beyond this relative error at the held-out budget, the report warns against extrapolating.
EXTRAPOLATION_WARN = 0.05

Block = tuple[str, object]  # ("h1" | "h2" | "p" | "ul" | "table" | "figure", payload); a figure's is (stem, caption)


def fmt(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return "inf" if math.isinf(value) else f"{value:.4g}"
    return str(value)


def ci(value: float, interval: Interval) -> str:
    return f"{fmt(value)} [{fmt(interval.low)}, {fmt(interval.high)}]"


def report_tables(result: StudyResult) -> dict[str, pd.DataFrame]:
    """The tables the report shows (and W&B receives), by name."""
    return {
        "best_size_per_budget": tables.best_size_table(result),
        "setting_selection": tables.setting_table(result),
        "learning_rate_profile": tables.rate_profile_table(result),
        "parameters": tables.parameter_table(result),
        "model_selection": tables.selection_table(result),
        "isoflop": tables.isoflop_table(result),
        "compute_multiplier": tables.multiplier_table(result),
        "not_determined": tables.undetermined_table(result),
        "compute_optimal_size_by_approach": tables.approaches_table(result),
        "refusals": tables.refusal_table(result),
        "trials": tables.trials_for_report(result),
        "budget_missed": tables.budget_miss_table(result),
    }


def build_blocks(result: StudyResult, figures: dict[str, str]) -> list[Block]:
    """The report as blocks; `figures` maps each drawn figure's file stem to its caption."""
    pct = f"{round(100 * result.level)}%"
    metric = result.metric
    target = (
        f"`{metric.name}` is higher-is-better, so the laws are fitted to the error `{metric.fitted}`"
        if metric.higher_is_better else f"`{metric.name}` is lower-is-better and is fitted as it is"
    )
    excluded = result.excluded()
    selects = f"`{result.selection.column}`"
    blocks: list[Block] = [("h1", f"Scaling report: {result.sweep}")]
    if result.selection.select_on == "test":
        blocks.append(("p", f"**Selected on test.** select_on is `test` ({result.selection.source}): each cell's "
                            f"setting and the best size per budget were chosen on {selects}, the metric that is "
                            "fitted, so the fitted points and laws are biased by the luck of the test set."))
    blocks += [
        ("p", f"Quality metric: {target}. Each trial's quality is its final row (test metrics at the best "
              f"validation point). Per (family, size, budget), the setting with the best {selects} (mean over its "
              f"seeds) is kept; per budget, the size with the best {selects} enters the laws, each of its seeds a point "
              "at the FLOPs, tokens and parameters it actually had "
              f"(selection on {result.selection.select_on} {result.selection.source}). Intervals are {pct} "
              f"percentile bootstrap intervals over runs ({result.n_resamples} resamples, seed {result.seed}); they "
              "include run-to-run noise and the choice of size per budget, redone in every resample, but not the "
              "choice of setting nor choices held fixed across the sweep."),
        ("p", _protocol_sentence(result)),
        ("p", f"{len(result.trials)} trials; {len(excluded)} left out of the fits as diverged, failed or unfinished"
              f"{_not_chosen(result)}; each listed with its reason in the trials table.{_epochs_sentence(result)}"),
        ("h2", "What the data supports"),
        ("ul", _supported(result, pct)),
        ("h2", "What it does not support"),
        ("ul", _unsupported(result)),
    ]
    needed = needed_for_fits(result)
    if needed:
        blocks += [("h2", "What more is needed"), ("ul", needed)]
    blocks.append(("h2", "Figures"))
    blocks += [("figure", item) for item in figures.items()]
    for name, frame in report_tables(result).items():
        if not frame.empty:
            blocks += [("h2", name.replace("_", " ").capitalize()), ("table", frame)]
    return blocks


def _protocol_sentence(result: StudyResult) -> str:
    """How the retrieval metrics were computed: over the full catalog or a declared sample of it."""
    if "eval_protocol" not in result.trials:
        return "Evaluation protocol: not recorded (a table from before rows named it: the full catalog)."
    protocols = sorted(set(result.trials["eval_protocol"].dropna().astype(str)))
    if not protocols:
        return "Evaluation protocol: no catalog ranking (not a retrieval task)."
    named = ", ".join(f"`{p}`" for p in protocols)
    if len(protocols) > 1:
        return (f"**Evaluation protocols differ between trials ({named})**: figures from sampled candidates are not "
                "comparable with full-catalog ones, so the fits mix incomparable points.")
    what = ("the target ranked against the whole catalog" if protocols[0] == "full"
            else "the target ranked against sampled negatives per user: not comparable with full-catalog figures")
    return f"Evaluation protocol: {named} ({what})."


def _epochs_sentence(result: StudyResult) -> str:
    past = int(tables.past_many_epochs(result.trials["epochs"]).sum())
    if not past:
        return ""
    return (f" {past} trials went past {tables.MANY_EPOCHS:g} epochs over their training data: the trials table "
            f"marks them in its `{tables.EPOCHS_MARK}` column and the figures draw them hollow, because repeated data "
            f"loses value after about {tables.MANY_EPOCHS:g} epochs (Muennighoff et al. 2023).")


def needed_for_fits(result: StudyResult) -> list[str]:
    """Per family without a quality-vs-compute fit for want of budgets, how many more it needs (a
    family without a usable run has its refusal say why instead)."""
    usable = tables.chosen_trials(result)
    items = []
    for family in sorted(tables.analysed_families(result) - set(result.fits)):
        have = usable.loc[usable["family"] == family, "budget"].nunique()
        if 0 < have < MIN_BUDGETS:
            more = MIN_BUDGETS - have
            items.append(f"**{family}**: usable runs at {have} budget{'s' * (have != 1)}; a law needs at least "
                         f"{MIN_BUDGETS} budgets per family: {more} more budget{'s' * (more != 1)}.")
    return items


def _not_chosen(result: StudyResult) -> str:
    if not result.settings:
        return ""
    passed = int((result.trials["usable"] & ~result.trials["chosen"]).sum())
    return f", {passed} as runs of a setting not chosen in its cell"


def _family_line(family: str, fit: FamilyFit) -> str:
    law = fit.saturating
    aic = sorted(fit.scores, key=lambda s: s.aic)
    line = (
        f"**{family}**: Q = E + A C^-alpha with alpha = {ci(law.alpha, fit.exponent_interval('saturating'))}, "
        f"E = {ci(law.E, fit.intervals['saturating.E'])}{_shaky(fit, 'saturating')}; pure power-law exponent "
        f"{ci(fit.power.alpha, fit.exponent_interval('power'))}{_shaky(fit, 'power')}. AIC prefers the "
        f"{aic[0].form} form{_shaky(fit, aic[0].form)} (by {fmt(aic[1].aic - aic[0].aic)} over {aic[1].form}); "
        f"leave-one-budget-out error prefers {fit.preferred_by_heldout}{_shaky(fit, fit.preferred_by_heldout)}. "
        f"Each trial is a point at its own achieved FLOPs; Huber threshold {fmt(fit.huber_delta)} on log residuals. "
        f"Bootstrap: {fit.n_valid}/{fit.n_resamples} resamples fitted ({fit.scheme})."
    )
    if fit.extrapolation is not None:
        ex = fit.extrapolation
        line += (f" Extrapolation check: fitted without C = {fmt(ex.budget)}, the law predicts it with relative "
                 f"error {ex.relative_error:+.1%}.")
    return line


def _shaky(fit: FamilyFit, form: str) -> str:
    """A mark after a law the data do not determine (the reasons are listed under what is not supported)."""
    return " (**not determined**)" if fit.undetermined[form] else ""


def _edge_note(budgets: tuple[float, ...]) -> str:
    if not budgets:
        return ""
    return (f"; left out: the profiles at C = {', '.join(f'{c:.3g}' for c in budgets)}, whose error is lowest at "
            "their smallest or largest size (N* lies beyond the sizes measured there)")


def _supported(result: StudyResult, pct: str) -> list[str]:
    items = [_family_line(f, fit) for f, fit in sorted(result.fits.items())]
    for family, iso in sorted(result.isoflop.items()):
        front = iso.frontier
        items.append(f"**{family}** compute-optimal size: N* ~ C^a with a = {ci(front.exponent, front.exponent_interval)} "
                     f"from {len(iso.profiles)} IsoFLOP profiles{_edge_note(iso.edge_budgets)}.")
    for family, par in sorted(result.parametric.items()):
        items.append(f"**{family}** L(N, D) = E + A/N^alpha + B/D^beta: alpha = {ci(par.law.alpha, par.intervals['alpha'])}, "
                     f"beta = {ci(par.law.beta, par.intervals['beta'])}, E = {ci(par.law.E, par.intervals['E'])}"
                     f"{' (**not determined**)' if par.undetermined else ''}.")
    for family, dc in sorted(result.data_constrained.items()):
        items.append(f"**{family}** data-constrained L(N, D') ({dc.n_past_limit} trials past 4 epochs): repeated data "
                     f"keeps most of its value for R* = {ci(dc.r_star, dc.r_star_interval)} repetitions; beta = "
                     f"{ci(dc.law.beta, dc.intervals['beta'])}{' (**not determined**)' if dc.undetermined else ''}.")
    for family, law in sorted(result.rate_laws.items()):
        items.append(f"**{family}** optimal learning rate against size: lr*(N) = a N^-b with b = "
                     f"{ci(law.b, law.b_interval)}, a = {ci(law.a, law.a_interval)}, from {law.n_cells} cells at "
                     f"{law.n_sizes} sizes (each cell's optimum the vertex of its validation error over log rate; "
                     f"interval from resampling the cells).")
    for family, agreement in sorted(result.approaches.items()):
        items.append(f"**{family}** {agreement.summary}.")
    cmp = result.comparison
    if cmp is not None:
        a, b = cmp.family_a, cmp.family_b
        items.append(f"**{a} vs {b}**: alpha {ci(cmp.alpha_a, cmp.alpha_a_interval)} vs {ci(cmp.alpha_b, cmp.alpha_b_interval)}; "
                     f"{cmp.crossover.summary} ({cmp.crossover.bootstrap_share_in_range:.0%} of bootstrap pairs cross "
                     "inside the measured range).")
        items.append(multiplier_sentence(a, b, cmp.multipliers[-1], pct))
        if cmp.caveats:
            items.append(f"**The {a} vs {b} comparison rests on a fit the data do not determine**: "
                         f"{'; '.join(cmp.caveats)}.")
        p = cmp.plateau
        verdict = ("includes 0: a plateau cannot be ruled out" if p.includes_zero
                   else "excludes 0: it still improves with compute")
        items.append(f"Plateau test: {p.family}'s log-log slope (pure power-law exponent) "
                     f"{ci(p.exponent, p.interval)} {verdict}; its local slope at its largest budget "
                     f"C = {fmt(p.top_flops)} (saturating law) is {ci(p.top_slope, p.top_slope_interval)}.")
    return items or ["No law could be fitted (see below)."]


def multiplier_sentence(a: str, b: str, top: Multiplier, pct: str) -> str:
    """The compute multiplier at A's largest budget, in words where B's fitted curve never gets there."""
    start = f"Compute multiplier: to match {a}'s fitted quality at C = {fmt(top.flops)} ({fmt(top.quality)}), "
    interval = f"{pct} interval {fmt(top.interval.low)} to {fmt(top.interval.high)}"
    if math.isinf(top.multiplier):
        return start + f"no finite compute is enough: {b}'s fitted curve never gets there ({interval})."
    return start + f"{b} needs {fmt(top.multiplier)}x the compute ({interval}; inf: {b}'s curve never gets there)."


def _unsupported(result: StudyResult) -> list[str]:
    items = [f"{r.family} {r.analysis}: not fitted: {r.message}." for r in result.refusals]
    items += [f"{c.family} {c.size} at C = {fmt(c.budget)}: the chosen {c.chosen} is {c.edge_note}."
              for c in result.settings if c.at_edge]
    items += [f"{r.family} {r.fit}: **not determined**: {r.why}." for r in tables.undetermined_table(result).itertuples()]
    for family, fit in sorted(result.fits.items()):
        ex = fit.extrapolation
        if ex is None:
            items.append(f"{family}: extrapolation {fit.extrapolation_note}.")
        elif abs(ex.relative_error) > EXTRAPOLATION_WARN:
            items.append(f"{family}: the law misses the held-out largest budget by {ex.relative_error:+.1%}; "
                         "predictions beyond the measured compute are not supported.")
        interval = fit.exponent_interval("saturating")
        if not interval.low > 0 or interval.high > 2 * interval.low:
            items.append(f"{family}: the saturating exponent is weakly determined ({ci(fit.saturating.alpha, interval)}).")
    cmp = result.comparison
    if cmp is not None and cmp.crossover.flops and not any(
        cmp.crossover.measured_range[0] <= c <= cmp.crossover.measured_range[1] for c in cmp.crossover.flops
    ):
        items.append("The crossover lies outside the measured compute: it is an extrapolation of both laws.")
    items.append("Any statement about compute beyond the largest measured budget rests on the functional form.")
    return items


def render_markdown(blocks: list[Block]) -> str:
    out = []
    for kind, payload in blocks:
        if kind == "h1":
            out.append(f"# {payload}")
        elif kind == "h2":
            out.append(f"## {payload}")
        elif kind == "p":
            out.append(str(payload))
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in payload))
        elif kind == "figure":
            stem, caption = payload
            out.append(f"![{stem}]({stem}.png)\n\n*{caption}*")
        elif kind == "table":
            frame = payload.map(fmt)
            lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
            lines += ["| " + " | ".join(v.replace("|", "\\|") for v in row) + " |" for row in frame.itertuples(index=False)]
            out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def render_html(blocks: list[Block], figure_dir: Path) -> str:
    """One file, figures embedded as base64 PNG: no external references."""
    body = []
    for kind, payload in blocks:
        if kind in ("h1", "h2", "p"):
            body.append(f"<{kind}>{_inline(str(payload))}</{kind}>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in payload) + "</ul>")
        elif kind == "figure":
            stem, caption = payload
            data = base64.b64encode((figure_dir / f"{stem}.png").read_bytes()).decode()
            body.append(f'<figure><img alt="{stem}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{_inline(caption)}</figcaption></figure>")
        elif kind == "table":
            frame = payload.map(fmt)
            head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in frame.itertuples(index=False))
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.45}"
             "table{border-collapse:collapse;font-size:12px;margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:2px 6px}"
             "img{max-width:100%}code{background:#f3f3f3}figcaption{font-size:13px;color:#444}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>grscale report</title><style>{style}</style>"
            f"</head><body>{''.join(body)}</body></html>\n")


def _inline(text: str) -> str:
    """Escape, then turn the two Markdown marks the report uses (**bold**, `code`) into tags."""
    parts = html.escape(text).split("**")
    text = "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))
    parts = text.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def write_report(result: StudyResult, out_dir: Path) -> dict[str, Path]:
    """Figures, report.md and report.html into out_dir; returns the written paths by name."""
    from analysis.plots import all_figures, save_figures  # matplotlib only when a report is drawn

    figures = all_figures(result)
    figure_paths = save_figures(figures, out_dir)
    blocks = build_blocks(result, {stem: drawn.caption for stem, drawn in figures.items()})
    paths = {"report.md": files.atomic_write_text(out_dir / "report.md", render_markdown(blocks)),
             "report.html": files.atomic_write_text(out_dir / "report.html", render_html(blocks, out_dir))}
    for stem, by_ext in figure_paths.items():
        for ext, path in by_ext.items():
            paths[f"{stem}.{ext}"] = path
    return paths
