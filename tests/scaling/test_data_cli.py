import pytest

from scaling.cli import main


def test_stats_on_synthetic_prints_counts(capsys):
    assert main(["data", "stats", "synthetic", "--users", "150", "--items", "80", "--mean-seq-len", "10"]) == 0
    out = capsys.readouterr().out
    assert "users         150" in out and "interactions" in out and "p50=" in out and "time span" in out


@pytest.mark.parametrize("name, figures", [
    ("ml-1m", ("6,040", "3,706", "1,000,209")),
    ("ml-100k", ("943", "1,682", "100,000")),
    ("beauty", ("22,363", "12,101", "198,502")),
])
def test_stats_on_real_files(name, figures, capsys, monkeypatch, tmp_path, real_data_dir):
    if not any((real_data_dir / folder).is_dir() for folder in (name, "amazon-" + name)):
        pytest.skip(f"{name} not in {real_data_dir}")
    monkeypatch.setenv("GRSCALE_DATA_DIR", str(real_data_dir))
    monkeypatch.setenv("GRSCALE_CACHE_DIR", str(tmp_path))
    assert main(["data", "stats", name]) == 0
    out = capsys.readouterr().out
    users, items, interactions = figures
    assert f"users         {users}\n" in out and f"items         {items}\n" in out
    assert f"interactions  {interactions}\n" in out
    assert "(the official file)\n" in out


def test_unknown_dataset_is_one_line_error(capsys):
    assert main(["data", "stats", "netflix"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown dataset 'netflix'" in err and "ml-1m" in err


def test_every_subcommand_has_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["data", "fetch", "--help"])
    assert info.value.code == 0 and "checksums" in capsys.readouterr().out
