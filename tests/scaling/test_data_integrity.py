"""Named datasets are their official files: anything else is refused unless allowed, and recorded."""
import hashlib
import shutil

import pytest

from scaling.cli import main
from scaling.data.dataset import load_dataset
from scaling.data.registry import DATASETS, get_spec
from scaling.data.synthetic import SyntheticConfig
from scaling.errors import GrscaleError
from tests.scaling.fixtures import write_beauty, write_ml1m, write_ml20m, write_ml100k

ML1M_SHA256 = "506d64ca44484487c11dc2d9a28de5c54948213e6b96285e298afe28d6ea4e0f"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRSCALE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GRSCALE_DATA_DIR", raising=False)


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_official_file_digests_are_those_of_the_parsed_file():
    file_digests = {name: spec.file_sha256 for name, spec in DATASETS.items()}
    assert file_digests == {
        "synthetic": None,
        "ml-100k": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
        "ml-1m": ML1M_SHA256,
        "ml-20m": None,  # GroupLens publishes only the archive's md5
        "amazon-books": None,
        "beauty": "226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8",  # the url is the file
    }


@pytest.mark.parametrize("name, write", [("ml-1m", write_ml1m), ("ml-100k", write_ml100k), ("beauty", write_beauty)])
def test_fixture_under_an_official_name_is_refused_with_one_line_naming_both_digests(tmp_path, name, write):
    path = write(tmp_path)
    with pytest.raises(GrscaleError) as info:
        load_dataset(name, tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert f"{path} (dataset {name!r})" in message
    assert f"expected sha256 {get_spec(name).file_sha256}, found {sha256(path)}" in message
    assert "--allow-modified-data" in message and "data: {allow_modified: true}" in message
    assert not (tmp_path / "cache").exists()  # refused before anything was parsed or cached


def test_allowed_modified_file_records_its_digest_and_keeps_it_through_cache_and_ties(tmp_path):
    path = write_ml1m(tmp_path)
    log = load_dataset("ml-1m", tmp_path, allow_modified=True)
    assert log.num_interactions == 11
    assert (log.source.path, log.source.sha256, log.source.modified) == (str(path), sha256(path), True)
    cached = load_dataset("ml-1m", tmp_path, ties="shuffle", allow_modified=True)  # a cache hit
    assert cached.source == log.source


def test_cached_copy_of_a_modified_file_is_still_refused_without_the_flag(tmp_path):
    write_ml1m(tmp_path)
    load_dataset("ml-1m", tmp_path, allow_modified=True)
    with pytest.raises(GrscaleError, match="checksum mismatch"):
        load_dataset("ml-1m", tmp_path)


def test_cache_hit_reports_the_path_of_this_load(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    write_ml1m(first), write_ml1m(second)  # same bytes: one cache entry
    load_dataset("ml-1m", first, allow_modified=True)
    assert load_dataset("ml-1m", second, allow_modified=True).source.path == str(second / "ratings.dat")


def test_file_without_an_official_digest_is_accepted_as_unverified(tmp_path):
    path = write_ml20m(tmp_path)
    log = load_dataset("ml-20m", tmp_path)
    assert (log.source.path, log.source.sha256, log.source.modified) == (str(path), sha256(path), None)


def test_relative_data_dir_is_recorded_as_an_absolute_path(tmp_path, monkeypatch):
    write_ml1m(tmp_path)
    monkeypatch.chdir(tmp_path.parent)
    log = load_dataset("ml-1m", tmp_path.relative_to(tmp_path.parent), allow_modified=True)
    assert log.source.path == str(tmp_path / "ratings.dat")


def test_synthetic_data_has_no_source():
    config = SyntheticConfig(num_users=30, num_items=20, mean_seq_len=5)
    assert load_dataset("synthetic", synthetic=config).source is None
    assert load_dataset("synthetic", synthetic=config, ties="shuffle", allow_modified=True).source is None


def test_official_ml1m_copy_is_verified_and_a_cut_one_refused(tmp_path, real_data_dir):
    official = real_data_dir / "ml-1m" / "ratings.dat"
    if not official.is_file():
        pytest.skip(f"no {official}")
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    whole.mkdir(), cut.mkdir()
    shutil.copyfile(official, whole / "ratings.dat")
    log = load_dataset("ml-1m", whole)
    assert (log.source.sha256, log.source.modified, log.num_interactions) == (ML1M_SHA256, False, 1_000_209)

    with open(official, "rb") as source:
        (cut / "ratings.dat").write_bytes(b"".join(next(source) for _ in range(100_000)))
    found = sha256(cut / "ratings.dat")
    with pytest.raises(GrscaleError, match=f"expected sha256 {ML1M_SHA256}, found {found}"):
        load_dataset("ml-1m", cut)
    log = load_dataset("ml-1m", cut, allow_modified=True)
    assert (log.source.sha256, log.source.modified, log.num_interactions) == (found, True, 100_000)


def test_stats_refuses_a_modified_file_in_one_line_and_shows_it_when_allowed(tmp_path, capsys):
    path = write_ml1m(tmp_path)
    assert main(["data", "stats", "ml-1m", "--data-dir", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert captured.out == "" and err.count("\n") == 0
    assert err.startswith("grscale data: error: checksum mismatch for ") and str(path) in err
    assert ML1M_SHA256 in err and sha256(path) in err and "--allow-modified-data" in err

    assert main(["data", "stats", "ml-1m", "--data-dir", str(tmp_path), "--allow-modified-data"]) == 0
    out = capsys.readouterr().out
    assert "interactions  11\n" in out and f"file          {path}\n" in out
    assert f"sha256        {sha256(path)} (MODIFIED: not the official file)" in out


def test_stats_says_when_a_file_is_unverified(tmp_path, capsys):
    path = write_ml20m(tmp_path)
    assert main(["data", "stats", "ml-20m", "--data-dir", str(tmp_path)]) == 0
    assert f"sha256        {sha256(path)} (unverified: no official digest" in capsys.readouterr().out
