"""Your own log: a column mapping over Parquet or CSV, prepared once into a memory-mapped cache entry
with the ID mapping beside it, and one clear error for each kind of bad input with nothing cached."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from scaling import typed
from scaling.cli import main
from scaling.config import TrialConfig
from scaling.data import generic
from scaling.data.dataset import load_dataset
from scaling.data.logspec import LogSpec
from scaling.errors import GrscaleError
from sweeps.spec import spec_from_dict

# user, item, ts (s), clicked: user "b" has a time tie (items 30 then 10 at t=100, in file order)
ROWS = [("b", 30, 100, 1), ("a", 20, 50, 0), ("b", 10, 100, 0), ("a", 10, 40, 1), ("b", 20, 90, 1),
        ("c", 30, 10, 1), ("a", 30, 60, 1), ("c", 20, 20, 0)]


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRSCALE_CACHE_DIR", str(tmp_path / "cache"))


def table(rows=ROWS, **overrides) -> pa.Table:
    columns = dict(zip(("user_id", "item_id", "ts", "clicked"), map(list, zip(*rows))))
    return pa.table({**columns, **overrides})


def spec(path, **fields) -> LogSpec:
    return LogSpec(path=str(path), **{"user": "user_id", "item": "item_id", "time": "ts", "label": "clicked", **fields})


def cached_entries(tmp_path) -> list:
    folder = tmp_path / "cache" / "prepared"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_log_is_remapped_sorted_and_served_memory_mapped_from_the_cache(tmp_path, monkeypatch):
    pq.write_table(table(), tmp_path / "events.parquet")
    log = load_dataset(spec(tmp_path / "events.parquet"))
    # users a, b, c -> 0, 1, 2; items 10, 20, 30 -> 1, 2, 3; each user's interactions in time order
    np.testing.assert_array_equal(log.offsets, [0, 3, 6, 8])
    np.testing.assert_array_equal(log.item_ids, [1, 2, 3, 2, 3, 1, 3, 2])
    np.testing.assert_array_equal(log.timestamps, [40, 50, 60, 90, 100, 100, 10, 20])
    np.testing.assert_array_equal(log.labels, [1, 0, 1, 1, 1, 0, 1, 0])
    assert log.has_labels and log.name == "events" and log.source.modified is None
    assert isinstance(log.item_ids, np.memmap)
    (entry,) = cached_entries(tmp_path)
    folder = tmp_path / "cache" / "prepared" / entry
    assert pq.read_table(folder / "users.parquet").to_pydict() == {"grscale_user": [0, 1, 2], "user_id": ["a", "b", "c"]}
    assert pq.read_table(folder / "items.parquet").to_pydict() == {"grscale_item": [1, 2, 3], "item_id": [10, 20, 30]}
    monkeypatch.setattr(generic, "_prepare", lambda *a: pytest.fail("prepared twice"))
    np.testing.assert_array_equal(load_dataset(spec(tmp_path / "events.parquet")).item_ids, log.item_ids)


def test_a_folder_of_csv_files_gives_the_log_of_one_parquet_file(tmp_path):
    pq.write_table(table(), tmp_path / "one.parquet")
    (tmp_path / "parts").mkdir()
    pacsv.write_csv(table(ROWS[:5]), tmp_path / "parts" / "2024-01.csv")
    pacsv.write_csv(table(ROWS[5:]), tmp_path / "parts" / "2024-02.csv")
    (tmp_path / "parts" / "_SUCCESS").write_text("")
    a = load_dataset(spec(tmp_path / "one.parquet"))
    b = load_dataset(spec(tmp_path / "parts"))
    for key, value in a.arrays().items():
        np.testing.assert_array_equal(b.arrays()[key], value)


EPOCH = 1_700_000_000  # 2023-11-14T22:13:20Z: times of a real log, whose magnitude gives their unit
SECONDS = [EPOCH + t for t in table()["ts"].to_pylist()]


@pytest.mark.parametrize("times, fields", [
    (SECONDS, {}),
    ([t * 1000 for t in SECONDS], {}),  # milliseconds, detected
    ([t * 10**6 for t in SECONDS], {}),  # microseconds, detected
    ([t * 1000 + 999 for t in SECONDS], {"time_unit": "ms"}),  # declared; floored to seconds
    ([float(t) + 0.5 for t in SECONDS], {}),
    (pa.array([t * 10**9 for t in SECONDS], pa.timestamp("ns", tz="UTC")), {}),
    ([datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") for t in SECONDS], {}),
])
def test_time_units_are_detected_or_declared(tmp_path, times, fields):
    pq.write_table(table(ts=times), tmp_path / "events.parquet")
    log = load_dataset(spec(tmp_path / "events.parquet", **fields))
    np.testing.assert_array_equal(log.timestamps - EPOCH, [40, 50, 60, 90, 100, 100, 10, 20])


def test_ratings_threshold_no_time_and_k_core(tmp_path):
    ratings = [5.0, 2.0, 4.0, 4.5, 1.0, 3.0, 4.0, 5.0]
    pq.write_table(table(rating=ratings), tmp_path / "r.parquet")
    log = load_dataset(spec(tmp_path / "r.parquet", time="", label="", rating="rating", positive_rating=4.0))
    # no time column: file order is time order (positions)
    np.testing.assert_array_equal(log.timestamps, [1, 3, 6, 0, 2, 4, 5, 7])
    np.testing.assert_array_equal(log.labels, [0, 1, 1, 1, 1, 0, 0, 1])  # a: rows 1, 3, 6 -> 2.0, 4.5, 4.0
    # 2-core: user d and item 40 (one interaction each) go; 3-core: nothing is left, one clear error
    pq.write_table(table(ROWS + [("d", 40, 5, 1)]), tmp_path / "k.parquet")
    core = load_dataset(spec(tmp_path / "k.parquet", min_interactions=2))
    assert core.num_users == 3 and core.num_items == 3 and core.num_interactions == 8
    with pytest.raises(GrscaleError, match="no interactions left after preprocessing .min_interactions=3."):
        load_dataset(spec(tmp_path / "k.parquet", min_interactions=3))


def bad_inputs(tmp_path):
    yield "missing", spec(tmp_path / "x.parquet", label="liked"), lambda p: pq.write_table(table(), p), \
        "no column 'liked' (dataset.label); its columns: user_id, item_id, ts, clicked"
    nulls = table(user_id=["b", None, "b", "a", None, "c", "a", "c"], item_id=[30, 20, None, 10, 20, 30, 30, 20])
    yield "nulls", spec(tmp_path / "x.parquet"), lambda p: pq.write_table(nulls, p), (
        "2 rows have no user_id and 1 no item_id; rows without a user or item cannot be placed: drop them first, "
        "or set dataset.drop_null_ids: true")
    when = [f"2024-01-0{i + 1}" for i in range(8)]
    when[5] = "yesterday"
    yield "time", spec(tmp_path / "x.parquet"), lambda p: pq.write_table(table(ts=when), p), \
        "column 'ts' (dataset.time) holds 'yesterday', which is not a time"
    yield "label", spec(tmp_path / "x.parquet"), lambda p: pq.write_table(table(clicked=[1, 0, 2, 1, 1, 0, 1, 0]), p), \
        "column 'clicked' (dataset.label) is not binary: it holds 2"
    yield "empty csv", spec(tmp_path / "x.csv"), lambda p: p.write_text(""), "x.csv: the file is empty"
    yield "no rows", spec(tmp_path / "x.parquet"), lambda p: pq.write_table(table().slice(0, 0), p), \
        "x.parquet: the file is empty (no interactions)"

    def mixed(folder):
        folder.mkdir()
        pq.write_table(table(), folder / "a.parquet")
        pq.write_table(table(item_id=[str(i) for i in table()["item_id"].to_pylist()]), folder / "b.parquet")
    yield "schemas", spec(tmp_path / "parts"), mixed, \
        "the folder mixes schemas: a.parquet has item_id: int64, b.parquet has item_id: string"


@pytest.mark.parametrize("case", ["missing", "nulls", "time", "label", "empty csv", "no rows", "schemas"])
def test_bad_input_is_one_clear_error_and_nothing_is_cached(tmp_path, case):
    (log, write, message), = [(s, w, m) for name, s, w, m in bad_inputs(tmp_path) if name == case]
    write(tmp_path / log.path.rsplit("/", 1)[1])
    with pytest.raises(GrscaleError) as info:
        load_dataset(log)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert cached_entries(tmp_path) == []


def test_rows_without_ids_are_dropped_when_asked(tmp_path):
    pq.write_table(table(user_id=["b", None, "b", "a", "b", "c", "a", "c"]), tmp_path / "x.parquet")
    log = load_dataset(spec(tmp_path / "x.parquet", drop_null_ids=True))
    assert log.num_interactions == 7 and log.num_users == 3


def test_a_file_that_changes_while_being_read_is_refused_and_not_cached(tmp_path, monkeypatch):
    path = tmp_path / "x.parquet"
    pq.write_table(table(), path)
    read_values = generic._read_values

    def appended_meanwhile(*args):
        result = read_values(*args)
        pq.write_table(table(ROWS + ROWS[:1]), path)  # a writer still exporting
        return result

    monkeypatch.setattr(generic, "_read_values", appended_meanwhile)
    with pytest.raises(GrscaleError, match="changed while it was being read; nothing was cached"):
        load_dataset(spec(path))
    assert cached_entries(tmp_path) == []


def test_a_changed_file_is_prepared_anew(tmp_path):
    path = tmp_path / "x.csv"
    pacsv.write_csv(table(), path)
    assert load_dataset(spec(path)).num_interactions == 8
    pacsv.write_csv(table(ROWS + [("d", 10, 5, 1)]), path)
    assert load_dataset(spec(path)).num_users == 4


def test_configs_and_specs_take_a_mapping_or_a_name(tmp_path):
    mapping = {"path": "events.parquet", "user": "user_id", "item": "item_id", "time": "ts"}
    cfg = TrialConfig.from_dict({"model": {"family": "hstu", "size": "xs"}, "budget": 1e9, "data": {"dataset": mapping}})
    assert isinstance(cfg.data.dataset, LogSpec) and cfg.data.dataset_name == "events"
    assert cfg.data.dataset.path.startswith("/")  # fixed where the config is read
    assert TrialConfig.from_dict(cfg.to_dict()) == cfg  # run_info.json and checkpoints read it back
    named = TrialConfig.from_dict({"model": {"family": "hstu", "size": "xs"}, "budget": 1e9, "data": {"dataset": "ml-1m"}})
    assert named.data.dataset == "ml-1m"
    with pytest.raises(GrscaleError, match=r"^trial.data.dataset: expected a string or a mapping, got 3$"):
        TrialConfig.from_dict({"model": {"family": "hstu", "size": "xs"}, "budget": 1e9, "data": {"dataset": 3}})
    with pytest.raises(GrscaleError, match=r"^trial.data.dataset: rating: set positive_rating"):
        TrialConfig.from_dict({"model": {"family": "hstu", "size": "xs"}, "budget": 1e9,
                               "data": {"dataset": {**mapping, "rating": "stars"}}})
    with pytest.raises(GrscaleError, match=r"trial.data.dataset: missing item"):
        TrialConfig.from_dict({"model": {"family": "hstu", "size": "xs"}, "budget": 1e9,
                               "data": {"dataset": {"path": "x.csv", "user": "u"}}})
    spec = spec_from_dict({"name": "own", "families": {"hstu": ["xs"]}, "budgets": [1e9], "dataset": mapping})
    assert spec.dataset.display_name == "events"
    assert typed.to_mapping(spec)["dataset"]["user"] == "user_id"


def test_readme_own_log_commands_run(tmp_path, monkeypatch, capsys):
    """The README's "Your own interaction log" section, at tiny scale."""
    monkeypatch.chdir(tmp_path)
    assert main(["data", "example-log", "events.parquet", "--users", "120", "--items", "60"]) == 0
    assert main(["data", "stats", "events.parquet", "--user", "user_id", "--item", "item_id", "--time", "ts",
                 "--label", "clicked"]) == 0
    out = capsys.readouterr().out
    assert "users         120\n" in out and "positives" in out and "users.parquet, items.parquet" in out
    (tmp_path / "own.yaml").write_text(
        "data:\n  dataset: {path: events.parquet, user: user_id, item: item_id, time: ts, label: clicked}\n"
        "  max_seq_len: 16\neval: {num_evals: 2, candidates: 20}\noptim: {batch_size: 32}\n"
        "model: {loss: {num_negatives: 16}}\n")
    assert main(["train", "--config", "own.yaml", "--family", "hstu", "--size", "xs", "--budget", "1e8",
                 "--out", "run", "--no-progress"]) == 0
    assert "hstu-xs retrieval on events" in capsys.readouterr().out
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {r["dataset"] for r in rows} == {"events"} and {r["eval_protocol"] for r in rows} == {"sampled-20"}
    assert rows[-1]["eval_kind"] == "final" and rows[-1]["data_sha256"]
