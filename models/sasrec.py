"""SASRec (Kang & McAuley, 2018) as a pre-norm Transformer: the softmax-attention baseline.

Attention runs through torch's scaled_dot_product_attention (FlashAttention on GPU) on a
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


@dataclass(frozen=True, kw_only=True)
class SASRecConfig:
    num_items: int  # catalog size; ids 1..num_items, 0 is padding
    max_seq_len: int
    d_model: int = 64
    num_blocks: int = 2
    num_heads: int = 2
    ffn_mult: int = 4  # FFN hidden width = ffn_mult * d_model (the original SASRec uses 1)
    activation: str = "gelu"  # "gelu" | "relu"
    dropout: float = 0.2
    loss: LossConfig = field(default_factory=LossConfig)

    def to_dict(self) -> dict:
        return {"family": "sasrec", **asdict(self)}


class SASRecBlock(nn.Module):
    def __init__(self, config: SASRecConfig) -> None:
        super().__init__()
        d = config.d_model
        self.num_heads = config.num_heads
        self.attn_norm = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.attn_out = nn.Linear(d, d)
        self.ffn_norm = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, config.ffn_mult * d), ACTIVATIONS[config.activation](),
                                 nn.Linear(config.ffn_mult * d, d))
        self.dropout = nn.Dropout(config.dropout)

    def attention(self, x: torch.Tensor, batch: JaggedBatch) -> torch.Tensor:
        tokens, d = x.shape
        max_len = batch.max_length()
        qkv = jagged_to_padded(self.qkv(x), batch.offsets, max_len)  # [B, L, 3d]
        q, k, v = qkv.view(-1, max_len, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        # Right padding sits after every real key, so the causal mask alone hides it.
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, H, L, dh]
        out = padded_to_jagged(out.transpose(1, 2).reshape(-1, max_len, d), batch.offsets, tokens)
        return self.attn_out(out)

    def forward(self, x: torch.Tensor, batch: JaggedBatch) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.attn_norm(x), batch))
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
        self.final_norm = nn.LayerNorm(config.d_model)

    def encode(self, x: torch.Tensor, batch: JaggedBatch, prediction_times: torch.Tensor) -> torch.Tensor:
        del prediction_times  # no time input: SASRec sees item order only
        for block in self.blocks:
            x = block(x, batch)
        return self.final_norm(x)

    def resolved_kernel(self, device: torch.device | str) -> str:
        return "sdpa"
