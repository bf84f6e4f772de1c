"""Start-up of the commands a researcher runs while a study goes on: `grscale --help`, `sweep status`,
`fit` and `report`, each in a fresh process (best of --repeats), with the heavy modules each one
imported. Target (issue 27): `sweep status`, `fit` and `report` import no torch (and status no Ray).

`sweep status` reads a generated sweep folder of 200 finished trials (plan.json, spec.yaml, trial
folders); `fit` runs on the committed ML-1M retrieval study (76 trials, 1000 resamples). With
`--ref REV` the same commands also run at another commit, from a temporary git worktree (the
folder's spec.yaml also lists the grid, which grscale read before plan.json). Writes
benchmarks/cli_startup.md.

    .venv/bin/python benchmarks/cli_startup.py --ref 99c88fc
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "ray", "wandb", "pandas", "numpy")
STUDY = REPO / "studies" / "ml1m" / "retrieval"
# Runs a grscale command and says on stderr which heavy modules it imported.
WRAPPER = ("import atexit, sys; heavy = {heavy!r}; "
           "atexit.register(lambda: print('HEAVY', ','.join(sorted({{m.split('.')[0] for m in sys.modules}} & "
           "set(heavy))), file=sys.stderr)); sys.argv = ['grscale', *sys.argv[1:]]; "
           "from scaling.cli import main; sys.exit(main())")


def sweep_folder(root: Path, trials: int = 200) -> Path:
    """A finished sweep's folder as `grscale sweep run` leaves it (no training needed to read it)."""
    sys.path.insert(0, str(REPO))
    from scaling.schema import short_number
    from sweeps.status import PlannedTrial, write_plan

    folder = root / "runs" / "bench"
    budgets = [(i + 1) * 1e9 for i in range(trials)]
    planned = []
    for budget in budgets:
        trial = PlannedTrial(trial_id=f"hstu-xs-C{short_number(budget)}-seed0", family="hstu", size="xs",
                             budget=budget, seed=0, setting={"peak_lr": 1e-3})
        run = folder / "trials" / trial.trial_id
        run.mkdir(parents=True)
        (run / "status.json").write_text(json.dumps({"status": "done", "error": None, "flops": trial.budget,
                                                     "step": 10}))
        (run / "metrics.jsonl").write_text(json.dumps({"flops": trial.budget, "status": "done"}) + "\n")
        planned.append(trial)
    # The grid as a spec too: grscale before plan.json (99c88fc) expanded the spec to know the trials.
    (folder / "spec.yaml").write_text(f"name: bench\nfamilies: {{hstu: [xs]}}\nbudgets: {budgets}\n")
    write_plan(folder, planned)
    return folder


def timed(checkout: Path, args: list[str], repeats: int) -> tuple[float, str]:
    """Best wall time over `repeats` fresh processes, and the heavy modules the last one imported."""
    env = dict(os.environ, PYTHONPATH=str(checkout), WANDB_MODE="offline")
    best, heavy = float("inf"), "?"
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", WRAPPER.format(heavy=HEAVY), *args], cwd=checkout, env=env,
                              capture_output=True, text=True)
        best = min(best, time.perf_counter() - start)
        if done.returncode != 0:
            return float("nan"), "failed: " + (done.stderr.strip().splitlines() or ["?"])[-2]
        heavy = next(line.split(" ", 1)[1] for line in done.stderr.splitlines() if line.startswith("HEAVY"))
    return best, heavy or "none"


def commands(folder: Path, out: Path) -> dict[str, list[str]]:
    return {
        "grscale --help": ["--help"],
        "grscale sweep status (200 trials)": ["sweep", "status", str(folder)],
        "grscale fit --help": ["fit", "--help"],
        "grscale fit (ML-1M retrieval study)": ["fit", str(STUDY / "results.parquet"), "--out", str(out)],
        "grscale report --help": ["report", "--help"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", help="also time the commands at this commit")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = sweep_folder(root)
        checkouts = {"this commit": REPO}
        if args.ref:
            subprocess.run(["git", "worktree", "add", "--detach", "-q", str(root / "ref"), args.ref], cwd=REPO,
                           check=True)
            checkouts[args.ref] = root / "ref"
        try:
            results = {name: {cmd: timed(checkout, argv, args.repeats)
                              for cmd, argv in commands(folder, root / f"fit-{i}").items()}
                       for i, (name, checkout) in enumerate(checkouts.items())}
        finally:
            if args.ref:
                subprocess.run(["git", "worktree", "remove", "--force", str(root / "ref")], cwd=REPO, check=True)
    write_table(results, args)


def write_table(results: dict[str, dict[str, tuple[float, str]]], args: argparse.Namespace) -> None:
    names = list(results)
    head = " | ".join(f"{n}: seconds | {n}: heavy modules imported" for n in names)
    lines = ["# Command start-up", "",
             "`benchmarks/cli_startup.py`: each command in a fresh process, best of "
             f"{args.repeats}; the heavy modules ({', '.join(HEAVY)}) it imported. Target: `sweep status`, "
             "`fit` and `report` import no torch, and `sweep status` no Ray. `fit` on the ML-1M study includes "
             "its 1000 bootstrap resamples.", "",
             f"| command | {head} |", "|---|" + "---|---|" * len(names)]
    for command in results[names[0]]:
        cells = " | ".join(f"{results[n][command][0]:.2f} | {results[n][command][1]}" for n in names)
        lines.append(f"| {command} | {cells} |")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    lines += ["", f"Machine: {os.cpu_count()}-core CPU ({platform.machine()}), Python {platform.python_version()}. "
                  f"Date: {datetime.date.today()}. Commit: {commit}."]
    text = "\n".join(lines) + "\n"
    print(text)
    (REPO / "benchmarks" / "cli_startup.md").write_text(text)


if __name__ == "__main__":
    main()
