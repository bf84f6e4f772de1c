"""`grscale data list|stats|fetch`."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_synthetic_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("synthetic data (ignored for real datasets)")
    group.add_argument("--users", type=int, help="number of users (default 2000)")
    group.add_argument("--items", type=int, help="number of items (default 1000)")
    group.add_argument("--mean-seq-len", type=float, help="mean sequence length (default 40)")
    group.add_argument("--data-seed", type=int, help="generator seed (default 0)")


def add_allow_modified_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-modified-data", action="store_true",
        help="accept a dataset file that differs from the official one (its sha256 is recorded)",
    )


SYNTHETIC_FLAGS = {"users": "num_users", "items": "num_items", "mean_seq_len": "mean_seq_len", "data_seed": "seed"}


def synthetic_config_from_args(args: argparse.Namespace, base: dict | None = None):
    """SyntheticConfig from `base` fields (e.g. a YAML config) with the flags given on top."""
    from scaling.data.synthetic import SyntheticConfig

    fields = dict(base or {})
    fields.update({field: getattr(args, flag) for flag, field in SYNTHETIC_FLAGS.items()
                   if getattr(args, flag) is not None})
    return SyntheticConfig(**fields)


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="list, describe and fetch datasets")
    commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    listing = commands.add_parser("list", help="the datasets grscale knows, and where it looks for them")
    listing.set_defaults(func=_list)

    stats = commands.add_parser("stats", help="users, items, interactions, length quantiles, time span")
    stats.add_argument("name", help="dataset name (see `grscale data list`)")
    stats.add_argument("--data-dir", type=Path, help="folder holding the dataset's file")
    add_allow_modified_argument(stats)
    add_synthetic_arguments(stats)
    stats.set_defaults(func=_stats)

    fetch = commands.add_parser(
        "fetch", help="download a dataset's official file and verify its checksums",
        description="Download a dataset's official file (GroupLens archives for MovieLens) and verify its checksums.",
    )
    fetch.add_argument("name", help="dataset name (see `grscale data list`)")
    fetch.add_argument("--data-dir", type=Path, help="where to put it (default: the user cache dir)")
    fetch.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds")
    fetch.set_defaults(func=_fetch)


def _list(args: argparse.Namespace) -> int:
    from scaling.data.fetch import candidate_dirs
    from scaling.data.registry import DATASETS

    for spec in DATASETS.values():
        print(f"{spec.name:14s} {spec.description}")
        if spec.filename:
            print(f"{'':14s} file {spec.filename}, looked for in: {', '.join(map(str, candidate_dirs(spec, None)))}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from scaling.data.dataset import load_dataset
    from scaling.data.registry import get_spec
    from scaling.data.stats import dataset_stats

    spec = get_spec(args.name)
    log = load_dataset(args.name, args.data_dir, synthetic_config_from_args(args),
                       allow_modified=args.allow_modified_data)
    print(dataset_stats(log).format(timestamps_are_positions=spec.format == "s3rec-sequences"))
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from scaling.data.fetch import fetch_dataset
    from scaling.data.registry import get_spec

    path = fetch_dataset(get_spec(args.name), args.data_dir, timeout=args.timeout)
    print(f"{args.name}: {path} (checksums verified)")
    return 0
