"""SASRec (Kang & McAuley, 2018): the softmax-attention baseline.

Two block layouts. "pre-norm" (default) is the standard pre-norm Transformer. "original" is
Kang & McAuley's block as the HSTU paper's code runs it for its SASRec baseline: queries from
LayerNorm(x) (no affine), keys and values from x, attention dropout, LayerNorm(queries + attention)
into a residual FFN, Xavier-normal weights, no final LayerNorm. Both have the same projections and
useful FLOPs. Attention runs through torch's scaled_dot_product_attention (FlashAttention on GPU) on a
right-padded view; everything else stays jagged so padding costs only attention FLOPs.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from models.jagged import jagged_to_padded, padded_to_jagged
from models.losses import LossConfig
from models.sequential import SequentialRecommender
from scaling.data.batch import JaggedBatch
from scaling.errors import GrscaleError

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}
LAYOUTS = ("pre-norm", "original")
ORIGINAL_LN_EPS = 1e-8  # the HSTU paper's SASRec


@dataclass(frozen=True, kw_only=True)
class SASRecConfig:
    num_items: int  # catalog size; ids 1..num_items, 0 is padding
    max_seq_len: int
    d_model: int = 64
    num_blocks: int = 2
    num_heads: int = 2
    ffn_mult: int = 4  # FFN hidden width = ffn_mult * d_model (the original SASRec uses 1)
    activation: str = "gelu"  # "gelu" | "relu"
    layout: str = "pre-norm"  # "pre-norm" | "original" (the HSTU paper's SASRec block)
    dropout: float = 0.2
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise GrscaleError(f"unknown SASRec layout {self.layout!r}; known: {', '.join(LAYOUTS)}")

    def to_dict(self) -> dict:
        return {"family": "sasrec", **asdict(self)}


class SASRecBlock(nn.Module):
    def __init__(self, config: SASRecConfig) -> None:
        super().__init__()
        d = config.d_model
        self.num_heads = config.num_heads
        self.original = config.layout == "original"
        self.attention_dropout = config.dropout if self.original else 0.0
        # The original layout's LayerNorms have no affine parameters (F.layer_norm in forward).
        self.attn_norm = None if self.original else nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.attn_out = nn.Linear(d, d)
        self.ffn_norm = None if self.original else nn.LayerNorm(d)
        hidden = config.ffn_mult * d
        # Kang & McAuley's point-wise FFN drops out inside too.
        inner_dropout = [nn.Dropout(config.dropout)] if self.original else []
        self.ffn = nn.Sequential(nn.Linear(d, hidden), ACTIVATIONS[config.activation](), *inner_dropout,
                                 nn.Linear(hidden, d))
        self.dropout = nn.Dropout(config.dropout)
        if self.original:
            for weight in (self.qkv.weight, self.attn_out.weight, self.ffn[0].weight, self.ffn[-1].weight):
                nn.init.xavier_normal_(weight)
            nn.init.zeros_(self.qkv.bias)
            nn.init.zeros_(self.attn_out.bias)

    def attention(self, queries: torch.Tensor, keys: torch.Tensor, batch: JaggedBatch) -> torch.Tensor:
        tokens, d = queries.shape
        max_len = batch.max_length()
        if queries is keys:
            qkv = self.qkv(queries)
        else:
            qkv = torch.cat([F.linear(queries, self.qkv.weight[:d], self.qkv.bias[:d]),
                             F.linear(keys, self.qkv.weight[d:], self.qkv.bias[d:])], dim=-1)
        qkv = jagged_to_padded(qkv, batch.offsets, max_len)  # [B, L, 3d]
        q, k, v = qkv.view(-1, max_len, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        # Right padding sits after every real key, so the causal mask alone hides it.
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True,  # [B, H, L, dh]
                                             dropout_p=self.attention_dropout if self.training else 0.0)
        out = padded_to_jagged(out.transpose(1, 2).reshape(-1, max_len, d), batch.offsets, tokens)
        return self.attn_out(out)

    def forward(self, x: torch.Tensor, batch: JaggedBatch) -> torch.Tensor:
        if self.original:
            queries = F.layer_norm(x, x.shape[-1:], eps=ORIGINAL_LN_EPS)
            x = F.layer_norm(queries + self.attention(queries, x, batch), x.shape[-1:], eps=ORIGINAL_LN_EPS)
            return x + self.dropout(self.ffn(x))
        normed = self.attn_norm(x)
        x = x + self.dropout(self.attention(normed, normed, batch))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class SASRec(SequentialRecommender):
    def __init__(self, config: SASRecConfig) -> None:
        if config.activation not in ACTIVATIONS:
            raise GrscaleError(f"unknown activation {config.activation!r}; known: {', '.join(ACTIVATIONS)}")
        if config.d_model % config.num_heads:
            raise GrscaleError(f"d_model={config.d_model} is not divisible by num_heads={config.num_heads}")
        super().__init__(num_items=config.num_items, max_seq_len=config.max_seq_len,
                         d_model=config.d_model, dropout=config.dropout, loss=config.loss)
        self.config = config
        self.blocks = nn.ModuleList(SASRecBlock(config) for _ in range(config.num_blocks))
        self.final_norm = nn.LayerNorm(config.d_model) if config.layout == "pre-norm" else nn.Identity()

    def encode(self, x: torch.Tensor, batch: JaggedBatch, prediction_times: torch.Tensor) -> torch.Tensor:
        del prediction_times  # no time input: SASRec sees item order only
        for block in self.blocks:
            x = block(x, batch)
        return self.final_norm(x)

    def resolved_kernel(self, device: torch.device | str) -> str:
        return "sdpa"
