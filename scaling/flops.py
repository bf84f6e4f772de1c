"""Analytic training FLOPs per batch for every model family and task.

Conventions:
- A matmul [m, k] x [k, n] costs 2mkn FLOPs forward; backward costs 2x forward (the input and
  the weight gradient), except where one operand needs no gradient (DLRM's first bottom-MLP
  layer reads raw dense features: only the weight gradient, 1x). Training = forward + backward.
- Only matmuls count: norms, activations, softmax, biases, the elementwise DCNv2 product and
  the attention bias adds are left out, as FlopCounterMode leaves them out.
- Attention "useful" FLOPs count each sequence's causal pairs, L(L+1)/2 per head (diagonal
  included), forward + 2x backward. "executed" counts what the CPU path computes: for HSTU, the
  pairs of its tiles of real lengths (kernels.hstu_attention_tiles); for SASRec's SDPA, the full
  B x Lmax x Lmax score matrix, whose backward recomputes the scores
  (FlashAttention style, as torch's FLOP formula counts it): 2.5x forward, except with attention
  dropout (SASRec's original layout), which the CPU runs on SDPA's math path: 2x forward.
  Everything outside attention is the same in both: it runs on the jagged tokens.
- Embedding lookups cost 0 FLOPs; `embedding_bytes` reports the rows they move instead:
  gathered in forward plus the same bytes of gradient scattered in backward (the optimizer's
  update of the tables is not included).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from kernels.hstu_attention_tiles import executed_pairs
from models.base import check_task
from models.dlrm import NUM_VECTORS, DLRMConfig
from models.hstu import HSTUConfig
from models.losses import LossConfig
from models.sasrec import SASRecConfig
from scaling.errors import GrscaleError

TRAIN_FACTOR = 3.0  # forward + backward (2x forward)
SDPA_EXECUTED_FACTOR = 3.5  # forward + recomputing backward (2.5x forward)


@dataclass(frozen=True)
class FlopCount:
    useful: float  # causal jagged attention + everything else
    executed: float  # padded attention as the reference runs it + everything else
    embedding_bytes: float  # table rows gathered (forward) and their gradients (backward)

    def to_dict(self) -> dict:
        return asdict(self)


def _mlp_flops(rows: int, dims: list[int]) -> float:
    """Forward FLOPs of consecutive Linear layers dims[0] -> dims[1] -> ... over `rows` rows."""
    return sum(2.0 * rows * a * b for a, b in zip(dims[:-1], dims[1:]))


def _negative_draws(lengths: list[int], loss: LossConfig) -> int:
    """Rows of negatives sampled per step: K per sequence, or K per prediction."""
    groups = len(lengths) if loss.negatives_per == "sequence" else sum(max(n - 1, 0) for n in lengths)
    return groups * loss.num_negatives


def _softmax_logit_flops(d: int, lengths: list[int], loss: LossConfig) -> tuple[float, float]:
    """(useful, executed) forward FLOPs of the sampled-softmax logits.

    Each prediction scores its positive and its group's K negatives; the negatives' logits run
    as one batched matmul over each group's predictions padded to the largest group (a
    sequence, or a single prediction with nothing to pad).
    """
    predictions = [max(n - 1, 0) for n in lengths]
    useful = 2.0 * sum(predictions) * d * (1 + loss.num_negatives)
    if loss.negatives_per == "sequence":
        padded = len(lengths) * max(predictions, default=0) * loss.num_negatives
    else:
        padded = sum(predictions) * loss.num_negatives
    return useful, 2.0 * sum(predictions) * d + 2.0 * padded * d


def _sequence_head_flops(d: int, lengths: list[int], task: str,
                         loss: LossConfig) -> tuple[float, float, int]:
    """(useful, executed forward FLOPs, embedding rows) of the retrieval loss or ranking head."""
    tokens = sum(lengths)
    if task == "ranking":
        flops = _mlp_flops(tokens, [d, d, 1])
        return flops, flops, 0
    useful, executed = _softmax_logit_flops(d, lengths, loss)
    return useful, executed, sum(max(n - 1, 0) for n in lengths) + _negative_draws(lengths, loss)


def _attention_pairs(lengths: list[int]) -> tuple[float, float]:
    """(causal pairs over the jagged sequences, padded B x Lmax^2 pairs)."""
    causal = sum(n * (n + 1) / 2 for n in lengths)
    padded = len(lengths) * max(lengths) ** 2 if lengths and max(lengths) > 0 else 0
    return causal, float(padded)


def _hstu(c: HSTUConfig, task: str, lengths: list[int]) -> tuple[float, float, float]:
    tokens, h = sum(lengths), c.num_heads
    per_block = (_mlp_flops(tokens, [c.d_model, 2 * h * (c.dqk + c.dv)])  # U, V, Q, K
                 + _mlp_flops(tokens, [h * c.dv, c.d_model]))
    causal, tiled = _attention_pairs(lengths)[0], executed_pairs(lengths)
    attn_per_pair = 2.0 * h * (c.dqk + c.dv)  # Q K^T and A V
    head, head_executed, head_rows = _sequence_head_flops(c.d_model, lengths, task, c.loss)
    dense = TRAIN_FACTOR * c.num_blocks * per_block
    useful = dense + TRAIN_FACTOR * (head + c.num_blocks * attn_per_pair * causal)
    executed = dense + TRAIN_FACTOR * (head_executed + c.num_blocks * attn_per_pair * tiled)
    rows = tokens * (3 if task == "ranking" else 2) + head_rows  # item, position (, action)
    return useful, executed, rows * c.d_model


def _sasrec(c: SASRecConfig, task: str, lengths: list[int]) -> tuple[float, float, float]:
    tokens, d = sum(lengths), c.d_model
    per_block = (_mlp_flops(tokens, [d, 3 * d]) + _mlp_flops(tokens, [d, d])
                 + _mlp_flops(tokens, [d, c.ffn_mult * d, d]))
    causal, padded = _attention_pairs(lengths)
    attn_per_pair = 2.0 * 2 * d  # Q K^T and A V, summed over heads
    head, head_executed, head_rows = _sequence_head_flops(d, lengths, task, c.loss)
    dense = TRAIN_FACTOR * c.num_blocks * per_block
    useful = dense + TRAIN_FACTOR * head + TRAIN_FACTOR * c.num_blocks * attn_per_pair * causal
    attention_factor = TRAIN_FACTOR if c.layout == "original" and c.dropout > 0 else SDPA_EXECUTED_FACTOR
    executed = dense + TRAIN_FACTOR * head_executed + attention_factor * c.num_blocks * attn_per_pair * padded
    rows = tokens * (3 if task == "ranking" else 2) + head_rows
    return useful, executed, rows * d


def _pooled_rows(length: int, window: int) -> int:
    """sum over t = 1..length-1 of min(t, window): the history rows pooled for one sequence."""
    ramp = min(max(length - 1, 0), window)
    return ramp * (ramp + 1) // 2 + (max(length - 1, 0) - ramp) * window


def _dlrm(c: DLRMConfig, task: str, lengths: list[int]) -> tuple[float, float, float]:
    d = c.emb_dim
    examples = sum(max(n - 1, 0) for n in lengths)
    pooled = sum(_pooled_rows(n, c.history_window) for n in lengths)
    bottom = [2, *c.bottom_mlp, d]
    # The first bottom layer's input is data: its backward computes the weight gradient only.
    flops = 2.0 * _mlp_flops(examples, bottom[:2]) + TRAIN_FACTOR * _mlp_flops(examples, bottom[1:])
    if task == "ranking":
        if c.num_cross_layers:
            flops += TRAIN_FACTOR * c.num_cross_layers * _mlp_flops(examples, [NUM_VECTORS * d] * 2)
        else:
            flops += TRAIN_FACTOR * 2.0 * examples * NUM_VECTORS * NUM_VECTORS * d  # [6, d] x [d, 6]
        flops += TRAIN_FACTOR * _mlp_flops(examples, [c.top_input_dim, *c.top_mlp, 1])
        return flops, flops, (4 * examples + pooled) * d  # user, target item, hour, day + history
    negatives = _negative_draws(lengths, c.loss)
    flops += TRAIN_FACTOR * (_mlp_flops(examples, [(NUM_VECTORS - 1) * d, *c.tower_mlp, d])
                             + _mlp_flops(examples + negatives, [d, *c.tower_mlp, d]))
    logits_useful, logits_executed = _softmax_logit_flops(d, lengths, c.loss)
    rows = 4 * examples + negatives + pooled  # user, hour, day, positive item, negatives + history
    return (flops + TRAIN_FACTOR * logits_useful, flops + TRAIN_FACTOR * logits_executed, rows * d)


def training_flops(config: HSTUConfig | SASRecConfig | DLRMConfig, task: str,
                   lengths: torch.Tensor | list[int], *, bytes_per_element: int = 4) -> FlopCount:
    """FLOPs of one `training_loss` forward + backward on a batch of sequences with `lengths`.

    The number of negatives comes from `config.loss`; `bytes_per_element` is the embedding
    tables' dtype size (4 for float32 weights).
    """
    check_task(task)
    lengths = [int(n) for n in (lengths.tolist() if isinstance(lengths, torch.Tensor) else lengths)]
    counters = {HSTUConfig: _hstu, SASRecConfig: _sasrec, DLRMConfig: _dlrm}
    if type(config) not in counters:
        raise GrscaleError(f"no FLOP formula for {type(config).__name__}")
    useful, executed, elements = counters[type(config)](config, task, lengths)
    return FlopCount(useful=useful, executed=executed, embedding_bytes=2.0 * elements * bytes_per_element)


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_sdpa_backward_flop(grad_out_shape, query_shape, key_shape, value_shape, *args,
                            out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def reference_flop_counter() -> FlopCounterMode:
    """FlopCounterMode that also counts SDPA's CPU kernel, which torch's table leaves at 0,
    with the formulas torch uses for its CUDA kernels."""
    aten = torch.ops.aten
    return FlopCounterMode(display=False, custom_mapping={
        aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flop,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward_flop,
    })


def evaluation_flops(config: HSTUConfig | SASRecConfig | DLRMConfig, task: str, history_length: float,
                     catalog: int, eval_batch_size: int) -> float:
    """Modelled forward FLOPs to evaluate one user (scaling.eval_budget sizes validation with it).

    The query: a training forward (1/3 of training_flops) over one sequence of the history's length
    plus the target (DLRM: one example); retrieval then scores the whole catalog (2 d FLOPs per item),
    and DLRM's two-tower also runs its item tower over the catalog once per eval batch. A model, not a
    count: what evaluation costs per FLOP is calibrated apart (scaling.eval_budget.EVAL_COST).
    """
    length = 2 if isinstance(config, DLRMConfig) else max(2, round(history_length) + 1)
    query = training_flops(config, task, [length]).useful / TRAIN_FACTOR
    if task == "ranking":
        return query
    if isinstance(config, DLRMConfig):
        tower = _mlp_flops(catalog, [config.emb_dim, *config.tower_mlp, config.emb_dim])
        return query + 2.0 * config.emb_dim * catalog + tower / eval_batch_size
    return query + 2.0 * config.d_model * catalog
