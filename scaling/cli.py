"""`grscale`: one console script, a subcommand per stage of a study.

Each stage's package registers its own subcommands (`register(subparsers)`) and keeps heavy
imports (torch, ray, wandb) inside its handlers, so `grscale fit --help` starts fast.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from scaling.errors import GrscaleError

# Modules that register subcommands, in the order they appear in `grscale --help`.
COMMAND_MODULES = (
    "scaling.data.cli",
    "scaling.train_cli",
    "scaling.bench_cli",
    "sweeps.cli",
    "analysis.cli",
    "scaling.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grscale",
        description="Scaling-law studies of generative recommenders (HSTU vs DLRM).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # A command that builds its own parser when it runs (see bench_cli) takes the rest as is.
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passes_options_through", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    try:
        return int(args.func(args) or 0)
    except GrscaleError as error:
        print(f"grscale {args.command}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`| head`): nothing more to say
        sys.stdout = open(os.devnull, "w")
        return 0
    except OSError as error:  # a folder that is read-only, a full disk: the path and the reason, in one line
        where = f"{error.filename}: " if error.filename else ""
        print(f"grscale {args.command}: error: {where}{error.strerror or error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"grscale {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
