"""HSTU attention on the CPU over tiles of real lengths: what `kernel="pytorch"` runs.

The padded reference (`hstu_attention_ref`) computes a [B, H, Lmax, Lmax] score matrix: on ML-1M
batches 2x to 5x the causal pairs the budget counts. Here a batch is cut into tiles instead:
- sequences are grouped by length (longest first; a group keeps those at least GROUP_RATIO of its
  longest), each group padded only to its own longest;
- a group's queries are cut into n = ceil(L / QUERY_BLOCK) equal blocks (L its longest), each block
  against the keys up to its own end, so the masked upper triangle is mostly not computed.
A length-L sequence then costs about L^2 (1/2 + 1/(2 n)) pairs instead of Lmax^2. The tiles' count is pure in the lengths (`plan_tiles`), so scaling.flops counts
exactly what runs. The math is the reference's: scores, biases, SiLU, causal mask and 1/max_seq_len;
padded keys are read (clamped to a real row) but never attended, being later than every real query.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

from kernels.hstu_attention import bias_lookup, time_bucket_index, validate_inputs

QUERY_BLOCK = 64  # queries per tile (measured on the 2-core CPU: benchmarks/train_throughput.md)
GROUP_RATIO = 0.6  # a group holds sequences at least this share of its longest


@dataclass(frozen=True)
class Tile:
    sequences: tuple[int, ...]  # batch indices of the group's sequences
    query_start: int  # positions [query_start, query_end) attend keys [0, query_end)
    query_end: int

    @property
    def pairs(self) -> int:
        """Query-key pairs the tile computes (per head)."""
        return len(self.sequences) * (self.query_end - self.query_start) * self.query_end


@lru_cache(maxsize=64)  # every layer of a step asks for the same lengths
def plan_tiles(lengths: tuple[int, ...]) -> tuple[Tile, ...]:
    """The tiles covering every real (query, key <= query) pair of sequences with these lengths."""
    order = sorted((i for i, n in enumerate(lengths) if n > 0), key=lambda i: -lengths[i])
    tiles: list[Tile] = []
    start = 0
    while start < len(order):
        longest = lengths[order[start]]
        end = start + 1
        while end < len(order) and lengths[order[end]] >= GROUP_RATIO * longest:
            end += 1
        group = tuple(sorted(order[start:end]))
        blocks = -(-longest // QUERY_BLOCK)  # equal blocks: fewer pairs than full ones and a short rest
        bounds = [round(longest * b / blocks) for b in range(blocks + 1)]
        tiles.extend(Tile(group, lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:]))
        start = end
    return tuple(tiles)


def executed_pairs(lengths: list[int]) -> int:
    """Query-key pairs (per head) the tiled attention computes for a batch of these lengths."""
    return sum(tile.pairs for tile in plan_tiles(tuple(lengths)))


def hstu_attention_tiled(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    seq_offsets: torch.Tensor,
    max_seq_len: int,
    *,
    timestamps: torch.Tensor | None = None,
    pos_bias: torch.Tensor | None = None,
    time_bias: torch.Tensor | None = None,
    alpha: float = 1.0,
    query_timestamps: torch.Tensor | None = None,
) -> torch.Tensor:
    """`hstu_attention_ref`'s result (same signature), computed tile by tile (module doc)."""
    validate_inputs(q, k, v, seq_offsets, max_seq_len, timestamps, pos_bias, time_bias, query_timestamps)
    num_tokens, num_heads, dim_v = v.shape
    if num_tokens == 0:
        return v.new_zeros(0, num_heads, dim_v) + 0 * (q.sum() + k.sum() + v.sum())  # keeps the graph
    lengths = seq_offsets.diff()
    qts = timestamps if query_timestamps is None else query_timestamps
    q = q * alpha
    parts, rows = [], []
    for tile in plan_tiles(tuple(lengths.tolist())):
        seqs = torch.tensor(tile.sequences, device=q.device)
        starts, seq_lengths = seq_offsets[seqs], lengths[seqs]
        key_pos = torch.arange(tile.query_end, device=q.device)
        query_pos = key_pos[tile.query_start:]
        key_token = (starts[:, None] + key_pos).clamp(max=num_tokens - 1)  # [n, Lk]
        query_token = key_token[:, tile.query_start:]  # [n, Lq]

        def gather(x: torch.Tensor, token: torch.Tensor) -> torch.Tensor:  # [T, H, D] -> [n, H, L, D]
            return x.index_select(0, token.flatten()).view(*token.shape, *x.shape[1:]).transpose(1, 2)

        scores = torch.matmul(gather(q, query_token), gather(k, key_token).transpose(-1, -2))  # [n, H, Lq, Lk]
        if pos_bias is not None:
            rel = (query_pos[:, None] - key_pos[None, :]).clamp(min=0)  # j > i is masked below
            scores += bias_lookup(pos_bias, rel, q.dtype)[None]  # [1, Hp, Lq, Lk]
        if time_bias is not None:
            gaps = qts[query_token][:, :, None] - timestamps[key_token][:, None, :]  # [n, Lq, Lk]
            buckets = time_bucket_index(gaps, time_bias.shape[1])
            scores += bias_lookup(time_bias, buckets, q.dtype).transpose(0, 1)  # [n, Ht, Lq, Lk]
        causal = (query_pos[:, None] >= key_pos[None, :]).to(q.dtype)
        attn = F.silu(scores) * (causal / max_seq_len)
        out = torch.matmul(attn, gather(v, key_token)).transpose(1, 2)  # [n, Lq, H, Dv]
        real = query_pos[None, :] < seq_lengths[:, None]  # [n, Lq]
        keep = real.flatten().nonzero().squeeze(1)
        parts.append(out.flatten(0, 1).index_select(0, keep))
        rows.append(query_token.flatten()[keep])
    # Each real token is a query of exactly one tile: put the rows back in token order.
    return torch.cat(parts).index_select(0, torch.cat(rows).argsort())
