"""Triton kernels. Import only where a kernel is launched: under TRITON_INTERPRET=1 the
variable must be set before this package is imported (it is read at kernel definition)."""
