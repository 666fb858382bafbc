"""Test helpers for the kernel tests: tensors from NumPy arrays in either memory layout, and back."""
import numpy as np

import lucid
from lucid import _backend
from lucid.ops.layout import from_nhwc


def tensor(a, device="cpu", grad=False, channels_last=False):
    """A Tensor of array ``a``; with ``channels_last`` its 4-D memory is NHWC (same logical values)."""
    if channels_last:
        a = from_nhwc(np.ascontiguousarray(a.transpose(0, 2, 3, 1)))
    t = lucid.Tensor(a, device=device)
    t.requires_grad = grad
    return t


def host(t):
    """A Tensor's values as a NumPy array (copied from the GPU)."""
    return _backend.asnumpy(t.data)
