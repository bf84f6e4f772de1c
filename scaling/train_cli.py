"""`grscale train`: one trial to a FLOPs budget, and `grscale presets`: the size table."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from scaling.data.cli import add_synthetic_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train", help="train one model to a FLOPs budget, evaluating along the way",
        description="Train one trial until its useful training FLOPs reach --budget. Rows go to OUT/metrics.jsonl. "
                    "Fields not given as flags come from --config (YAML of scaling.config.TrialConfig fields).",
    )
    train.add_argument("--config", type=Path, help="YAML file of TrialConfig fields (flags override it)")
    train.add_argument("--family", help="hstu | sasrec | dlrm")
    train.add_argument("--size", help="size preset, e.g. hstu-s or s (see `grscale presets`)")
    train.add_argument("--task", help="retrieval | ranking (default retrieval)")
    train.add_argument("--dataset", help="dataset name (default synthetic)")
    train.add_argument("--budget", type=float, help="training FLOPs to spend, e.g. 3e13")
    train.add_argument("--seed", type=int, help="seed of the model, batches and negatives (default 0)")
    train.add_argument("--data-dir", help="folder holding the dataset's file")
    train.add_argument("--ties", choices=("file", "shuffle"),
                       help="a user's equal timestamps in file order (default) or shuffled, as the HSTU paper's sort")
    train.add_argument("--device", choices=("cpu", "cuda", "auto"), help="default cpu")
    train.add_argument("--kernel", choices=("auto", "pytorch", "triton"), help="HSTU attention implementation")
    train.add_argument("--out", type=Path, required=True, help="run folder (metrics.jsonl, checkpoint, run_info.json)")
    train.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if present")
    train.add_argument("--checkpoint-every", type=float, metavar="SECONDS",
                       help="also checkpoint between validation points this often (default 600)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_synthetic_arguments(train)
    train.set_defaults(func=_train)

    presets = subparsers.add_parser("presets", help="the size presets with their parameter counts")
    presets.add_argument("--items", type=int, default=3706, help="catalog size for embedding counts (default: ML-1M)")
    presets.add_argument("--users", type=int, default=6040, help="users (DLRM's user table)")
    presets.add_argument("--max-seq-len", type=int, default=200)
    presets.add_argument("--task", default="retrieval", choices=("retrieval", "ranking"))
    presets.set_defaults(func=_presets)


def trial_config_from_args(args: argparse.Namespace):
    from scaling.config import TrialConfig, read_config_fields
    from scaling.data.cli import synthetic_config_from_args
    from scaling.errors import GrscaleError

    data = {}
    if args.config:
        data = read_config_fields(args.config)
    for name in ("family", "size", "task", "dataset", "budget", "seed", "data_dir", "ties", "device", "kernel"):
        value = getattr(args, name)
        if value is not None:
            data[name] = value
    data["synthetic"] = dataclasses.asdict(synthetic_config_from_args(args, data.get("synthetic")))
    if args.no_progress:
        data["progress"] = False
    missing = [name for name in ("family", "size", "budget") if name not in data]
    if missing:
        raise GrscaleError(f"missing {', '.join('--' + m for m in missing)} (or give them in --config)")
    family = data["family"]
    data["size"] = str(data["size"]).removeprefix(f"{family}-")
    return TrialConfig.from_dict(data)


def _train(args: argparse.Namespace) -> int:
    from scaling.train import CHECKPOINT_EVERY_S, train_to_budget

    cfg = trial_config_from_args(args)
    every = CHECKPOINT_EVERY_S if args.checkpoint_every is None else args.checkpoint_every
    result = train_to_budget(cfg, args.out, resume=args.resume, checkpoint_every_s=every)
    final = result.final
    if result.status != "done":
        print(f"{cfg.family}-{cfg.size}: {result.status}: {final.get('error')}")
        return 1
    metric = cfg.selection_metric
    tests = "  ".join(f"{k}={v:.4f}" for k, v in final.items() if k.startswith("test/") and v is not None)
    print(f"{cfg.family}-{cfg.size} {cfg.task} on {cfg.dataset}: {final['flops']:.3g} FLOPs, {final['step']} steps, "
          f"{final['wall_s']:.1f} s; best val/{metric} at step {final['best_step']}")
    print(f"test at best validation point: {tests}")
    print(f"rows: {result.out_dir / 'metrics.jsonl'}")
    return 0


def _presets(args: argparse.Namespace) -> int:
    from models.presets import list_presets

    print(f"{'preset':18s} {'embedding':>12s} {'non-embedding':>14s}   ({args.items} items, {args.users} users, {args.task})")
    for info in list_presets(args.items, args.users, args.max_seq_len, args.task):
        print(f"{info.name:18s} {info.embedding_params:12,d} {info.nonembedding_params:14,d}")
    return 0
