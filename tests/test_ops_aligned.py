"""lucid.ops.aligned: 64-byte aligned kernel outputs, in the layout of the array they mirror."""
import numpy as np
import pytest

import lucid
import lucid.nn.functional as F
from lucid.ops import aligned


def _offset(a) -> int:
    return a.ctypes.data % aligned.ALIGNMENT


@pytest.mark.parametrize("shape", [(0,), (1,), (7, 3), (2, 5, 3, 3), (64, 16, 16, 32)], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.uint8])
def test_empty_is_aligned_contiguous_and_writable(shape, dtype):
    a = aligned.empty(shape, dtype)
    assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
    assert a.size == 0 or _offset(a) == 0
    a[...] = 1
    assert np.all(a == 1)


def test_empty_takes_an_int_shape():
    assert aligned.empty(5, np.float64).shape == (5,)


def test_empty_like_keeps_the_layout():
    nchw = np.zeros((2, 3, 4, 5), np.float32)
    channels_last = np.zeros((2, 4, 5, 3), np.float32).transpose(0, 3, 1, 2)
    for a in (nchw, channels_last):
        b = aligned.empty_like(a)
        assert b.shape == a.shape and b.strides == a.strides and _offset(b) == 0
    odd = np.zeros((4, 6), np.float32)[:, ::2]  # neither layout: NumPy's own empty_like
    b = aligned.empty_like(odd)
    assert b.shape == odd.shape and b.dtype == odd.dtype


def test_other_array_modules_use_their_own_allocator():
    class Module:
        @staticmethod
        def empty(shape, dtype):
            return ("module", shape, dtype)

    assert aligned.empty((2, 3), np.float32, Module) == ("module", (2, 3), np.float32)


def test_kernel_outputs_are_aligned():
    """The activations and gradients a ResNet block passes between kernels come out aligned."""
    rng = np.random.default_rng(0)
    x = lucid.tensor(rng.standard_normal((4, 8, 6, 6)).astype(np.float32), requires_grad=True)
    w = lucid.tensor(rng.standard_normal((8, 8, 3, 3)).astype(np.float32), requires_grad=True)
    rm, rv = lucid.zeros(8), lucid.ones(8)
    y = F.conv2d(x, w, padding=1)
    z = F.batch_norm(y, rm, rv, training=True)
    out = F.relu(z + x)
    out.sum().backward()
    for name, a in (("conv", y), ("batch_norm", z), ("relu", out), ("grad", x.grad)):
        assert _offset(a.data) == 0, name


def test_autograd_adds_in_place_into_an_aligned_gradient():
    """The engine may add into a kernel's aligned result (it owns its memory), not into a view of part of one."""
    from lucid.autograd.engine import _fresh

    g = aligned.empty((4, 8))
    channels_last = aligned.empty((2, 4, 5, 3)).transpose(0, 3, 1, 2)
    assert _fresh(g, None, ()) and _fresh(channels_last, None, ())
    assert not _fresh(g[1:], None, ())  # part of the buffer
    assert not _fresh(g, None, (g,))  # also handed to another input
    kept = aligned.empty((4, 8))
    other = kept.base  # another reference to the buffer
    assert not _fresh(kept, None, ()) and other is not None
