"""`grscale fit` and `grscale report`: the analysis stage's subcommands."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from analysis.bootstrap import DEFAULT_LEVEL, DEFAULT_RESAMPLES
from scaling.schema import SELECT_ON


def register(subparsers: argparse._SubParsersAction) -> None:
    fit = subparsers.add_parser(
        "fit", help="fit scaling laws to a sweep's results table",
        description="Fit quality-vs-compute laws (with bootstrap intervals) and write fits.json.",
    )
    fit.add_argument("results", type=Path, nargs="?",
                     help="results.parquet / .csv, or a sweep directory holding one (or --from-wandb)")
    fit.add_argument("--family", action="append", help="fit only this family (repeatable; default: all)")
    fit.add_argument("--out", type=Path, help="directory for fits.json (default: next to the results)")
    _from_wandb(fit)
    _common(fit)
    fit.set_defaults(func=run_fit)

    report = subparsers.add_parser(
        "report", help="write a sweep's report (markdown, HTML, figures, W&B)",
        description="Fit everything the sweep supports and write the report (report.md, report.html, figures), "
                    "fits.json and trials.csv (every trial's final row) to DIR/report/ or --out.",
    )
    report.add_argument("dirs", type=Path, nargs="*", metavar="DIR",
                        help="a sweep directory holding results.parquet (or --from-wandb); several: one study run "
                             "in parts, reported together")
    report.add_argument("--out", type=Path, help="folder for the report (default DIR/report, of the first DIR); a "
                                                 "folder outside DIR also gets a copy of results.parquet (of all "
                                                 "the DIRs), to stand on its own")
    report.add_argument("--wandb", action=argparse.BooleanOptionalAction, default=True,
                        help="log to W&B (offline unless WANDB_MODE says otherwise)")
    report.add_argument("--wandb-project", default="grscale", help="W&B project (default: grscale)")
    _from_wandb(report)
    _common(report)
    report.set_defaults(func=run_report)


def _from_wandb(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from-wandb", metavar="ENTITY/PROJECT",
                        help="read the sweep's results from its W&B runs instead, into a snapshot "
                             "(OUT/results.parquet; --out defaults to runs/SWEEP-wandb)")
    parser.add_argument("--group", metavar="SWEEP", help="with --from-wandb: the sweep's W&B group (its name)")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metric", help="metric column (default: test/nll for retrieval, test/ne for ranking)")
    direction = parser.add_mutually_exclusive_group()
    for higher in (False, True):
        name = "higher" if higher else "lower"
        direction.add_argument(f"--{name}-is-better", dest="higher_is_better", action="store_const", const=higher,
                               help=f"the metric is {name}-is-better: needed for a metric grscale does not know")
    parser.add_argument("--select-on", choices=SELECT_ON,
                        help="what chooses each cell's setting and the best size per budget (default: the table's "
                             "select_on, else validation); test selects on the fitted metric, and the report says so")
    parser.add_argument("--bootstrap", type=int, default=DEFAULT_RESAMPLES,
                        help=f"bootstrap resamples (default {DEFAULT_RESAMPLES})")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")


def _analyze(path: Path, args: argparse.Namespace, families: list[str] | None = None):
    from analysis.results import load_results
    from analysis.study import analyze

    return analyze(load_results(path), metric=args.metric, higher_is_better=args.higher_is_better,
                   select_on=args.select_on, families=families, n_resamples=args.bootstrap, level=DEFAULT_LEVEL,
                   seed=args.seed)


def _fitted_nothing(result) -> str:
    """Why nothing could be fitted ("" where something was)."""
    if result.fits or result.isoflop or result.parametric:
        return ""
    return "; ".join(r.message for r in result.refusals)


def _require_some_fit(result) -> None:
    from scaling.errors import GrscaleError

    why = _fitted_nothing(result)
    if why:
        raise GrscaleError(why)


def run_fit(args: argparse.Namespace) -> int:
    from scaling import files
    from analysis.report import fmt
    from analysis.study import to_dict
    from analysis.from_wandb import source_folder
    from analysis.tables import (
        approaches_table, best_size_table, parameter_table, selection_table, setting_table, undetermined_table,
    )

    args.results = source_folder(args.results, args.from_wandb, args.group, args.out)
    result = _analyze(args.results, args, args.family)
    _require_some_fit(result)
    out_dir = args.out or (args.results if args.results.is_dir() else args.results.parent)
    files.atomic_write_text(out_dir / "fits.json", json.dumps(to_dict(result), indent=2) + "\n")
    pct = round(100 * result.level)
    selection = result.selection
    print(f"metric: {result.metric.name}; fitted: {result.metric.fitted}; "
          f"intervals: {pct}% bootstrap, {result.n_resamples} resamples")
    print(f"selected on: {selection.column} ({selection.select_on} {selection.source})")
    for table in (setting_table(result), best_size_table(result)):
        if not table.empty:
            print()
            print(table.to_string(index=False, float_format=fmt))
    print()
    params = parameter_table(result).rename(columns={"low": f"{pct}% low", "high": f"{pct}% high"})
    print(params.to_string(index=False, formatters={c: fmt for c in params.columns[3:]}))
    print()
    print(selection_table(result).to_string(index=False, float_format=fmt))
    approaches = approaches_table(result)
    if not approaches.empty:
        print()
        print(approaches.to_string(index=False, float_format=fmt))
    if result.comparison is not None:
        print(f"\n{result.comparison.family_a} vs {result.comparison.family_b}: {result.comparison.crossover.summary}")
        for caveat in result.comparison.caveats:
            print(f"  rests on a fit that is not determined: {caveat}")
    shaky = undetermined_table(result)
    if not shaky.empty:
        print("\nnot determined (the data do not pin these fits down):")
        for r in shaky.itertuples():
            print(f"  {r.family} {r.fit}: {r.why}")
    if result.refusals:
        print("\nnot fitted:")
        for r in result.refusals:
            print(f"  {r.family} {r.analysis}: {r.message}")
    n_out = len(result.excluded())
    if n_out:
        print(f"\n{n_out} trials left out of the fits (diverged/failed/unfinished); reasons in fits.json")
    print(f"\nwrote {out_dir / 'fits.json'}")
    return 0


def report_sweep(sweep_dir: Path, *, metric: str | None = None, higher_is_better: bool | None = None,
                 select_on: str | None = None, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0, wandb: bool = True,
                 wandb_project: str = "grscale", out_dir: Path | None = None, more_dirs: tuple[Path, ...] = ()):
    """Fit everything the sweep's results support, write the report, fits.json and trials.csv to
    out_dir (default sweep_dir/report/) and (optionally) log it to W&B. Returns (StudyResult, report folder).
    `more_dirs`: the other sweeps of a study run in parts; their trials are reported with sweep_dir's.
    With nothing fittable the report is written all the same (the measured curves, the trials and what
    more is needed), and the console says why nothing was fitted."""
    from scaling import files
    from scaling.errors import GrscaleError
    from analysis.report import report_tables, write_report
    from analysis.results import RESULTS_FILE, load_study, read_results_table, results_path
    from analysis.study import analyze, to_dict

    source = results_path(sweep_dir)
    if more_dirs and out_dir is not None and any(out_dir.resolve() == Path(d).resolve()
                                                 for d in (sweep_dir, *more_dirs)):  # its table would be replaced
        raise GrscaleError(f"--out {out_dir} is one of the sweep folders reported; give a folder of its own")
    frame = load_study([source, *(results_path(d) for d in more_dirs)])
    result = analyze(frame, metric=metric, higher_is_better=higher_is_better, select_on=select_on,
                     n_resamples=n_resamples, level=DEFAULT_LEVEL, seed=seed)
    why = _fitted_nothing(result)
    if why:
        print(f"nothing was fittable: {why}; the report shows the measured curves and the trials")
    sweep_dir = source.parent
    out_dir = out_dir or sweep_dir / "report"
    paths = write_report(result, out_dir)
    final = frame[frame["eval_kind"].eq("final")].dropna(axis=1, how="all")
    paths |= {
        "fits.json": files.atomic_write_text(out_dir / "fits.json", json.dumps(to_dict(result), indent=2) + "\n"),
        "trials.csv": files.atomic_write_text(
            out_dir / "trials.csv", final.sort_values(["family", "size", "budget", "seed"]).to_csv(index=False)),
    }
    if more_dirs:  # the parts' rows together, trunks included, as one table that stands on its own
        import pandas as pd

        whole = pd.concat([read_results_table(d) for d in (sweep_dir, *more_dirs)], ignore_index=True)
        paths[RESULTS_FILE] = files.atomic_write(out_dir / RESULTS_FILE, whole.to_parquet)
    elif not out_dir.resolve().is_relative_to(sweep_dir.resolve()):
        paths[source.name] = files.atomic_copy(source, out_dir / source.name)
    print(f"wrote {out_dir}: " + ", ".join(sorted(paths)))
    if wandb:
        from analysis.wandb_log import dashboard_link, log_report

        run_dir = log_report(result, paths, report_tables(result), wandb_project, out_dir,
                             dashboard=dashboard_link(sweep_dir))
        print(f"W&B summary run: {run_dir}")
    return result, out_dir


def run_report(args: argparse.Namespace) -> int:
    from analysis.from_wandb import source_folder

    sweep_dir = source_folder(args.dirs[0] if args.dirs else None, args.from_wandb, args.group, args.out)
    report_sweep(sweep_dir, metric=args.metric, higher_is_better=args.higher_is_better, select_on=args.select_on,
                 n_resamples=args.bootstrap, seed=args.seed, wandb=args.wandb, wandb_project=args.wandb_project,
                 out_dir=args.out, more_dirs=tuple(args.dirs[1:]))
    return 0
