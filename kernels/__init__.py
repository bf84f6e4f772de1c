"""Fused kernels, each beside a pure-PyTorch reference of the same signature."""
from kernels.hstu_attention import hstu_attention

__all__ = ["hstu_attention"]
