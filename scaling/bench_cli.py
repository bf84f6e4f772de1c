"""`grscale bench attention`: kernel benchmarks (the scripts in benchmarks/ cover data and training)."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("bench", help="benchmarks that need the package (GPU kernels)")
    commands = bench.add_subparsers(dest="bench_command", required=True, metavar="WHAT")
    # The benchmark's own parser is built when it runs: importing kernels loads torch, and every
    # other grscale command (fit, report, data) should start without it.
    attention = commands.add_parser(
        "attention", add_help=False,
        help="HSTU attention: Triton vs PyTorch reference vs SDPA (needs a GPU; --help for options)")
    attention.set_defaults(func=_attention, passes_options_through=True)


def _attention(args: argparse.Namespace) -> int:
    from kernels import benchmark

    parser = argparse.ArgumentParser(prog="grscale bench attention", description=benchmark.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    benchmark.add_arguments(parser)
    return benchmark.run(parser.parse_args(args.extra))
