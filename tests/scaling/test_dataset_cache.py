import os
import stat

import numpy as np
import pytest

from scaling.data import dataset as dataset_module
from scaling.data.cache import PREPROCESS_VERSION, save_arrays
from scaling.files import atomic_write
from scaling.data.dataset import load_dataset
from scaling.data.registry import get_spec
from scaling.errors import GrscaleError
from tests.scaling.fixtures import write_ml1m


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRSCALE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GRSCALE_DATA_DIR", raising=False)


@pytest.fixture
def folder(tmp_path):
    """A data folder holding the small ML-1M ratings fixture."""
    path = tmp_path / "d"
    path.mkdir()
    write_ml1m(path)
    return path


def count_parses(monkeypatch):
    calls = []
    original = dataset_module.PARSERS["ml1m-ratings"]
    monkeypatch.setitem(dataset_module.PARSERS, "ml1m-ratings", lambda p: calls.append(p) or original(p))
    return calls


def test_second_load_is_served_from_cache(tmp_path, folder, monkeypatch):
    calls = count_parses(monkeypatch)
    first = load_dataset("ml-1m", folder, allow_modified=True)
    second = load_dataset("ml-1m", folder, allow_modified=True)
    assert len(calls) == 1
    for key, value in first.arrays().items():
        np.testing.assert_array_equal(value, second.arrays()[key])
    cached = list((tmp_path / "cache" / "prepared").iterdir())
    assert len(cached) == 1 and cached[0].name.endswith(f"-v{PREPROCESS_VERSION}") and cached[0].is_dir()
    assert isinstance(second.item_ids, np.memmap)  # served memory-mapped: processes share one copy


def test_ties_option_shuffles_the_cached_log_and_rejects_unknown_values(folder, monkeypatch):
    calls = count_parses(monkeypatch)
    file_order = load_dataset("ml-1m", folder, allow_modified=True)
    shuffled = load_dataset("ml-1m", folder, ties="shuffle", allow_modified=True)
    assert len(calls) == 1  # one parse: ties are ordered after the cache
    np.testing.assert_array_equal(shuffled.timestamps, file_order.timestamps)
    assert sorted(shuffled.item_ids.tolist()) == sorted(file_order.item_ids.tolist())
    with pytest.raises(GrscaleError, match="unknown ties 'random'; known: file, shuffle"):
        load_dataset("ml-1m", folder, ties="random")


def test_changed_file_is_never_served_stale(folder):
    path = folder / "ratings.dat"
    assert load_dataset("ml-1m", folder, allow_modified=True).num_interactions == 11
    with open(path, "a") as handle:
        handle.write("9::60::5::300\n")
    log = load_dataset("ml-1m", folder, allow_modified=True)
    assert log.num_interactions == 12 and log.num_users == 4


def test_corrupt_cache_entry_is_rebuilt(tmp_path, folder, monkeypatch):
    load_dataset("ml-1m", folder, allow_modified=True)
    (entry,) = (tmp_path / "cache" / "prepared").iterdir()
    (entry / "item_ids.npy").write_bytes(b"not an npy")
    calls = count_parses(monkeypatch)
    assert load_dataset("ml-1m", folder, allow_modified=True).num_interactions == 11
    assert len(calls) == 1


def test_failed_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "out" / "x"

    class Boom:
        def __array__(self, *a, **k):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_arrays(target, {"a": np.arange(3), "b": Boom()})
    assert list(target.parent.iterdir()) == []


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_written_file_gets_the_users_mode_not_mkstemps(tmp_path, umask, mode):
    target = tmp_path / "status.json"
    previous = os.umask(umask)
    try:
        atomic_write(target, lambda handle: handle.write(b"{}"))
        assert os.umask(umask) == umask  # left as it was found
    finally:
        os.umask(previous)
    assert stat.S_IMODE(target.stat().st_mode) == mode and target.read_bytes() == b"{}"
    assert list(tmp_path.iterdir()) == [target]


def test_malformed_file_leaves_no_cache(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::2::3::4\nbroken\n")
    with pytest.raises(GrscaleError, match="ratings.dat:2"):
        load_dataset("ml-1m", folder, allow_modified=True)
    assert not (tmp_path / "cache" / "prepared").exists() or not any((tmp_path / "cache" / "prepared").iterdir())


def test_data_dir_env_and_folder_aliases(tmp_path, monkeypatch):
    root = tmp_path / "root"
    (root / "amazon-beauty").mkdir(parents=True)
    (root / "amazon-beauty" / "Beauty.txt").write_text("1 1 2 3\n2 2 3 4\n")
    monkeypatch.setenv("GRSCALE_DATA_DIR", str(root))
    log = load_dataset("beauty", allow_modified=True)
    assert log.num_users == 2 and log.num_interactions == 6


def test_missing_file_message_names_file_folders_and_url(tmp_path, monkeypatch):
    monkeypatch.setenv("GRSCALE_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(GrscaleError) as info:
        load_dataset("ml-1m")
    message = str(info.value)
    assert "ratings.dat" in message and str(tmp_path / "nowhere" / "ml-1m") in message
    assert "https://files.grouplens.org/datasets/movielens/ml-1m.zip" in message


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(GrscaleError, match="unknown dataset 'ml-2m'.*synthetic, ml-100k, ml-1m, ml-20m, amazon-books, beauty"):
        load_dataset("ml-2m")


REAL = {  # name: (users, items, interactions), from the official files
    "ml-1m": (6040, 3706, 1_000_209),
    "ml-100k": (943, 1682, 100_000),
    "beauty": (22_363, 12_101, 198_502),
}


@pytest.mark.parametrize("name", REAL)
def test_real_files_have_the_published_counts(name, monkeypatch, real_data_dir):
    monkeypatch.setenv("GRSCALE_DATA_DIR", str(real_data_dir))
    try:
        log = load_dataset(name)
    except GrscaleError as error:
        pytest.skip(str(error))
    users, items, interactions = REAL[name]
    assert log.source.modified is False and log.source.sha256 == get_spec(name).file_sha256
    assert (log.num_users, log.num_items, log.num_interactions) == (users, items, interactions)
    assert np.unique(log.item_ids).size == items
    # time order within each user
    diffs = np.diff(log.timestamps)
    user_starts = log.offsets[1:-1]
    diffs[user_starts - 1] = 0
    assert (diffs >= 0).all()
