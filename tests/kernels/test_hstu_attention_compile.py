"""The Triton kernels compile for an H100 (sm_90, through ptxas to a cubin) without a GPU.

The interpreter runs the kernels as Python, so it misses what only the compiler rejects
(constexpr branches, dtype rules of tl.dot, shared-memory layout); this checks that part.
Runs in a subprocess: this process defined the kernels under TRITON_INTERPRET=1.
"""
from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _signature(fn, dtype: str, constexprs: dict) -> dict[str, str]:
    pointers = {"Q", "K", "V", "Out", "DO", "DQ", "DK", "DV_", "POS", "TIME"}
    types = {}
    for name in inspect.signature(fn).parameters:
        if name in constexprs:
            types[name] = "constexpr"
        elif name in pointers:
            types[name] = f"*{dtype}"
        elif name in ("DPOS", "DTIME"):
            types[name] = "*fp32"
        elif name in ("seq_offsets", "seq_order", "TS", "TSQ"):
            types[name] = "*i64"
        else:
            types[name] = "fp32" if name in ("alpha", "inv_n") else "i32"
    return types


def compile_for_sm90() -> None:
    """bf16, both biases with gradients, head dim 128: the configuration the benchmark runs."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from kernels.triton import hstu_attention as kernels

    common = dict(DQK=128, DV=128, BLOCK_DQK=128, BLOCK_DV=128, HAS_POS=True, HAS_TIME=True,
                  PRECISION="tf32")
    for kernel, extra in ((kernels._hstu_attn_fwd_kernel, dict(BLOCK_M=128, BLOCK_N=64)),
                          (kernels._hstu_attn_bwd_kernel, dict(BLOCK=64, POS_GRAD=True, TIME_GRAD=True))):
        fn = kernel.fn.fn  # autotuner -> JITFunction -> Python function
        constexprs = {**common, **extra}
        names = list(inspect.signature(fn).parameters)
        source = ASTSource(fn=kernel.fn, signature=_signature(fn, "bf16", constexprs),
                           constexprs={(names.index(k),): v for k, v in constexprs.items()})
        compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32),
                                  options=dict(num_warps=8, num_stages=2))
        assert compiled.asm.get("cubin"), f"{fn.__name__}: no cubin"


def test_kernels_compile_for_h100():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    code = "from tests.kernels.test_hstu_attention_compile import compile_for_sm90; compile_for_sm90()"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
