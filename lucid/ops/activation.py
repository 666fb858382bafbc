"""Activations and dropout: relu, add_relu (fused residual join), sigmoid, softmax, log_softmax, dropout.

relu and add_relu are memory-bound: they run block by block on all cores
(``lucid.ops.blocked``) over the arrays' memory in its own order, so an NHWC-memory
activation stays NHWC and each block's temporaries stay in cache.
"""
from __future__ import annotations

from lucid._backend import get_array_module
from lucid.autograd.function import Function
from lucid.ops import aligned, gpu_fused
from lucid.ops.blocked import map_row_blocks
from lucid.ops.broadcast import check_broadcast, shape_of, unbroadcast


def dense_flat(a):
    """1-D view of ``a``'s elements in memory order, or None if ``a`` is not one dense block."""
    order = sorted(range(a.ndim), key=lambda i: -a.strides[i])
    t = a.transpose(order)
    return t.reshape(-1) if t.flags.c_contiguous else None


def map_blocks(fn, out, *inputs) -> bool:
    """``fn(out_block, *input_blocks)`` over matching 1-D memory blocks, on all cores.

    Needs every array dense with the same shape and strides as ``out`` (the same
    memory layout); returns False, doing nothing, otherwise.
    """
    if any(a.shape != out.shape or a.strides != out.strides for a in inputs):
        return False
    flats = [dense_flat(a) for a in (out, *inputs)]
    if any(f is None for f in flats):
        return False
    map_row_blocks(lambda i, j: fn(*(f[i:j] for f in flats)), out.size, out.itemsize, get_array_module(out))
    return True


def relu_forward(x, out):
    """out = max(x, 0); ``out`` may be ``x``."""
    xp = get_array_module(x)
    if not map_blocks(lambda o, a: xp.maximum(a, 0, out=o), out, x):
        xp.maximum(x, 0, out=out)
    return out


def relu_backward(g, out):
    """g * (out > 0) as a new array in ``out``'s layout (a multiply by the mask: ~3x np.where; docs/design.md, "Performance").

    The mask is written as 0.0 / 1.0 straight into the result, then multiplied in place:
    1.6x faster than multiplying by a boolean array (a mixed-type loop).
    """
    xp = get_array_module(g)
    if gpu_fused.use_fused(xp):
        return gpu_fused.relu_grad(g, out)
    dx = aligned.empty_like(out)

    def block(d, gb, ob):
        xp.greater(ob, 0, out=d)
        d *= gb

    if not map_blocks(block, dx, g, out):
        xp.multiply(g, out > 0, out=dx)
    return dx


class ReLU(Function):
    def forward(self, x):
        out = relu_forward(x, aligned.empty_like(x))
        self.save_for_backward(out)
        return out

    def backward(self, g):
        return relu_backward(g, self.saved[0])


class AddReLU(Function):
    """relu(a + b) in one pass: the residual join of ResNet blocks (PyTorch fuses it in inference)."""

    def forward(self, a, b):
        xp = get_array_module(a, b)
        self.shapes = (shape_of(a), shape_of(b))
        check_broadcast("add_relu", *self.shapes)
        if self.shapes[0] == self.shapes[1] and gpu_fused.use_fused(xp) and a.dtype == getattr(b, "dtype", None):
            out = gpu_fused.add_relu(a, b)  # one kernel
        elif self.shapes[0] != self.shapes[1] or getattr(a, "dtype", None) != getattr(b, "dtype", None):
            out = a + b
            relu_forward(out, out)
        else:
            out = aligned.empty_like(a)

            def block(o, x, y):
                xp.add(x, y, out=o)
                xp.maximum(o, 0, out=o)

            if not map_blocks(block, out, a, b):
                block(out, a, b)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        dx = relu_backward(g, self.saved[0])
        need = self.needs_input_grad
        return (unbroadcast(dx, self.shapes[0]) if need[0] else None,
                unbroadcast(dx, self.shapes[1]) if need[1] else None)


class Sigmoid(Function):
    def forward(self, x):
        xp = get_array_module(x)
        out = xp.exp(-xp.logaddexp(0, -x)).astype(x.dtype, copy=False)  # stable for large |x|
        self.save_for_backward(out)
        return out

    def backward(self, g):
        (out,) = self.saved
        return g * out * (1 - out)


def log_softmax_array(x, axis: int):
    """log(softmax(x)) along ``axis`` with the max subtracted for stability."""
    xp = get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    shifted -= xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
    return shifted


class Softmax(Function):
    def forward(self, x, axis):
        xp = get_array_module(x)
        e = xp.exp(x - x.max(axis=axis, keepdims=True))
        e /= e.sum(axis=axis, keepdims=True)
        self.axis = axis
        self.save_for_backward(e)
        return e

    def backward(self, g):
        (out,) = self.saved
        return out * (g - (g * out).sum(axis=self.axis, keepdims=True)), None


class LogSoftmax(Function):
    def forward(self, x, axis):
        out = log_softmax_array(x, axis)
        self.axis = axis
        self.save_for_backward(out)
        return out

    def backward(self, g):
        (out,) = self.saved
        return g - get_array_module(g).exp(out) * g.sum(axis=self.axis, keepdims=True), None


class Dropout(Function):
    """Zero each element with probability p and scale the rest by 1/(1-p) (inverted dropout)."""

    def forward(self, x, mask):
        self.save_for_backward(mask)
        return x * mask

    def backward(self, g):
        return g * self.saved[0], None


# -- public functions -------------------------------------------------------------
def relu(x):
    return ReLU.apply(x)


def add_relu(a, b):
    """relu(a + b) as one fused op (broadcasting as ``+``); the residual join of ResNet blocks."""
    return AddReLU.apply(a, b)


def sigmoid(x):
    return Sigmoid.apply(x)


def softmax(x, dim: int = -1):
    return Softmax.apply(x, dim % x.ndim)


def log_softmax(x, dim: int = -1):
    return LogSoftmax.apply(x, dim % x.ndim)


def dropout(x, p: float = 0.5, training: bool = True):
    """Inverted dropout; identity when not training or p == 0. Masks come from lucid.random."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    from lucid import random

    keep = random.uniform_array(x.shape, x.dtype, x.device) >= p
    mask = keep.astype(x.dtype) * (1.0 / (1.0 - p)) if p < 1.0 else keep.astype(x.dtype)
    return Dropout.apply(x, mask)
