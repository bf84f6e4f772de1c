"""`grscale train`: one trial to a FLOPs budget, and `grscale presets`: the size table."""
from __future__ import annotations

import argparse
import math
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from scaling.data.cli import SYNTHETIC_FLAGS, add_allow_modified_argument, add_synthetic_arguments

# Flags that set one field of the trial config: flag dest -> section path.
FLAG_FIELDS = {
    "family": "model.family", "size": "model.size", "variant": "model.variant", "kernel": "model.kernel",
    "task": "task", "budget": "budget", "seed": "seed", "dataset": "data.dataset", "ties": "data.ties",
    "device": "runtime.device", "data_dir": "runtime.data_dir", "threads": "runtime.threads",
    "checkpoint_every": "runtime.checkpoint_every_s",
}


def budget_flops(text: str) -> float:
    """--budget: one message for every value that is not a positive, finite number of FLOPs."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive, finite number of FLOPs (e.g. 3e13), got {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train", help="train one model to a FLOPs budget, evaluating along the way",
        description="Train one trial until its useful training FLOPs reach --budget. Rows go to OUT/metrics.jsonl. "
                    "Fields not given as flags come from --config (YAML with the sections of "
                    "scaling.config.TrialConfig: data, model, optim, eval, runtime). SIGINT or SIGTERM "
                    "checkpoints and stops; --resume continues.",
    )
    # argparse reads `--budget -1e9` as a missing value unless it knows -1e9 for a number (its own
    # pattern has no exponent), which would hide the budget's real error behind "expected one argument".
    train._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
    train.add_argument("--config", type=Path, help="YAML file of TrialConfig sections (flags override it)")
    train.add_argument("--family", help="hstu | sasrec | dlrm")
    train.add_argument("--size", help="size preset, e.g. hstu-s or s (see `grscale presets`)")
    train.add_argument("--variant", help="model variant: default | paper | paper-attention (models/presets.py)")
    train.add_argument("--task", help="retrieval | ranking (default retrieval)")
    train.add_argument("--dataset", help="dataset name (default synthetic)")
    train.add_argument("--budget", type=budget_flops, help="training FLOPs to spend, e.g. 3e13")
    train.add_argument("--seed", type=int, help="seed of the model, batches and negatives (default 0)")
    train.add_argument("--data-dir", help="folder holding the dataset's file")
    add_allow_modified_argument(train)
    train.add_argument("--ties", choices=("file", "shuffle"),
                       help="a user's equal timestamps in file order (default) or shuffled, as the HSTU paper's sort")
    train.add_argument("--device", choices=("cpu", "cuda", "auto"), help="default cpu")
    train.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    train.add_argument("--kernel", choices=("auto", "pytorch", "triton"), help="HSTU attention implementation")
    train.add_argument("--out", type=Path, required=True, help="run folder (metrics.jsonl, checkpoint, run_info.json)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in OUT from its checkpoint (without it, a folder holding a run "
                            "is refused)")
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


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    *sections, name = path.split(".")
    for section in sections:
        data = data.setdefault(section, {})
    data[name] = value


def trial_config_from_args(args: argparse.Namespace):
    """The trial config: --config's sections, with the flags given laid over them."""
    from scaling import typed
    from scaling.config import MOVED, TrialConfig, read_config_fields
    from scaling.errors import GrscaleError

    data: dict[str, Any] = {}
    if args.config:
        data = typed.check_partial(TrialConfig, read_config_fields(args.config), f"{args.config}: trial", MOVED)
    flags = {path: getattr(args, dest) for dest, path in FLAG_FIELDS.items()}
    flags |= {f"data.synthetic.{name}": getattr(args, flag) for flag, name in SYNTHETIC_FLAGS.items()}
    if args.allow_modified_data:
        flags["data.allow_modified"] = True
    if args.no_progress:
        flags["runtime.progress"] = False
    for path, value in flags.items():
        if value is not None:
            _set(data, path, value)
    model = data.get("model", {})
    missing = [flag for flag, present in (("--family", "family" in model), ("--size", "size" in model),
                                          ("--budget", "budget" in data)) if not present]
    if missing:
        raise GrscaleError(f"missing {', '.join(missing)} (or give them in --config)")
    model["size"] = str(model["size"]).removeprefix(f"{model['family']}-")
    return TrialConfig.from_dict(data)


def resume_command(argv: list[str]) -> str:
    """The command line that continues this run: the same one, with --resume."""
    return shlex.join(["grscale", *argv, *([] if "--resume" in argv else ["--resume"])])


def _train(args: argparse.Namespace) -> int:
    from scaling.interrupts import StopOnSignal
    from scaling.train import trial_trainer

    cfg = trial_config_from_args(args)
    stop = StopOnSignal("checkpointing at the next step (send it again to stop at once)", "stopping at once")
    try:
        trainer = trial_trainer(cfg, args.out, should_stop=stop)
        if trainer.start(args.resume):
            print(f"resuming {args.out} from step {trainer.state.step} "
                  f"({trainer.state.flops:.3g} of {cfg.budget:.3g} FLOPs)", flush=True)
        elif args.resume:
            print(f"no checkpoint in {args.out}: starting from step 0", flush=True)
        result = trainer.train()
    finally:
        stop.restore()
    name = cfg.model.preset
    if result.status == "interrupted":
        print(f"{name}: {result.error}; checkpoint saved in {args.out}\n"
              f"resume with: {resume_command(sys.argv[1:])}", file=sys.stderr)
        return stop.exit_code
    if result.status != "done":
        print(f"{name}: {result.status}: {result.error}")
        return 1
    final = result.final
    metric = cfg.selection_metric
    tests = "  ".join(f"{k}={v:.4f}" for k, v in final.items() if k.startswith("test/") and v is not None)
    print(f"{name} {cfg.task} on {cfg.data.dataset_name}: {final['flops']:.3g} FLOPs, {final['step']} steps, "
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
