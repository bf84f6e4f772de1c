"""Kernel tests run the Triton code on the CPU interpreter unless TRITON_INTERPRET is set
already (TRITON_INTERPRET=0 on a GPU machine runs them on CUDA). The variable is read when
a kernel is defined, so it is set here, before any test module imports kernels.triton."""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")
