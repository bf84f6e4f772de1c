"""HSTU, the research variant of "Actions Speak Louder than Words" (Zhai et al., 2024).

Per block: U, V, Q, K = split(SiLU(Linear(LayerNorm(X))));
A V = SiLU(alpha Q K^T + rab_pos + rab_time) / n V (causal, jagged, via kernels.hstu_attention);
Y = X + f2(Dropout(U * LayerNorm(A V))).
rab_time buckets the gap between a query's time and each key's: the query's own interaction time
(`query_time="own"`), or the time of the interaction it predicts (`"target"`, as the HSTU paper's
code does: in retrieval, when the next interaction happens, i.e. when the request is served).
`parameterization="paper"` builds the block's parameters as the paper's code does: LayerNorms
without affine parameters (eps 1e-6), the U/V/Q/K projection without bias drawn from N(0, 0.02),
the output projection Xavier-uniform, the relative-bias tables N(0, 0.02); "grscale" keeps
torch's defaults (affine LayerNorms, eps 1e-5; a biased U/V/Q/K projection) and zero bias tables.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from kernels.hstu_attention import hstu_attention, resolve_kernel
from models.losses import LossConfig
from models.sequential import SequentialRecommender
from scaling.data.batch import JaggedBatch
from scaling.errors import GrscaleError

QUERY_TIMES = ("own", "target")
PARAMETERIZATIONS = ("grscale", "paper")


@dataclass(frozen=True, kw_only=True)
class HSTUConfig:
    num_items: int  # catalog size; ids 1..num_items, 0 is padding
    max_seq_len: int  # longest sequence the model accepts (position tables are this long)
    d_model: int = 64
    num_blocks: int = 2
    num_heads: int = 2
    dqk: int = 32  # query/key width per head
    dv: int = 32  # value (and U) width per head
    dropout: float = 0.2
    num_time_buckets: int = 128  # log-bucketed gaps; 128 covers any gap in seconds
    bias_per_head: bool = False  # the paper shares one rab scalar across heads
    query_time: str = "own"  # rab_time from the query's own time or its target's ("target": the paper's code)
    qk_scale: float | None = None  # alpha; None = 1/sqrt(dqk). The paper's code uses 1 (no scaling)
    parameterization: str = "grscale"  # "grscale" | "paper": norms, projection bias and init (module docstring)
    kernel: str = "auto"  # "auto" | "pytorch" | "triton", passed to hstu_attention
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        if self.query_time not in QUERY_TIMES:
            raise GrscaleError(f"unknown query_time {self.query_time!r}; known: {', '.join(QUERY_TIMES)}")
        if self.parameterization not in PARAMETERIZATIONS:
            raise GrscaleError(f"unknown HSTU parameterization {self.parameterization!r}; "
                               f"known: {', '.join(PARAMETERIZATIONS)}")

    def to_dict(self) -> dict:
        return {"family": "hstu", **asdict(self)}


class HSTUBlock(nn.Module):
    def __init__(self, config: HSTUConfig) -> None:
        super().__init__()
        heads, self.config = config.num_heads, config
        self.split_sizes = [heads * config.dv, heads * config.dv, heads * config.dqk, heads * config.dqk]
        paper = config.parameterization == "paper"
        eps = 1e-6 if paper else 1e-5
        self.input_norm = nn.LayerNorm(config.d_model, eps=eps, elementwise_affine=not paper)
        self.uvqk = nn.Linear(config.d_model, sum(self.split_sizes), bias=not paper)
        self.attn_norm = nn.LayerNorm(heads * config.dv, eps=eps, elementwise_affine=not paper)
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(heads * config.dv, config.d_model)
        bias_heads = heads if config.bias_per_head else 1
        # Relative attention bias: one scalar per relative offset i-j and per time-gap bucket.
        self.pos_bias = nn.Parameter(torch.zeros(bias_heads, config.max_seq_len))
        self.time_bias = nn.Parameter(torch.zeros(bias_heads, config.num_time_buckets))
        if paper:
            nn.init.normal_(self.uvqk.weight, std=0.02)
            nn.init.xavier_uniform_(self.output.weight)
            nn.init.normal_(self.pos_bias, std=0.02)
            nn.init.normal_(self.time_bias, std=0.02)
        self.alpha = config.dqk ** -0.5 if config.qk_scale is None else config.qk_scale

    def forward(self, x: torch.Tensor, batch: JaggedBatch, prediction_times: torch.Tensor) -> torch.Tensor:
        c = self.config
        u, v, q, k = F.silu(self.uvqk(self.input_norm(x))).split(self.split_sizes, dim=-1)
        attended = hstu_attention(
            q.reshape(-1, c.num_heads, c.dqk), k.reshape(-1, c.num_heads, c.dqk),
            v.reshape(-1, c.num_heads, c.dv), batch.offsets, c.max_seq_len,
            timestamps=batch.timestamps, pos_bias=self.pos_bias, time_bias=self.time_bias,
            alpha=self.alpha, query_timestamps=prediction_times if c.query_time == "target" else None,
            kernel=c.kernel)
        gated = u * self.attn_norm(attended.reshape(x.shape[0], -1))
        return x + self.output(self.dropout(gated))


class HSTU(SequentialRecommender):
    def __init__(self, config: HSTUConfig) -> None:
        super().__init__(num_items=config.num_items, max_seq_len=config.max_seq_len,
                         d_model=config.d_model, dropout=config.dropout, loss=config.loss)
        self.config = config
        self.blocks = nn.ModuleList(HSTUBlock(config) for _ in range(config.num_blocks))

    def encode(self, x: torch.Tensor, batch: JaggedBatch, prediction_times: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, batch, prediction_times)
        return x

    def resolved_kernel(self, device: torch.device | str) -> str:
        return resolve_kernel(self.config.kernel, torch.device(device))
