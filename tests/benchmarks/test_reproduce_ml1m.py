"""The ML-1M reproduction's copy of the data in the HSTU paper's sort order."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from scaling.config import TrialConfig
from scaling.data.dataset import load_dataset
from scaling.errors import GrscaleError

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "reproduce_ml1m.py"
spec = importlib.util.spec_from_file_location("reproduce_ml1m", SCRIPT)
reproduce = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reproduce)

COLUMNS = ["user_id", "item_id", "rating", "unix_timestamp"]


@pytest.fixture
def ratings(tmp_path, monkeypatch) -> Path:
    """An ML-1M ratings.dat with heavy ties: 20 users x 30 rows over 4 timestamps; items 1..60 all used."""
    monkeypatch.setenv("GRSCALE_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    rows = [(u, i, int(rng.integers(1, 6)), 1000 + int(rng.integers(0, 4)) + 10 * u)
            for u in range(1, 21) for i in rng.permutation(60)[:30] + 1]
    rows = [rows[k] for k in rng.permutation(len(rows))]  # users interleaved, as in a real log
    rows += [(1, i, 3, 5) for i in range(1, 61)]  # every item id present
    folder = tmp_path / "data" / "ml-1m"
    folder.mkdir(parents=True)
    (folder / "ratings.dat").write_text("".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in rows))
    monkeypatch.setenv("GRSCALE_DATA_DIR", str(tmp_path / "data"))
    return folder / "ratings.dat"


def test_pandas_sorted_copy_reads_as_the_papers_sequences(ratings, tmp_path):
    folder = reproduce.pandas_sorted_ml1m(tmp_path / "runs")
    # The paper's preprocessing: sort the whole frame by timestamp, then group by user.
    frame = pd.read_csv(ratings, sep="::", engine="python", names=COLUMNS)
    expected = frame.sort_values(by=["unix_timestamp"]).groupby("user_id").item_id.apply(list)
    log = load_dataset("ml-1m", folder, ties="file", allow_modified=True)
    offsets = log.offsets
    got = [log.item_ids[offsets[u]:offsets[u + 1]].tolist() for u in range(log.num_users)]
    assert got == list(expected)  # item codes equal raw ids: ids 1..60 all present
    assert sorted(ratings.read_text().splitlines()) == sorted((folder / "ratings.dat").read_text().splitlines())
    order = json.loads((folder / "order.json").read_text())
    assert 0.0 <= order["tied_pairs_in_file_order"] <= 1.0 and order["pandas"] == pd.__version__


def test_pandas_sorted_copy_is_written_once(ratings, tmp_path):
    folder = reproduce.pandas_sorted_ml1m(tmp_path / "runs")
    ratings.write_text("not ratings\n")  # a second call must not re-read the source
    assert reproduce.pandas_sorted_ml1m(tmp_path / "runs") == folder
    assert (folder / "ratings.dat").read_text().count("::") > 0


def test_tied_pairs_in_file_order_counts_per_user_ties():
    frame = pd.DataFrame({"user_id": [1, 2, 1, 1, 2], "unix_timestamp": [5, 7, 5, 6, 7]})
    # user 1's tie is rows 0 and 2; user 2's is rows 1 and 4
    assert reproduce.tied_pairs_in_file_order(frame, np.array([0, 1, 2, 3, 4])) == 1.0
    assert reproduce.tied_pairs_in_file_order(frame, np.array([2, 0, 4, 1, 3])) == 0.0
    assert reproduce.tied_pairs_in_file_order(frame, np.array([2, 0, 1, 4, 3])) == 0.5


def test_run_names_say_the_tie_order():
    names = {ties: reproduce.run_name("hstu-ml1m", "paper", "prediction", "paper", ties, 0)
             for ties in reproduce.TIE_ORDERS}
    assert names == {"file": "hstu-ml1m-paper-prediction-paper-model-seed0",
                     "shuffle": "hstu-ml1m-paper-prediction-paper-model-shuffled-ties-seed0",
                     "pandas-sort": "hstu-ml1m-paper-prediction-paper-model-pandas-sort-ties-seed0"}
    assert reproduce.run_name("hstu-ml1m", "paper", "prediction", "paper-attention", "file", 1) == \
        "hstu-ml1m-paper-prediction-paper-attention-seed1"


@pytest.mark.parametrize("preset,variant,overrides,expected", [
    ("sasrec-ml1m", "paper", {}, ["paper", "paper-attention"]),
    ("sasrec-ml1m", "default", {"layout": "original"}, ["paper", "paper-attention"]),
    ("hstu-ml1m", "paper-attention", {}, ["paper-attention"]),
    ("hstu-ml1m", "default", {"query_time": "target", "qk_scale": 1.0}, ["paper-attention"]),
    ("hstu-ml1m", "paper", {}, ["paper"]),
    ("hstu-ml1m", "default", {}, ["grscale"]),
])
def test_a_run_counts_for_every_architecture_that_builds_it(tmp_path, preset, variant, overrides, expected):
    family, size = preset.split("-", 1)
    cfg = TrialConfig.from_dict({"model": {"family": family, "size": size, "variant": variant, "overrides": overrides},
                                 "budget": 1.0})
    torch.save({"config": cfg.to_dict()}, tmp_path / reproduce.CHECKPOINT_FILE)
    assert reproduce.architectures_of(reproduce.run_config(tmp_path)) == expected


def test_a_run_of_no_architecture_is_refused():
    cfg = TrialConfig.from_dict({"model": {"family": "hstu", "size": "ml1m", "overrides": {"qk_scale": 0.5}},
                                 "budget": 1.0})
    with pytest.raises(GrscaleError, match="matches no architecture"):
        reproduce.architectures_of(cfg)


def test_table_lists_pandas_sort_runs_and_their_order(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(reproduce, "TABLE", tmp_path / "table.md")
    runs = []
    for preset, ndcg in zip(reproduce.PUBLISHED, (0.15, 0.17, 0.19)):
        metrics = dict(zip(reproduce.METRICS, (0.3, ndcg, 0.5, 0.7)))
        runs.append({"preset": preset, "protocol": "paper", "negatives_per": "prediction", "architecture": "paper",
                     "ties": "pandas-sort", "seed": 0, "epochs": 100.0, "wall_s": 60.0, "metrics": metrics,
                     "se": dict.fromkeys(reproduce.METRICS, 0.004), "test_users": 6040})
    steps = [{"low": a["preset"], "high": b["preset"], "difference": 0.02, "se": 0.003} for a, b in zip(runs, runs[1:])]
    order = {"protocol": "paper", "negatives_per": "prediction", "architecture": "paper", "ties": "pandas-sort",
             "seed": 0, "epochs": [100.0], "steps": steps}
    reproduce.write_table({"runs": runs, "orders": [order]})
    table = (tmp_path / "table.md").read_text()
    hstu_row = next(line for line in table.splitlines() if line.startswith("| hstu-ml1m | paper |"))
    assert "| pandas-sort | 100 | 1 | 0.3000 (0.3097, -3.1%) | 0.1700 (0.1720, -1.2%) |" in hstu_row
    assert "ties as the paper's pandas sort leaves them, 100 epochs each" in table
    assert "seed 0: holds" in table and table.rstrip().endswith(reproduce.NOTES_MARKER)


def ledger_record(preset: str, architecture: str, seed: int = 0) -> dict:
    return {"preset": preset, "protocol": "paper", "negatives_per": "prediction", "architecture": architecture,
            "ties": "pandas-sort", "seed": seed, "epochs": 100.0}


def test_order_pairs_ledger_runs_by_their_kept_per_user_figures(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "USERS", tmp_path / "users")
    rng = np.random.default_rng(0)
    sasrec = ledger_record("sasrec-ml1m", "paper")  # SASRec's paper layout counts for paper-attention too
    hstu, large = ledger_record("hstu-ml1m", "paper-attention"), ledger_record("hstu-large-ml1m", "paper-attention")
    ndcg = {"sasrec-ml1m": rng.random(50), "hstu-ml1m": rng.random(50), "hstu-large-ml1m": rng.random(50)}
    for record in (sasrec, hstu, large):
        reproduce.write_users(record, {m: ndcg[record["preset"]] for m in reproduce.METRICS})
    found = reproduce.order_records([sasrec, hstu, large], changed=set(), checked=set())
    assert list(found) == [("paper", "prediction", "paper-attention", "pandas-sort", 0)]  # no paper HSTU runs
    steps = found[("paper", "prediction", "paper-attention", "pandas-sort", 0)]["steps"]
    assert [(s["low"], s["high"]) for s in steps] == [("sasrec-ml1m", "hstu-ml1m"), ("hstu-ml1m", "hstu-large-ml1m")]
    difference = ndcg["hstu-large-ml1m"] - ndcg["hstu-ml1m"]
    assert steps[1]["difference"] == pytest.approx(difference.mean())
    assert steps[1]["se"] == pytest.approx(difference.std(ddof=1) / np.sqrt(50))
    # A check already made is redone only when one of its runs changed.
    checked = set(found)
    assert reproduce.order_records([sasrec, hstu, large], changed=set(), checked=checked) == {}
    assert list(reproduce.order_records([sasrec, hstu, large], {reproduce.run_key(hstu)}, checked)) == list(found)


def test_no_order_without_every_runs_per_user_figures(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "USERS", tmp_path / "users")
    records = [ledger_record(preset, "paper") for preset in reproduce.PUBLISHED]
    for record in records[:2]:
        reproduce.write_users(record, dict.fromkeys(reproduce.METRICS, np.ones(10)))
    assert reproduce.order_records(records, changed=set(), checked=set()) == {}
    reproduce.write_users(records[2], dict.fromkeys(reproduce.METRICS, np.ones(10)))
    name = "hstu-large-ml1m-paper-prediction-paper-model-pandas-sort-ties-seed0.npz"
    assert reproduce.users_file(records[2]).name == name
    assert list(reproduce.order_records(records, changed=set(), checked=set())) == \
        [("paper", "prediction", "paper", "pandas-sort", 0)]
