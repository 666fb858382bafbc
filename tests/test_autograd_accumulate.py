"""Gradient accumulation: fresh gradients (also views of new memory) are summed in place, shared ones never."""
import weakref

import numpy as np

import lucid
from lucid.autograd import Function


class ChannelsLastGrad(Function):
    """Identity on 4-D arrays whose backward returns the NCHW view of a new NHWC array (as conv does)."""

    made: list = []  # weak references to the NHWC arrays backward made

    def forward(self, x):
        return x.copy()

    def backward(self, g):
        out = np.empty((g.shape[0], g.shape[2], g.shape[3], g.shape[1]), g.dtype)
        out[...] = g.transpose(0, 2, 3, 1)
        self.made.append(weakref.ref(out))
        return out.transpose(0, 3, 1, 2)


class ViewOfIncoming(Function):
    """Identity whose backward returns a view of the incoming gradient."""

    def forward(self, x):
        return x.copy()

    def backward(self, g):
        return g.reshape(-1).reshape(g.shape)


def test_views_of_new_memory_are_summed_in_place_and_keep_their_layout():
    x = lucid.randn(2, 3, 4, 5, requires_grad=True)
    y = ChannelsLastGrad.apply(x) * 2.0 + ChannelsLastGrad.apply(x)
    y.backward(lucid.ones(2, 3, 4, 5))
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3, 4, 5), 3.0, np.float32))
    # summed into one of the arrays backward made: no new array, and channels-last memory kept
    base = x.grad.data.base
    assert base is not None and any(ref() is base for ref in ChannelsLastGrad.made)
    assert x.grad.data.transpose(0, 2, 3, 1).flags.c_contiguous


def test_views_of_a_shared_gradient_are_never_written():
    for order in range(2):
        x = lucid.randn(3, 4, requires_grad=True)
        a, b = ViewOfIncoming.apply(x), x * 2.0
        s = a + b if order == 0 else b + a  # add hands the same gradient array to both inputs
        (s * lucid.tensor(np.arange(12.0, dtype=np.float32).reshape(3, 4))).sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), 3 * np.arange(12.0).reshape(3, 4))


def test_retained_graph_accumulates_across_passes():
    x = lucid.randn(2, 3, 4, 5, requires_grad=True)
    y = (ChannelsLastGrad.apply(x) + ViewOfIncoming.apply(x)).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3, 4, 5), 4.0, np.float32))
