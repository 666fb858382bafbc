"""64-byte aligned NumPy arrays for the kernels' outputs.

NumPy's large arrays start 16 bytes into a cache line (glibc's chunk header), so every
64-byte AVX-512 load of one straddles two lines. oneDNN's convolution kernels run 10-15%
faster on aligned operands (docs/performance.md), and PyTorch's CPU allocator aligns to 64
bytes for the same reason. The kernels that write activations and their gradients
(convolution, batch norm, ReLU, pooling) and oneDNN's weight buffers are allocated here, so
the next kernel reads aligned memory.
"""
from __future__ import annotations

import math

import numpy as np

from lucid._backend import get_array_module

ALIGNMENT = 64


def empty(shape, dtype=np.float32, xp=np):
    """An uninitialised C-contiguous array whose data starts on an ``ALIGNMENT``-byte boundary
    (``xp.empty`` for another array module: CuPy's allocator aligns to 256 bytes)."""
    if xp is not np:
        return xp.empty(shape, dtype)
    dtype = np.dtype(dtype)
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(shape)
    nbytes = math.prod(shape) * dtype.itemsize
    raw = np.empty(nbytes + ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def empty_like(a):
    """``empty_like(a)``, aligned, in ``a``'s layout when that is C-contiguous or channels-last
    (an NCHW-shaped view of NHWC memory); any other layout or array module gets its own ``empty_like``."""
    if type(a) is not np.ndarray:
        return get_array_module(a).empty_like(a)
    if a.flags.c_contiguous:
        return empty(a.shape, a.dtype)
    if a.ndim == 4 and a.transpose(0, 2, 3, 1).flags.c_contiguous:
        n, c, h, w = a.shape
        return empty((n, h, w, c), a.dtype).transpose(0, 3, 1, 2)
    return np.empty_like(a)


def is_whole_buffer(a, base) -> bool:
    """Whether ``base`` (``a.base``) is the raw buffer ``empty`` made for ``a``: the memory ``a``
    spans is all of it but the alignment padding (lets autograd treat ``a`` as owning its memory)."""
    return (type(base) is np.ndarray and base.dtype == np.uint8 and base.ndim == 1 and base.base is None
            and 0 <= base.nbytes - a.nbytes <= ALIGNMENT)
