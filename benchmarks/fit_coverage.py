"""Do the fits' nominal 90% intervals cover the truth 90% of the time? A simulation.

Sweeps are drawn from known laws (8 budgets over three decades, one size per budget, 1%
lognormal noise per run), fitted exactly as `grscale fit` fits them (analysis.bootstrap's
resampling, the best cell per budget, analysis.powerlaw's batched fits, analysis.compare's
compute multiplier), and each interval is checked against the true value. Rows: the saturating
law with 2, 3 and 5 seeds, 2 seeds at 4 budgets, and the pure power law (fitted by the power
form). Coverage is the share of simulated sweeps whose interval holds the truth; +- is its
binomial standard error. Prints a table and writes benchmarks/fit_coverage.md.

    .venv/bin/python benchmarks/fit_coverage.py [--sims 400] [--target-sims 800] [--resamples 300]
"""
from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analysis.bootstrap import Batch, Points, best_per_budget, centred_on_curve, percentile_interval, resample  # noqa: E402
from analysis.compare import multiplier_at  # noqa: E402
from analysis.powerlaw import fit_batch, predict_log, saturating_log_flops_for  # noqa: E402

LEVEL = 0.9
NOISE = 0.01
# Two families' true saturating laws, shaped like the ML-1M study's NLL: A's reducible error is
# about 2/5 of E at the smallest budget; B is worse everywhere and flattens sooner.
LAW_A = (5.5, 2000.0, 0.25)  # E, A, alpha
LAW_B = (5.45, 4000.0, 0.24)
POWER = (0.0, 60.0, 0.08)  # a pure power law: E = 0
GROUP = 25  # simulated sweeps fitted per batch
FINDINGS = """\
How the intervals got here (2026-12-03/04, 2-seed saturating setting unless said; earlier runs of
this script). Three things, each measured:
1. Huber's threshold. Chinchilla's 1e-3 in log units is a tenth of the 1% seed noise, which makes
   the saturating fit a least-absolute-deviation one; its percentile intervals covered 95% (alpha,
   E and the multiplier). With the threshold at 1.345 noise spreads (Huber's own tuning; the noise
   measured from the seeds) they cover 90-91% for alpha and E and 89% for the multiplier (300
   sweeps); plain least squares gives the same (90% alpha and E).
2. Student's correction. The noise is estimated from few degrees of freedom (8 with 2 seeds at 8
   budgets), so a bootstrap that treats it as known is too narrow: the pure power law (a straight
   line, where this is exact) covered 86.7% (1,000 sweeps), as Student's t predicts (86.2%). Each
   residual is now widened by t over the normal quantile for those degrees of freedom (1.131 at 8):
   the power law covers 89.8% (1,000 sweeps).
3. Where the curved law's resamples are centred. With 1 and 2 alone, resamples drawn about the cell
   means covered alpha 92.9%, E 93.8% and the multiplier 92.1% (800 sweeps, 2026-12-03): E missed
   the target. A cell's mean is off the curve by its own noise, and a refit of the saturating law
   (not linear in its parameters) carries that offset into every resample, so they scatter about
   a shifted law rather than the point estimate. The saturating law's resamples are now centred
   on its fit to the measured data (analysis.family.fit_forms; a model-based residual bootstrap);
   the straight-line forms, whose spread the centre does not move, keep the cell means.
Together they give the table above (run of 2026-12-04): with 2 seeds every coverage is within 3
points of 90% (alpha 91.2%, E 92.8%, the compute multiplier 90.9%, the pure power law 90.1%; 4
budgets 91.2% for both). Schemes measured before and dropped: resampling each cell's own seeds
(85-86% for alpha); residuals around the fitted curve with the 1e-3 threshold and no Student
correction (82%); bias-corrected percentile intervals (79-80%)."""


@dataclass(frozen=True)
class Setting:
    name: str
    law: tuple[float, float, float]
    form: str
    seeds: int
    budgets: np.ndarray


def simulated_points(law: tuple[float, float, float], budgets: np.ndarray, seeds: int,
                     rng: np.random.Generator) -> Points:
    e, a, alpha = law
    n = len(budgets) * seeds
    cell = np.repeat(np.arange(len(budgets)), seeds)
    flops = budgets[cell]
    loss = (e + a * flops**-alpha) * np.exp(NOISE * rng.normal(size=n))
    return Points(family="sim", size=np.array(["s"] * len(budgets), dtype=object), budget=budgets,
                  setting=np.array(["one setting"] * len(budgets), dtype=object), cell=cell, flops=flops,
                  tokens=flops, n_params=np.ones(n), epochs=np.full(n, np.nan), loss=loss,
                  selection=loss * np.exp(NOISE * rng.normal(size=n)))


def fitted_rows(law, setting: Setting, form: str, sims: int, resamples: int, rng) -> tuple[np.ndarray, str]:
    """Parameters (sims, 1 + resamples, k) of `form` fitted to `sims` simulated sweeps of `law`."""
    out, scheme = [], ""
    for start in range(0, sims, GROUP):
        batches = []
        for _ in range(min(GROUP, sims - start)):
            points = simulated_points(law, setting.budgets, setting.seeds, rng)
            batches.append(resample(points, resamples, rng, LEVEL))
        scheme = batches[0].scheme
        stacked = Batch(*(np.concatenate([getattr(b, f) for b in batches]) for f in ("values", "selection", "weights")),
                        scheme)
        best = best_per_budget(points, stacked)  # every sweep has the same design
        delta = np.repeat([b.huber_delta for b in batches], resamples + 1)  # each sweep's own noise
        log_c, values = np.log(points.flops), stacked.values
        if form == "saturating":  # as analysis.family.fit_forms: resamples centred on the measured data's fit
            first = np.arange(len(batches)) * (resamples + 1)
            measured = fit_batch(form, log_c, np.log(values[first]), best.weights[first], groups=len(batches),
                                 delta=delta[first])
            curves = predict_log(form, measured, log_c)
            values = np.concatenate([centred_on_curve(b, curve, best.weights[i] > 0)
                                     for b, curve, i in zip(batches, curves, first)])
        params = fit_batch(form, log_c, np.log(values), best.weights, groups=len(batches), delta=delta)
        out.append(params.reshape(len(batches), resamples + 1, -1))
    return np.concatenate(out), scheme


def coverage(samples: np.ndarray, truth: float) -> tuple[float, float, float]:
    """Share of sweeps whose interval holds the truth, its standard error, and the median width."""
    hits, widths = [], []
    for rows in samples:
        interval = percentile_interval(rows, LEVEL)
        hits.append(interval.contains(truth))
        widths.append(interval.high - interval.low)
    share = float(np.mean(hits))
    return share, float(np.sqrt(share * (1 - share) / len(hits))), float(np.median(widths))


def true_multiplier(flops: float) -> float:
    """C_B / C where B's true law reaches A's true quality at C."""
    rows_a, rows_b = np.array([LAW_A]), np.array([LAW_B])
    e, a, alpha = LAW_A
    log_q = np.log(np.array([[e + a * flops**-alpha]]))
    return float(np.exp(saturating_log_flops_for(rows_b, log_q)[0, 0] - np.log(flops))) if rows_a.size else np.nan


def run(sims: int, target_sims: int, resamples: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    eight, four = np.logspace(12, 15, 8), np.logspace(12, 15, 4)
    settings = [
        Setting("saturating, 8 budgets, 2 seeds", LAW_A, "saturating", 2, eight),
        Setting("saturating, 8 budgets, 3 seeds", LAW_A, "saturating", 3, eight),
        Setting("saturating, 8 budgets, 5 seeds", LAW_A, "saturating", 5, eight),
        Setting("saturating, 4 budgets, 2 seeds", LAW_A, "saturating", 2, four),
        Setting("pure power law, 8 budgets, 2 seeds", POWER, "power", 2, eight),
    ]
    rows = []
    for setting in settings:
        t0 = time.perf_counter()
        # The 2-seed settings are what the target is about: more sweeps, a smaller standard error.
        n = target_sims if setting.seeds == 2 and len(setting.budgets) == 8 else sims
        params, scheme = fitted_rows(setting.law, setting, setting.form, n, resamples, rng)
        boot = params[:, 1:]
        if setting.form == "saturating":
            checks = {"alpha": (boot[..., 2], setting.law[2]), "E": (boot[..., 0], setting.law[0])}
        else:
            checks = {"alpha": (boot[..., 1], setting.law[2])}
        if setting.form == "saturating" and setting.seeds == 2 and len(setting.budgets) == 8:
            other, _ = fitted_rows(LAW_B, setting, "saturating", n, resamples, rng)
            top = float(setting.budgets[-1])
            ratios = np.array([[multiplier_at(top, a[i:i + 1], b[i:i + 1], LEVEL).multiplier for i in range(1, len(a))]
                               for a, b in zip(params, other)])
            checks["multiplier at top budget"] = (ratios, true_multiplier(top))
        for name, (samples, truth) in checks.items():
            share, se, width = coverage(samples, truth)
            rows.append(dict(setting=setting.name, sims=n, parameter=name, truth=truth, coverage=share, se=se, width=width,
                             seconds=time.perf_counter() - t0, scheme=scheme))
        print(f"{setting.name}: done in {time.perf_counter() - t0:.0f} s", flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| setting | sweeps | parameter | truth | coverage of nominal 90% | median width |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['setting']} | {r['sims']} | {r['parameter']} | {r['truth']:.4g} | {100 * r['coverage']:.1f}% "
              f"+- {100 * r['se']:.1f} | {r['width']:.3g} |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sims", type=int, default=400, help="simulated sweeps per setting")
    parser.add_argument("--target-sims", type=int, default=800, help="simulated sweeps for the 2-seed, 8-budget settings")
    parser.add_argument("--resamples", type=int, default=300, help="bootstrap resamples per sweep")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="write benchmarks/fit_coverage.md")
    args = parser.parse_args()
    t0 = time.perf_counter()
    rows = run(args.sims, args.target_sims, args.resamples, args.seed)
    text = table(rows)
    print(text)
    if args.write:
        schemes = sorted({r["scheme"].split(":")[0] for r in rows})
        (REPO / "benchmarks" / "fit_coverage.md").write_text(
            "# Coverage of the fits' intervals\n\n"
            "`benchmarks/fit_coverage.py`: sweeps simulated from known laws (one size per budget, budgets "
            f"log-spaced over 1e12 to 1e15, lognormal noise {NOISE:.0%} per run), fitted as `grscale fit` fits them; "
            f"{args.sims} simulated sweeps per setting ({args.target_sims} for the 2-seed, 8-budget ones the target is "
            f"about), {args.resamples} bootstrap resamples each, 90% percentile "
            f"intervals. Bootstrap: {', '.join(schemes)}. Laws: A = saturating E, A, alpha = {LAW_A}; B = {LAW_B} "
            f"(for the compute multiplier C_B / C_A at the largest budget); pure power law A, alpha = {POWER[1:]}.\n\n"
            "Target: with 2 seeds, every coverage within 3 points of 90%.\n\n"
            f"{text}\n\n{FINDINGS}\n\n"
            f"Machine: 2-core CPU ({platform.processor() or 'x86_64'}), Python {platform.python_version()}, "
            f"numpy {np.__version__}. Date: {datetime.date.today()}. Total {time.perf_counter() - t0:.0f} s.\n")


if __name__ == "__main__":
    main()
