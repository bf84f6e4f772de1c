"""The attention benchmark's pieces that run without a GPU."""
from __future__ import annotations

import argparse
import csv

import pytest
import torch

from kernels import benchmark


def test_forward_flops_counts_causal_pairs():
    # L=1: one pair; L=3: 6 pairs; each pair costs 2*Dqk + 2*Dv per head.
    assert benchmark.forward_flops([1, 3], heads=2, dim_qk=4, dim_v=8) == 7 * 2 * (8 + 16)


@pytest.mark.parametrize("distribution", ["uniform", "skewed"])
def test_sample_lengths_cover_tokens_and_respect_max(distribution):
    lengths = benchmark.sample_lengths(distribution, 512, 4096, torch.Generator().manual_seed(0))
    assert all(1 <= n <= 512 for n in lengths)
    assert sum(lengths) >= 4096 if distribution == "skewed" else lengths == [512] * 8


def test_run_without_gpu_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    parser = argparse.ArgumentParser()
    benchmark.add_arguments(parser)
    args = parser.parse_args(["--csv", str(tmp_path / "attention.csv")])
    assert benchmark.run(args) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "attention.csv").exists()


def test_append_rows_writes_header_once(tmp_path):
    path = tmp_path / "attention.csv"
    row = dict.fromkeys(benchmark.COLUMNS, "x")
    benchmark.append_rows(path, [row])
    benchmark.append_rows(path, [row])
    with path.open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == list(benchmark.COLUMNS) and len(rows) == 3
