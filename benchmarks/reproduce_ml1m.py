"""The HSTU paper's ML-1M table, reproduced on the CPU with the paper's settings, over seeds.

Settings (Zhai et al. 2024, ML-1M): max length 200, 128 negatives drawn per prediction,
temperature 0.05, AdamW lr 1e-3, betas (0.9, 0.98), batch 128, dropout 0.2, constant learning
rate; `--negatives-per sequence` shares each sequence's negatives instead (grscale's default,
1.6-1.9x cheaper per step on the CPU, lower quality per FLOP). The models are the named variants of
models/presets.py: `--architecture paper` (the default) is the `paper` variant, the models as the
paper's code builds them (HSTU's time bias measured from the time of the predicted interaction, q.k
unscaled, and the block's parameters as the paper's: LayerNorms without affine parameters, eps 1e-6;
no U/V/Q/K bias; its initialisation; SASRec in Kang & McAuley's block layout); `paper-attention` is
the variant of that name (grscale's HSTU parameters; this script's `paper` until 2026-12-02);
`grscale` is the `default` variant (the query's own time, q.k / sqrt(dqk); a pre-norm SASRec).
A budget of N epochs is N times an epoch's training FLOPs as a sweep counts them (sweeps.check). A user's equal timestamps in a seeded random order (`--ties shuffle`, the default), which
mimics the paper's unstable sort on every machine; in ML-1M's file order (`file`, grscale's
default), which predicts the next item far better than chance; or exactly as the paper's pandas
sort leaves them on this machine (`pandas-sort`: ratings.dat rewritten in that row order under
--runs, read in file order). Two protocols:
  paper: train on all but each user's last item, test on the last, no validation split
         (the `leave-last-out` split; figures are test at the end of training);
  ours:  leave-one-out with a validation item; test at the best validation point (val NDCG@10).
Target (issue 3): within 3% of each published figure under the paper's protocol, and the
published order SASRec < HSTU < HSTU-large.
Run: GRSCALE_DATA_DIR=../shared/data .venv/bin/python benchmarks/reproduce_ml1m.py --epochs 100 --seeds 0 1 2
Run folders PRESET-PROTOCOL-NEGATIVES[-paper-model|-paper-attention|-paper-layout]
[-shuffled-ties|-pandas-sort-ties]-seedS go under --runs
(benchmarks/runs/ by default, not committed).
Each finished run is re-evaluated from its checkpoint once and its figures kept in
benchmarks/reproduce_ml1m.json (committed), and per test user in benchmarks/reproduce_ml1m_users/
(committed), so a result outlives its run folder and the published order is checked user by user
over runs from different sessions; the table, benchmarks/reproduce_ml1m.md, is written from that
ledger: a row per run, the mean over seeds, and the published order. --table-only records the
finished runs and rewrites the table without training. Notes below the table's marker line are
kept. Several invocations may share the runs folder and ledger.
"""
from __future__ import annotations

import argparse
import dataclasses
import fcntl
import json
import os
import platform
import subprocess
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from models.loss_config import NEGATIVES_PER
from models.presets import variant_fields
from scaling.config import TrialConfig
from scaling.files import atomic_write, atomic_write_text
from scaling.data.dataset import load_dataset
from scaling.data.fetch import find_data_file
from scaling.data.log import TIES
from scaling.data.registry import get_spec
from scaling.data.splits import make_split
from scaling.errors import GrscaleError
from scaling.evaluate import evaluate_retrieval
from scaling.metrics import standard_error
from scaling.reporting import read_rows
from scaling.schema import CHECKPOINT_FILE
from scaling.train import build_trial_model, train_to_budget
from sweeps.check import size_cost

PUBLISHED = {  # HR@10, NDCG@10, HR@50, HR@200 from the paper's Table (ML-1M)
    "sasrec-ml1m": (0.2853, 0.1603, 0.5474, 0.7528),
    "hstu-ml1m": (0.3097, 0.1720, 0.5754, 0.7716),
    "hstu-large-ml1m": (0.3294, 0.1893, 0.5935, 0.7839),
}
METRICS = ("hr@10", "ndcg@10", "hr@50", "hr@200")
NOTES_MARKER = "## Notes (by hand; the script keeps this section)"
SPLITS = {"paper": "leave-last-out", "ours": "leave-one-out"}
# The ledger's architecture names and the model variants (models/presets.py) they are. Where two
# variants build a family alike (SASRec in both paper ones), a run counts for both.
ARCHITECTURES = {"paper": "paper", "paper-attention": "paper-attention", "grscale": "default"}
RUN_SUFFIX = {"paper": {"hstu": "-paper-model", "sasrec": "-paper-layout"},  # run folder name, per family
              "paper-attention": {"hstu": "-paper-attention", "sasrec": "-paper-layout"},
              "grscale": {"hstu": "", "sasrec": ""}}
TIE_ORDERS = (*TIES, "pandas-sort")
TIE_WORDS = {"file": "in file order", "shuffle": "shuffled", "pandas-sort": "as the paper's pandas sort leaves them"}
PANDAS_SORTED = "pandas-sorted-ml-1m"  # folder under --runs: ratings.dat in the paper's sort order
SETTING = ("negatives_per", "architecture", "ties")  # what a run is besides its model, protocol and seed
HERE = Path(__file__).parent
LEDGER = HERE / "reproduce_ml1m.json"
TABLE = HERE / "reproduce_ml1m.md"
USERS = HERE / "reproduce_ml1m_users"  # each ledger run's test figures per user (npz), for paired comparisons


def trial(preset: str, protocol: str, negatives_per: str, epochs: float, seed: int = 0,
          architecture: str = "paper", ties: str = "shuffle", runs: Path | None = None) -> TrialConfig:
    """The paper's settings for `preset`, with a budget of `epochs` passes over the training split
    (`runs`: where the pandas-sorted copy of ML-1M goes, for ties "pandas-sort")."""
    family, size = preset.split("-", 1)
    data = {"dataset": "ml-1m", "split": SPLITS[protocol], "max_seq_len": 200, "ties": ties}
    runtime = {"progress": True}
    if ties == "pandas-sort":  # ML-1M's rows reordered: not the official file, knowingly
        data |= {"ties": "file", "allow_modified": True}
        runtime["data_dir"] = str(pandas_sorted_ml1m(runs).resolve())
    base = TrialConfig.from_dict({
        "model": {"family": family, "size": size, "variant": ARCHITECTURES[architecture], "dropout": 0.2,
                  "loss": {"num_negatives": 128, "negatives_per": negatives_per, "temperature": 0.05}},
        "budget": 1.0, "seed": seed, "data": data, "runtime": runtime,
        "optim": {"lr": 1e-3, "betas": [0.9, 0.98], "schedule": "constant", "warmup_fraction": 0.0, "grad_clip": 0.0,
                  "batch_size": 128},
        "eval": {"num_evals": 10, "first_eval_fraction": 0.05, "select_metric": "ndcg@10"},
    })
    split = make_split(load_dataset("ml-1m"), base.data.split)  # an epoch's FLOPs: any tie order
    return dataclasses.replace(base, budget=epochs * size_cost(base, split).epoch)


def pandas_sorted_ml1m(runs: Path) -> Path:
    """A data folder under `runs` whose ratings.dat holds ML-1M's rows in the order the HSTU paper's
    preprocessing sorts them into, `sort_values(by=["unix_timestamp"])`: pandas' default quicksort,
    which is unstable, so a user's equal timestamps come out in an order this machine's numpy (its
    SIMD dispatch) decides. Reproducible on one machine, not across machines: written once per runs
    folder, with the fraction of tied pairs left in file order in `order.json`."""
    folder = runs / PANDAS_SORTED
    if (folder / "order.json").exists():
        return folder
    source = find_data_file(get_spec("ml-1m"))
    frame = pd.read_csv(source, sep="::", engine="python", names=["user_id", "item_id", "rating", "unix_timestamp"])
    order = frame.sort_values(by=["unix_timestamp"]).index.to_numpy()
    lines = source.read_bytes().splitlines(keepends=True)
    if len(lines) != len(frame):
        raise GrscaleError(f"{source}: {len(lines)} lines but pandas read {len(frame)} rows")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "ratings.dat", lambda h: h.writelines(lines[i] for i in order))
    summary = {"source": str(source.resolve()), "tied_pairs_in_file_order": tied_pairs_in_file_order(frame, order),
               "pandas": pd.__version__, "numpy": np.__version__}
    atomic_write_text(folder / "order.json", json.dumps(summary, indent=1) + "\n")
    return folder


def tied_pairs_in_file_order(frame: pd.DataFrame, order: np.ndarray) -> float:
    """Of each user's consecutive equal-timestamp pairs after sorting rows into `order`, the fraction
    still in file order (1.0: a stable sort; about 0.5: ties scrambled)."""
    by_user = order[np.argsort(frame["user_id"].to_numpy()[order], kind="stable")]
    users, times = frame["user_id"].to_numpy()[by_user], frame["unix_timestamp"].to_numpy()[by_user]
    tied = (users[1:] == users[:-1]) & (times[1:] == times[:-1])
    return float((by_user[1:] > by_user[:-1])[tied].mean()) if tied.any() else 1.0


def run_name(preset: str, protocol: str, negatives_per: str, architecture: str, ties: str, seed: int) -> str:
    variant = RUN_SUFFIX[architecture][preset.split("-")[0]]
    tie_suffix = {"file": "", "shuffle": "-shuffled-ties", "pandas-sort": "-pandas-sort-ties"}[ties]
    return f"{preset}-{protocol}-{negatives_per}{variant}{tie_suffix}-seed{seed}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=30.0)
    parser.add_argument("--protocols", nargs="+", choices=tuple(SPLITS), default=["paper", "ours"])
    parser.add_argument("--models", nargs="+", choices=tuple(PUBLISHED), default=list(PUBLISHED))
    parser.add_argument("--negatives-per", choices=NEGATIVES_PER, default="prediction")
    parser.add_argument("--architecture", choices=tuple(ARCHITECTURES), default="paper")
    parser.add_argument("--ties", choices=TIE_ORDERS, default="shuffle")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--runs", type=Path, default=HERE / "runs" / "reproduce_ml1m")
    parser.add_argument("--table-only", action="store_true", help="record the finished runs and write the table")
    args = parser.parse_args()
    if not args.table_only:
        for seed in args.seeds:
            for protocol in args.protocols:
                for preset in args.models:
                    name = run_name(preset, protocol, args.negatives_per, args.architecture, args.ties, seed)
                    cfg = trial(preset, protocol, args.negatives_per, args.epochs, seed, args.architecture, args.ties,
                                args.runs)
                    train_to_budget(cfg, args.runs / name, resume=True)
                    write_table(record_finished_runs(args.runs))
    write_table(record_finished_runs(args.runs))


def record_finished_runs(runs: Path) -> dict:
    """The ledger, with every finished run under `runs` added (re-evaluated once from its checkpoint,
    its per-user figures kept under USERS) and the published-order check of every seed whose three
    runs the ledger holds with their per-user figures."""
    with open(LEDGER.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # several invocations may finish runs at once
        ledger = json.loads(LEDGER.read_text()) if LEDGER.exists() else {"runs": [], "orders": []}
        known = {run_key(r): r for r in ledger["runs"]}
        changed = set()
        for path in sorted(runs.glob("*-seed*/metrics.jsonl")):
            rows = read_rows(path)
            if rows and rows[-1]["eval_kind"] == "final" and rows[-1]["status"] == "done":
                record = run_record(path.parent, run_config(path.parent), rows[-1], known)
                key = run_key(record)
                changed |= {key} if known.get(key) != record else set()
                known[key] = record
        orders = {order_key(o): o for o in ledger["orders"]}
        orders.update(order_records(list(known.values()), changed, set(orders)))
        ledger = {"runs": sorted(known.values(), key=table_order), "orders": sorted(orders.values(), key=order_key)}
        atomic_write_text(LEDGER, json.dumps(ledger, indent=1) + "\n")
    return ledger


def order_records(records: list[dict], changed: set[tuple], checked: set[tuple]) -> dict[tuple, dict]:
    """The order check of every setting and seed (a run counts under each architecture that builds its
    model alike) whose three runs have per-user figures, where it is new or one of its runs `changed`."""
    by_setting: dict[tuple, dict[str, dict]] = {}
    for record in records:
        if users_file(record).exists():
            family = record["preset"].split("-")[0]
            built = variant_fields(family, ARCHITECTURES[record["architecture"]])
            for architecture in (a for a, v in ARCHITECTURES.items() if variant_fields(family, v) == built):
                setting = (record["protocol"], record["negatives_per"], architecture, record["ties"], record["seed"])
                by_setting.setdefault(setting, {})[record["preset"]] = record
    found = {}
    for setting, by_preset in by_setting.items():
        three = [by_preset.get(preset) for preset in PUBLISHED]
        if all(three) and (setting not in checked or any(run_key(r) in changed for r in three)):
            found[setting] = order_record(three, [read_users(r) for r in three], setting[2])
    return found


def run_key(record: dict) -> tuple:
    return record["preset"], record["protocol"], *(record[f] for f in SETTING), record["seed"]


def order_key(order: dict) -> tuple:
    return order["protocol"], *(order[f] for f in SETTING), order["seed"]


def table_order(record: dict) -> tuple:
    return (TIE_ORDERS[::-1].index(record["ties"]), NEGATIVES_PER[::-1].index(record["negatives_per"]),
            list(SPLITS).index(record["protocol"]), list(ARCHITECTURES).index(record["architecture"]),
            list(PUBLISHED).index(record["preset"]), record["seed"])


def run_config(run: Path) -> TrialConfig:
    return TrialConfig.from_dict(torch.load(run / CHECKPOINT_FILE, map_location="cpu", weights_only=False)["config"])


def architectures_of(cfg: TrialConfig) -> list[str]:
    """The architectures that build the run's model alike (first: the one it is filed under; SASRec's
    original layout is both paper ones). A run with model overrides beside its variant is none."""
    family = cfg.model.family
    built = {**variant_fields(family, cfg.model.variant), **cfg.model.overrides}
    names = [name for name, variant in ARCHITECTURES.items() if variant_fields(family, variant) == built]
    if not names:
        raise GrscaleError(f"variant {cfg.model.variant!r} with overrides {cfg.model.overrides} matches no "
                           f"architecture ({', '.join(ARCHITECTURES)})")
    return names


def users_file(record: dict) -> Path:
    return USERS / f"{run_name(*(record[f] for f in ('preset', 'protocol', *SETTING, 'seed')))}.npz"


def write_users(record: dict, per_user: dict[str, np.ndarray]) -> None:
    atomic_write(users_file(record), lambda h: np.savez_compressed(h, **{m: per_user[m] for m in METRICS}))


def read_users(record: dict) -> dict[str, np.ndarray]:
    with np.load(users_file(record)) as figures:
        return {m: figures[m] for m in METRICS}


def run_record(run: Path, cfg: TrialConfig, final: dict, known: dict) -> dict:
    """A finished run's figures as the ledger keeps them: means from metrics.jsonl, checked against a
    re-evaluation from the checkpoint, with their standard errors over the test users; the per-user
    figures go to USERS, so that runs compare pairwise after their folders are gone."""
    protocol = {v: k for k, v in SPLITS.items()}[cfg.data.split]
    preset = cfg.model.preset
    architecture = architectures_of(cfg)[0]
    data_dir = cfg.runtime.data_dir
    pandas_sorted = data_dir is not None and Path(data_dir).name == PANDAS_SORTED
    ties = "pandas-sort" if pandas_sorted else cfg.data.ties
    prefix = "test_last/" if protocol == "paper" else "test/"
    means = {m: final[prefix + m] for m in METRICS}
    negatives_per = cfg.model.loss.negatives_per
    key = (preset, protocol, negatives_per, architecture, ties, cfg.seed)
    recorded = known[key] if key in known and known[key]["metrics"] == means else None  # from this very run
    if recorded and users_file(recorded).exists():
        return recorded
    per_user = per_user_test_metrics(run, protocol)
    for m in METRICS:
        if abs(per_user[m].mean() - means[m]) > 1e-6:
            raise GrscaleError(f"{run}: re-evaluating {CHECKPOINT_FILE} gives {m} {per_user[m].mean():.6f}, "
                               f"metrics.jsonl says {means[m]:.6f}")
    record = recorded  # where recorded before its per-user figures were kept
    if record is None:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        order = json.loads((Path(data_dir) / "order.json").read_text()) if pandas_sorted else {}
        epochs = final["flops"] / trial(preset, protocol, negatives_per, 1.0).budget
        record = {"preset": preset, "protocol": protocol, "negatives_per": negatives_per,
                  "architecture": architecture, "ties": ties, **({"tie_order": order} if order else {}),
                  "seed": cfg.seed, "epochs": round(epochs, 2),
                  "wall_s": round(final["wall_s"], 1), "metrics": means,
                  "se": {m: standard_error(per_user[m]) for m in METRICS}, "test_users": int(per_user["hr@10"].size),
                  "date": str(date.today()), "git": sha, "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    write_users(record, per_user)
    return record


def per_user_test_metrics(run: Path, protocol: str) -> dict[str, np.ndarray]:
    """A finished run's test metrics per user, re-evaluated from its checkpoint: the final model under
    the paper's protocol, the best-validation model under ours (the models its figures come from)."""
    payload = torch.load(run / CHECKPOINT_FILE, map_location="cpu", weights_only=False)
    cfg = TrialConfig.from_dict(payload["config"])
    data_dir = Path(cfg.runtime.data_dir) if cfg.runtime.data_dir else None
    log = load_dataset(cfg.data.dataset, data_dir, ties=cfg.data.ties, allow_modified=cfg.data.allow_modified)
    split = make_split(log, cfg.data.split)
    model = build_trial_model(cfg, split)
    model.load_state_dict(payload["model" if protocol == "paper" else "best_model"])
    return evaluate_retrieval(model, split.test, cfg, torch.device("cpu")).per_example()


def order_record(records: list[dict], per_user: list[dict], architecture: str) -> dict:
    """Whether one seed's three runs follow the published order by NDCG@10, with each step's paired
    difference over the same test users."""
    steps = []
    for low, high, low_users, high_users in zip(records, records[1:], per_user, per_user[1:]):
        difference = high_users["ndcg@10"] - low_users["ndcg@10"]
        steps.append({"low": low["preset"], "high": high["preset"], "difference": float(difference.mean()),
                      "se": standard_error(difference)})
    first = records[0]
    return {"protocol": first["protocol"], "negatives_per": first["negatives_per"],
            "architecture": architecture, "ties": first["ties"], "seed": first["seed"],
            "epochs": sorted({round(r["epochs"], 1) for r in records}), "steps": steps}


def write_table(ledger: dict) -> None:
    users = sorted({r["test_users"] for r in ledger["runs"]})
    lines = [
        "# ML-1M: the HSTU paper's table reproduced", "",
        "Epochs counted by FLOPs budget; constant lr 1e-3. paper protocol = leave-last-out, test at the end of "
        "training; ours = leave-one-out, test at the best validation NDCG@10. Published figures in parentheses; "
        "delta = relative difference. Written from `reproduce_ml1m.json`, the ledger of every finished run "
        "(each row's machine, date and git commit are there).", "",
        "## Mean over seeds", "",
        "Each figure: the mean over the seeds ± their standard deviation (seed-to-seed variation of training: "
        "the paper tests on the same users' last items, so this, not test-set sampling, is the noise in "
        "comparing with it).", "",
        "| model | protocol | negatives per | architecture | ties | epochs | seeds | HR@10 | NDCG@10 | HR@50 "
        "| HR@200 | max abs delta |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple, list[dict]] = {}
    for record in ledger["runs"]:
        groups.setdefault((*run_key(record)[:-1], round(record["epochs"], 1)), []).append(record)
    for (preset, protocol, negatives_per, variant, ties, epochs), records in groups.items():
        cells, deltas = [], []
        for metric, published in zip(METRICS, PUBLISHED[preset]):
            values = np.array([r["metrics"][metric] for r in records])
            deltas.append(values.mean() / published - 1.0)
            spread = f" ± {values.std(ddof=1):.4f}" if values.size > 1 else ""
            cells.append(f"{values.mean():.4f}{spread} ({published:.4f}, {deltas[-1]:+.1%})")
        lines.append(f"| {preset} | {protocol} | {negatives_per} | {variant} | {ties} | {epochs:g} | {len(records)} "
                     f"| {' | '.join(cells)} "
                     f"| {max(deltas, key=abs):+.1%} |")
    lines += ["", *order_sentences(ledger), "", "## Every run", "",
              f"Each figure ± its standard error over the {'/'.join(map(str, users))} test users (test-set "
              "sampling), re-evaluated from the run's checkpoint; z = difference from the published figure / "
              "standard error.", "",
              "| model | protocol | negatives per | architecture | ties | seed | epochs | HR@10 | NDCG@10 | HR@50 "
              "| HR@200 | max abs delta | max abs z | wall |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for record in ledger["runs"]:
        cells, deltas, zs = [], [], []
        for metric, published in zip(METRICS, PUBLISHED[record["preset"]]):
            value, se = record["metrics"][metric], record["se"][metric]
            deltas.append(value / published - 1.0)
            zs.append((value - published) / se)
            cells.append(f"{value:.4f} ± {se:.4f} ({published:.4f}, {deltas[-1]:+.1%})")
        lines.append(f"| {record['preset']} | {record['protocol']} | {record['negatives_per']} "
                     f"| {record['architecture']} | {record['ties']} | {record['seed']} "
                     f"| {round(record['epochs'], 1):g} | {' | '.join(cells)} | {max(deltas, key=abs):+.1%} "
                     f"| {max(zs, key=abs):+.1f} | {record['wall_s'] / 60:.0f} min |")
    old = TABLE.read_text() if TABLE.exists() else ""
    notes = old[old.index(NOTES_MARKER):] if NOTES_MARKER in old else f"{NOTES_MARKER}\n"
    text = "\n".join(lines) + "\n\n" + notes
    print(text)
    TABLE.write_text(text)


def order_sentences(ledger: dict) -> list[str]:
    """The published-order check per seed, and over seeds: the mean of the per-seed paired differences."""
    names = list(PUBLISHED)
    sentences, by_setting = [], {}
    for order in ledger["orders"]:
        by_setting.setdefault((*order_key(order)[:-1], tuple(order["epochs"])), []).append(order)
    for (protocol, negatives_per, variant, ties, epochs), orders in by_setting.items():
        if len(epochs) > 1:
            continue  # the order is only compared at equal training
        per_seed = []
        for order in orders:
            holds = all(step["difference"] > 0 for step in order["steps"])
            steps = "; ".join(f"{s['high']} - {s['low']} {s['difference']:+.4f} ± {s['se']:.4f}"
                              for s in order["steps"])
            per_seed.append(f"seed {order['seed']}: {'holds' if holds else 'does not hold'} ({steps})")
        summary = ""
        if len(orders) > 1:
            means = []
            for i, (low, high) in enumerate(zip(names, names[1:])):
                differences = np.array([o["steps"][i]["difference"] for o in orders])
                means.append(f"{high} - {low} {differences.mean():+.4f} ± {differences.std(ddof=1):.4f}")
            summary = f"; over {len(orders)} seeds, mean ± seed standard deviation: {'; '.join(means)}"
        sentences.append(
            f"Published order SASRec < HSTU < HSTU-large by NDCG@10, {protocol} protocol, negatives per "
            f"{negatives_per}, {variant} architecture, ties {TIE_WORDS[ties]}, "
            f"{epochs[0]:g} epochs each (paired differences over the same test users ± their "
            f"standard error): {'; '.join(per_seed)}{summary}.")
    return sentences


if __name__ == "__main__":
    main()
