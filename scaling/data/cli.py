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
    stats.add_argument("name", help="dataset name (see `grscale data list`), or your log's file or folder with --user/--item")
    stats.add_argument("--data-dir", type=Path, help="folder holding the dataset's file")
    add_allow_modified_argument(stats)
    add_synthetic_arguments(stats)
    own = stats.add_argument_group("your own log (NAME is a .parquet/.csv file or a folder of them)")
    for flag in ("user", "item", "time", "label", "rating"):
        own.add_argument(f"--{flag}", default="", help=f"column of the {flag}" + (" IDs" if flag in ("user", "item") else "s"))
    own.add_argument("--time-unit", default="auto", help="numeric times: s | ms | us | ns | auto (default)")
    own.add_argument("--positive-rating", type=float, help="label = rating >= this")
    own.add_argument("--min-interactions", type=int, default=0, help="k-core filter (default 0: none)")
    own.add_argument("--drop-null-ids", action="store_true", help="drop rows without a user or item")
    stats.set_defaults(func=_stats)

    example = commands.add_parser("example-log", help="write a small example interaction log (.parquet or .csv)",
                                  description="Write a small log with string user IDs, integer item IDs, "
                                              "millisecond times (ts) and a click label, to try your-own-log studies on.")
    example.add_argument("out", type=Path, help="file to write: .parquet or .csv")
    example.add_argument("--users", type=int, default=300)
    example.add_argument("--items", type=int, default=200)
    example.add_argument("--seed", type=int, default=0)
    example.set_defaults(func=_example)

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
    from scaling.data.logspec import LogSpec
    from scaling.data.registry import get_spec
    from scaling.data.stats import dataset_stats
    from scaling.errors import GrscaleError

    if args.user or args.item:
        spec = LogSpec(path=args.name, user=args.user, item=args.item, time=args.time, time_unit=args.time_unit,
                       label=args.label, rating=args.rating, positive_rating=args.positive_rating,
                       min_interactions=args.min_interactions, drop_null_ids=args.drop_null_ids)
        try:
            spec.validate()
        except GrscaleError as error:
            raise GrscaleError(f"--{str(error).replace('_', '-')}") from None
        from scaling.data.generic import load_log

        print(dataset_stats(load_dataset(spec)).format(timestamps_are_positions=not spec.time))
        print(f"id mapping    {load_log(spec)[2]}/users.parquet, items.parquet")
        return 0
    spec = get_spec(args.name)
    log = load_dataset(args.name, args.data_dir, synthetic_config_from_args(args),
                       allow_modified=args.allow_modified_data)
    print(dataset_stats(log).format(timestamps_are_positions=spec.format == "s3rec-sequences"))
    return 0


def _example(args: argparse.Namespace) -> int:
    from scaling.data.example import write_example_log

    rows = write_example_log(args.out, args.users, args.items, args.seed)
    print(f"{args.out}: {rows:,} interactions (columns user_id, item_id, ts in ms, clicked)")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from scaling.data.fetch import fetch_dataset
    from scaling.data.registry import get_spec

    path = fetch_dataset(get_spec(args.name), args.data_dir, timeout=args.timeout)
    print(f"{args.name}: {path} (checksums verified)")
    return 0
