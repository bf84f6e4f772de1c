"""Presets, the factory, parameter counts and the errors for unknown names."""
from __future__ import annotations

import pytest
import torch

from models.base import param_counts
from models.presets import PRESETS, build_model, list_presets
from scaling.errors import GrscaleError

SIZES = ["xxs", "xs", "s", "m", "l", "xl"]


@pytest.mark.parametrize("family", ["hstu", "sasrec", "dlrm"])
def test_param_counts_add_up_to_all_parameters(family):
    model = build_model(family, "s", 100, 10, 20)
    embedding, nonembedding = param_counts(model)
    assert embedding + nonembedding == sum(p.numel() for p in model.parameters())
    tables = [m for m in model.modules() if isinstance(m, (torch.nn.Embedding, torch.nn.EmbeddingBag))]
    assert embedding == sum(t.weight.numel() for t in tables)
    for task in ("retrieval", "ranking"):
        task_embedding, task_nonembedding = param_counts(model, task)
        assert task_embedding <= embedding and 0 < task_nonembedding <= nonembedding


def test_hstu_counts_by_hand():
    d, items, max_len = 8, 10, 6
    model = build_model("hstu", "xs", items, 1, max_len, d_model=d, num_heads=2, dqk=3, dv=5,
                        num_blocks=1, num_time_buckets=7)
    embedding, nonembedding = param_counts(model, "retrieval")
    assert embedding == (items + 1) * d + max_len * d  # items, positions
    block = 2 * d + d * 32 + 32 + 2 * 10 + 10 * d + d + max_len + 7  # norm, uvqk, norm, out, rab
    assert nonembedding == block
    # Ranking adds the previous-action table and the MLP head.
    assert param_counts(model, "ranking") == (embedding + 3 * d, block + d * d + d + d + 1)


@pytest.mark.parametrize("family", ["hstu", "sasrec", "dlrm"])
@pytest.mark.parametrize("task", ["retrieval", "ranking"])
def test_sizes_grow_and_span_two_orders_of_magnitude(family, task):
    rows = {r.name: r for r in list_presets(num_items=1000, num_users=100, max_seq_len=200, task=task)}
    counts = [rows[f"{family}-{size}"].nonembedding_params for size in SIZES]
    assert counts == sorted(counts) and counts[-1] >= 100 * counts[0]


def test_dlrm_ladder_extends_below_xxs():
    rows = {r.name: r for r in list_presets(num_items=3706, num_users=6040, max_seq_len=50, task="retrieval")}
    assert rows["dlrm-xxxs"].nonembedding_params * 3 < rows["dlrm-xxs"].nonembedding_params


def test_paper_ml1m_presets():
    assert {"hstu-ml1m", "hstu-large-ml1m", "sasrec-ml1m"} <= set(PRESETS)
    large = build_model("hstu", "large-ml1m", 3706, 6040, 200).config
    assert (large.d_model, large.num_blocks, large.num_heads, large.dqk, large.dv) == (50, 8, 2, 25, 25)


def test_overrides_replace_config_fields():
    model = build_model("sasrec", "xs", 100, 10, 20, num_blocks=3, dropout=0.0)
    assert model.config.num_blocks == 3 and len(model.blocks) == 3
    assert model.config.to_dict()["family"] == "sasrec"


def test_unknown_names_raise_naming_the_known_ones():
    with pytest.raises(GrscaleError, match="hstu, sasrec, dlrm"):
        build_model("bert4rec", "xs", 10, 1, 5)
    with pytest.raises(GrscaleError, match="xs, s, m, l, xl"):
        build_model("dlrm", "xxl", 10, 1, 5)
    with pytest.raises(GrscaleError, match="bad override"):
        build_model("dlrm", "xs", 10, 1, 5, num_blocks=2)
    model = build_model("hstu", "xs", 10, 1, 5)
    with pytest.raises(GrscaleError, match="retrieval, ranking"):
        model.training_loss(None, "regression", None)
