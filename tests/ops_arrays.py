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


def naive_conv2d(x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """Direct definition of PyTorch's conv2d (cross-correlation), one output element at a time."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    og = o // groups
    out = np.zeros((n, o, ho, wo))
    for k in range(o):
        g = k // og
        for i in range(ho):
            for j in range(wo):
                patch = xp[:, g * cg : (g + 1) * cg, i * sh : i * sh + dh * (kh - 1) + 1 : dh, j * sw : j * sw + dw * (kw - 1) + 1 : dw]
                out[:, k, i, j] = (patch * w[k]).sum(axis=(1, 2, 3)) + (0.0 if b is None else b[k])
    return out
