"""A finished sweep's evaluation share per trial, from its results table (eval_s and wall_s of each
trial's final row), with the trials over the 25% target and the trials' summed wall time.

For issue 26's study-level figures, on an otherwise idle 2-core CPU:
    time grscale sweep run sweeps/specs/ml1m-retrieval-cpu.yaml --out runs/issue26 --no-wandb
    GRSCALE_DATA_DIR=../shared/data .venv/bin/python benchmarks/study_eval_share.py runs/issue26/ml1m-retrieval-cpu
The sweep's own elapsed time (the `time` line) is the figure to set against the committed 51 minutes.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

TARGET = 0.25


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("sweep_dir", type=Path, help="the sweep's folder (holding results.parquet)")
    args = parser.parse_args()
    path = args.sweep_dir / "results.parquet"
    if not path.is_file():
        raise SystemExit(f"no results table at {path}: pass the sweep's folder")
    rows = pd.read_parquet(path)
    final = rows[rows["eval_kind"] == "final"].set_index("trial_id")
    if "eval_s" not in final or final["eval_s"].isna().all():
        raise SystemExit(f"{path} has no eval_s column: it was written before evaluation was timed")
    share = (final["eval_s"] / final["wall_s"]).sort_values(ascending=False)
    print("| trial | val users | wall s | evaluation s | share |\n|---|---|---|---|---|")
    for trial, value in share.items():
        row = final.loc[trial]
        print(f"| {trial} | {row['val_users']} | {row['wall_s']:.1f} | {row['eval_s']:.1f} | {value:.0%} |")
    over = share[share > TARGET]
    print(f"\n{len(share)} trials; {len(over)} over {TARGET:.0%} of their wall time in evaluation"
          f"{' (' + ', '.join(over.index) + ')' if len(over) else ''}; trials' wall time summed: "
          f"{final['wall_s'].sum() / 60:.1f} min")


if __name__ == "__main__":
    main()
