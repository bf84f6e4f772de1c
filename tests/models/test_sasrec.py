"""SASRec's two block layouts against their formulas, written with torch's own MultiheadAttention."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.presets import build_model
from scaling.errors import GrscaleError
from tests.models.helpers import make_batch, randomize

NUM_ITEMS, MAX_LEN, LENGTH = 40, 12, 7


def multihead_attention(block, d: int, heads: int) -> nn.MultiheadAttention:
    """torch's MultiheadAttention holding the block's projections (the HSTU paper's SASRec uses it)."""
    mha = nn.MultiheadAttention(d, heads, batch_first=True).double()
    with torch.no_grad():
        mha.in_proj_weight.copy_(block.qkv.weight)
        mha.in_proj_bias.copy_(block.qkv.bias)
        mha.out_proj.weight.copy_(block.attn_out.weight)
        mha.out_proj.bias.copy_(block.attn_out.bias)
    return mha.eval()


@pytest.mark.parametrize("layout", ["pre-norm", "original"])
def test_block_matches_its_formula(layout):
    heads = 2
    model = build_model("sasrec", "xs", NUM_ITEMS, 8, MAX_LEN, num_heads=heads, layout=layout,
                        dropout=0.0).double()
    randomize(model)
    model.eval()
    block, d = model.blocks[0], model.config.d_model
    batch = make_batch([LENGTH], NUM_ITEMS, seed=2)
    x = torch.randn(LENGTH, d, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    mha = multihead_attention(block, d, heads)
    future = torch.triu(torch.ones(LENGTH, LENGTH, dtype=torch.bool), diagonal=1)
    with torch.no_grad():
        if layout == "original":
            # The paper's code: Q = LN(x); h = LN(Q + MHA(Q, x, x)); y = h + FFN(h); LN without affine.
            q = F.layer_norm(x, (d,), eps=1e-8)
            attended, _ = mha(q[None], x[None], x[None], attn_mask=future, need_weights=False)
            h = F.layer_norm(q + attended[0], (d,), eps=1e-8)
            expected = h + block.ffn(h)
        else:
            # Pre-norm: h = x + MHA(LN(x)); y = h + FFN(LN(h)).
            normed = block.attn_norm(x)[None]
            attended, _ = mha(normed, normed, normed, attn_mask=future, need_weights=False)
            h = x + attended[0]
            expected = h + block.ffn(block.ffn_norm(h))
        torch.testing.assert_close(block(x, batch), expected)


def test_original_layout_has_the_papers_parameters():
    pre_norm = build_model("sasrec", "xs", NUM_ITEMS, 8, MAX_LEN, num_blocks=2)
    original = build_model("sasrec", "xs", NUM_ITEMS, 8, MAX_LEN, num_blocks=2, layout="original")
    d = original.config.d_model
    # No LayerNorm parameters (2 per block and the final one); the projections alike.
    norms = {name for name, _ in pre_norm.named_parameters() if "norm" in name}
    assert len(norms) == 2 * (2 * 2 + 1) and not any("norm" in name for name, _ in original.named_parameters())
    shapes = sorted(tuple(p.shape) for name, p in pre_norm.named_parameters() if name not in norms)
    assert sorted(tuple(p.shape) for p in original.parameters()) == shapes
    block = original.blocks[0]
    assert not block.qkv.bias.any() and not block.attn_out.bias.any()
    # Xavier normal: std sqrt(2 / (fan_in + fan_out)); 3d x d for the input projection.
    assert block.qkv.weight.std().item() == pytest.approx((2 / (4 * d)) ** 0.5, rel=0.15)


def test_original_layout_drops_out_attention_weights_in_training_only():
    model = build_model("sasrec", "xs", NUM_ITEMS, 8, MAX_LEN, layout="original", dropout=0.5)
    batch = make_batch([LENGTH], NUM_ITEMS)
    block = model.blocks[0]
    x = torch.randn(LENGTH, model.config.d_model, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        block.train()
        torch.manual_seed(0)
        first = block.attention(x, x, batch)
        second = block.attention(x, x, batch)
        block.eval()
        torch.testing.assert_close(block.attention(x, x, batch), block.attention(x, x, batch))
    assert not torch.allclose(first, second)


def test_unknown_layout_fails():
    with pytest.raises(GrscaleError, match="layout 'post-norm'.*pre-norm, original"):
        build_model("sasrec", "xs", NUM_ITEMS, 8, MAX_LEN, layout="post-norm")
