"""Channels-last memory for 4-D activations.

Users see logical NCHW shapes; kernels work on NHWC memory, where im2col copies
move contiguous runs of C values and 1x1 convolutions are one GEMM (docs/design.md, "Performance").
An NCHW-shaped array whose memory is NHWC is simply ``a_nhwc.transpose(0, 3, 1, 2)``,
and elementwise ufuncs keep that layout.
"""
from __future__ import annotations

from lucid._backend import get_array_module


def to_nhwc(x):
    """C-contiguous NHWC array for an NCHW-shaped array: free if its memory is channels-last."""
    t = x.transpose(0, 2, 3, 1)
    return t if t.flags.c_contiguous else get_array_module(x).ascontiguousarray(t)


def from_nhwc(a):
    """The NCHW-shaped view of NHWC memory (no copy)."""
    return a.transpose(0, 3, 1, 2)


def is_channels_last(x) -> bool:
    return x.ndim == 4 and x.transpose(0, 2, 3, 1).flags.c_contiguous
