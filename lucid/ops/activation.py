"""Activations and dropout: relu, sigmoid, softmax, log_softmax, dropout."""
from __future__ import annotations

from lucid.autograd.function import Function, xp_of


class ReLU(Function):
    def forward(self, x):
        out = xp_of(x).maximum(x, 0)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        # A multiply by the mask is ~3x faster than np.where (DESIGN.md).
        return g * (self.saved[0] > 0)


class Sigmoid(Function):
    def forward(self, x):
        xp = xp_of(x)
        out = xp.exp(-xp.logaddexp(0, -x)).astype(x.dtype, copy=False)  # stable for large |x|
        self.save_for_backward(out)
        return out

    def backward(self, g):
        (out,) = self.saved
        return g * out * (1 - out)


def log_softmax_array(x, axis: int):
    """log(softmax(x)) along ``axis`` with the max subtracted for stability."""
    xp = xp_of(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    shifted -= xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
    return shifted


class Softmax(Function):
    def forward(self, x, axis):
        xp = xp_of(x)
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
        return g - xp_of(g).exp(out) * g.sum(axis=self.axis, keepdims=True), None


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
    from lucid import random  # noqa: PLC0415

    keep = random.uniform_array(x.shape, x.dtype, x.device) >= p
    mask = keep.astype(x.dtype) * (1.0 / (1.0 - p)) if p < 1.0 else keep.astype(x.dtype)
    return Dropout.apply(x, mask)
