"""Analytic training FLOPs against torch's FlopCounterMode and against hand counts."""
from __future__ import annotations

import random

import pytest
import torch

from models.losses import NEGATIVES_PER, LossConfig
from models.presets import build_model
from scaling.errors import GrscaleError
from scaling.flops import reference_flop_counter, training_flops
from tests.models.helpers import make_batch

NUM_ITEMS, NUM_USERS = 50, 8


def random_model(family: str, rng: random.Random):
    loss = LossConfig(num_negatives=rng.choice([1, 7, 32]), negatives_per=rng.choice(NEGATIVES_PER))
    if family == "hstu":
        return build_model("hstu", "xs", NUM_ITEMS, NUM_USERS, 16, d_model=rng.choice([8, 12, 20]),
                           num_blocks=rng.randint(1, 3), num_heads=rng.randint(1, 3), dqk=rng.randint(2, 9),
                           dv=rng.randint(2, 9), bias_per_head=rng.random() < 0.5, kernel="pytorch", loss=loss)
    if family == "sasrec":
        heads = rng.randint(1, 3)
        return build_model("sasrec", "xs", NUM_ITEMS, NUM_USERS, 16, d_model=heads * rng.randint(2, 7),
                           num_heads=heads, num_blocks=rng.randint(1, 3), ffn_mult=rng.randint(1, 4),
                           activation=rng.choice(["gelu", "relu"]), layout=rng.choice(["pre-norm", "original"]),
                           loss=loss)
    return build_model("dlrm", "xs", NUM_ITEMS, NUM_USERS, 16, emb_dim=rng.choice([4, 8, 12]),
                       history_window=rng.randint(1, 6), bottom_mlp=(rng.randint(3, 17),) * rng.randint(0, 2),
                       top_mlp=(rng.randint(3, 17),) * rng.randint(0, 3), tower_mlp=(rng.randint(3, 17),),
                       num_cross_layers=rng.choice([0, 0, 1, 2]), loss=loss)


@pytest.mark.parametrize("family", ["hstu", "sasrec", "dlrm"])
@pytest.mark.parametrize("task", ["retrieval", "ranking"])
@pytest.mark.parametrize("seed", range(4))
def test_executed_flops_equal_what_the_reference_runs(family, task, seed):
    rng = random.Random(f"{family}-{task}-{seed}")
    model = random_model(family, rng)
    # Lmax >= 2: with one-token sequences einsum lowers Q K^T to an elementwise product,
    # which the counter does not see (the analytic count still counts it).
    lengths = [rng.randint(2, 16)] + [rng.randint(1, 16) for _ in range(rng.randint(0, 5))]
    batch = make_batch(lengths, NUM_ITEMS, seed=seed, num_users=NUM_USERS)
    with reference_flop_counter() as counter:
        loss, _ = model.training_loss(batch, task, torch.Generator().manual_seed(seed))
        loss.backward()
    counted = counter.get_total_flops()
    assert counted > 0
    flops = training_flops(model.config, task, lengths)
    assert flops.executed == pytest.approx(counted, rel=1e-9)
    assert flops.useful <= flops.executed


def test_hstu_by_hand():
    model = build_model("hstu", "xs", NUM_ITEMS, 1, 8, d_model=4, num_blocks=1, num_heads=1, dqk=2, dv=2,
                        loss=LossConfig(num_negatives=2))
    flops = training_flops(model.config, "retrieval", [3, 1])
    # Forward: uvqk 2*4*4*8 = 256, output 2*4*2*4 = 64, loss 2 predictions * 2*4*(1+2) = 48
    # useful; executed: positives 2*2*4 = 16 + negatives padded [2 seqs, 2 rows] x 2 -> 2*8*4 = 64;
    # attention (2+2)*2 = 8 per pair: causal pairs 6+1 = 7 -> 56; executed over tiles of real length
    # (1 < 0.6 * 3: two groups, each one block) 3*3 + 1*1 = 10 -> 80, where padding would run 2*3*3 = 18.
    assert flops.useful == 3 * (256 + 64 + 48 + 56)
    assert flops.executed == 3 * (256 + 64 + 80 + 80)
    # Rows: 4 items + 4 positions + 2 positives + 2 sequences x 2 negatives, of 4 floats, fwd and bwd.
    assert flops.embedding_bytes == 2 * 14 * 4 * 4


def test_sasrec_by_hand():
    model = build_model("sasrec", "xs", NUM_ITEMS, 1, 8, d_model=4, num_blocks=1, num_heads=2, ffn_mult=1)
    flops = training_flops(model.config, "ranking", [2, 2])
    # Forward: qkv 2*4*4*12 = 384, out 2*4*4*4 = 128, ffn 2 * 128, head 128 + 2*4*4 = 160;
    # attention 2*2*4 = 16 per pair: causal 3+3 = 6 -> 96; padded 2*2*2 = 8 -> 128, backward 2.5x.
    dense = 3 * (384 + 128 + 256 + 160)
    assert flops.useful == dense + 3 * 96
    assert flops.executed == dense + 3.5 * 128


def test_dlrm_by_hand():
    model = build_model("dlrm", "xs", NUM_ITEMS, 1, 8, emb_dim=2, bottom_mlp=(), top_mlp=(),
                        history_window=2)
    flops = training_flops(model.config, "ranking", [4])
    # 3 examples. Bottom 2->2: 2*3*2*2 = 24 forward, weight gradient only (x2);
    # interaction [6,2]x[2,6]: 2*3*36*2 = 432; top (2+15)->1: 2*3*17 = 102.
    assert flops.useful == flops.executed == 2 * 24 + 3 * (432 + 102)
    # Rows: user, item, hour, day per example (12) + pooled windows 1+2+2 = 5, 2 floats each.
    assert flops.embedding_bytes == 2 * 17 * 2 * 4


def test_lengths_as_tensor_or_list_agree_and_bad_task_raises():
    config = build_model("hstu", "xs", NUM_ITEMS, 1, 8).config
    assert training_flops(config, "ranking", torch.tensor([3, 5])) == training_flops(config, "ranking", [3, 5])
    with pytest.raises(GrscaleError, match="unknown task"):
        training_flops(config, "clicks", [3])
