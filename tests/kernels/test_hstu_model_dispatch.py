"""HSTU trains through the dispatcher unchanged: the Triton path (interpreted on the CPU) gives
the reference path's loss and gradients, with the same state_dict keys."""
import torch

from models.presets import build_model
from scaling.data.batch import JaggedBatch


def tiny_batch() -> JaggedBatch:
    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([5, 1, 9, 3])
    total = int(lengths.sum())
    offsets = torch.zeros(5, dtype=torch.int64)
    offsets[1:] = torch.cumsum(lengths, 0)
    return JaggedBatch(
        item_ids=torch.randint(1, 31, (total,), generator=gen),
        timestamps=torch.cumsum(torch.randint(1, 5000, (total,), generator=gen), 0),
        labels=torch.randint(0, 2, (total,), generator=gen).float(),
        offsets=offsets,
        user_ids=torch.arange(4),
    )


def test_hstu_loss_and_gradients_match_across_kernels():
    batch = tiny_batch()
    results = {}
    for kernel in ("pytorch", "triton"):
        torch.manual_seed(0)
        model = build_model("hstu", "xs", num_items=30, num_users=4, max_seq_len=16, kernel=kernel, dropout=0.0)
        for block in model.blocks:  # non-zero biases, so their gradients are exercised
            torch.nn.init.normal_(block.pos_bias, std=0.5)
            torch.nn.init.normal_(block.time_bias, std=0.5)
        assert model.resolved_kernel("cpu") == kernel
        loss, _ = model.training_loss(batch, "retrieval", torch.Generator().manual_seed(1))
        loss.backward()
        results[kernel] = (loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None},
                           list(model.state_dict()))
    ref_loss, ref_grads, ref_keys = results["pytorch"]
    tri_loss, tri_grads, tri_keys = results["triton"]
    assert ref_keys == tri_keys
    torch.testing.assert_close(tri_loss, ref_loss, rtol=1e-5, atol=1e-6)
    assert ref_grads.keys() == tri_grads.keys()
    for name in ref_grads:
        torch.testing.assert_close(tri_grads[name], ref_grads[name], rtol=1e-4, atol=1e-6, msg=name)
