"""Reductions over axes: sum, mean, var, max/min (values), differentiable."""
from __future__ import annotations

import builtins

from lucid._backend import get_array_module
from lucid.autograd.function import Function


def normalize_axes(axis, ndim: int) -> tuple[int, ...] | None:
    """Axes as a sorted tuple of non-negative ints; None means all; IndexError when out of range."""
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < builtins.max(ndim, 1):
            raise IndexError(f"dimension {a} out of range for a tensor of {ndim} dimensions")
        out.append(a % builtins.max(ndim, 1))
    return tuple(sorted(set(out)))


def expand_to(g, shape: tuple, axes, keepdims: bool):
    """Broadcast a reduced gradient back over the reduced axes (a read-only view)."""
    xp = get_array_module(g)
    if not keepdims and axes is not None:
        for a in axes:
            g = xp.expand_dims(g, a)
    return xp.broadcast_to(g, shape)


def _count(shape: tuple, axes) -> int:
    n = 1
    for i, s in enumerate(shape):
        if axes is None or i in axes:
            n *= s
    return n


class Sum(Function):
    def forward(self, x, axis=None, keepdims=False):
        self.axes = normalize_axes(axis, x.ndim)
        self.shape, self.keepdims = x.shape, keepdims
        return x.sum(axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        return expand_to(g, self.shape, self.axes, self.keepdims), None, None


class Mean(Function):
    def forward(self, x, axis=None, keepdims=False):
        self.axes = normalize_axes(axis, x.ndim)
        self.shape, self.keepdims = x.shape, keepdims
        return x.mean(axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        g = g / _count(self.shape, self.axes)
        return expand_to(g, self.shape, self.axes, self.keepdims), None, None


class Var(Function):
    def forward(self, x, axis=None, keepdims=False, ddof=1):
        self.axes = normalize_axes(axis, x.ndim)
        self.keepdims, self.ddof = keepdims, ddof
        centred = x - x.mean(axis=self.axes, keepdims=True)
        self.save_for_backward(centred)
        return (centred * centred).sum(axis=self.axes, keepdims=keepdims) / (_count(x.shape, self.axes) - ddof)

    def backward(self, g):
        (centred,) = self.saved
        scale = 2.0 / (_count(centred.shape, self.axes) - self.ddof)
        return expand_to(g, centred.shape, self.axes, self.keepdims) * centred * scale, None, None, None


class _Extreme(Function):
    """max/min over axes; the gradient is shared evenly between tied extremes."""

    reducer = "max"

    def forward(self, x, axis=None, keepdims=False):
        self.axes = normalize_axes(axis, x.ndim)
        self.keepdims = keepdims
        out = getattr(x, self.reducer)(axis=self.axes, keepdims=True)
        self.save_for_backward(x == out)
        if keepdims:
            return out
        return out.reshape([s for i, s in enumerate(out.shape) if self.axes is not None and i not in self.axes])

    def backward(self, g):
        (mask,) = self.saved
        share = mask.astype(g.dtype)
        share /= share.sum(axis=self.axes, keepdims=True)
        return expand_to(g, mask.shape, self.axes, self.keepdims) * share, None, None


class Max(_Extreme):
    reducer = "max"


class Min(_Extreme):
    reducer = "min"


# -- public functions -------------------------------------------------------------
def sum(x, dim=None, keepdim: bool = False):  # shadows a builtin: torch.sum
    return Sum.apply(x, dim, keepdim)


def mean(x, dim=None, keepdim: bool = False):
    return Mean.apply(x, dim, keepdim)


def var(x, dim=None, keepdim: bool = False, unbiased: bool = True):
    return Var.apply(x, dim, keepdim, 1 if unbiased else 0)


class _ValuesIndices(tuple):
    """(values, indices) as torch.max(x, dim) returns them."""

    @property
    def values(self):
        return self[0]

    @property
    def indices(self):
        return self[1]


def max(x, dim=None, keepdim: bool = False):  # shadows a builtin: torch.max
    """The largest value; with ``dim``, (values, indices) along it, as torch.max."""
    if dim is None:
        return Max.apply(x, None, False)
    return _ValuesIndices((Max.apply(x, dim, keepdim), argmax(x, dim, keepdim)))


def min(x, dim=None, keepdim: bool = False):  # shadows a builtin: torch.min
    """The smallest value; with ``dim``, (values, indices) along it, as torch.min."""
    if dim is None:
        return Min.apply(x, None, False)
    return _ValuesIndices((Min.apply(x, dim, keepdim), argmin(x, dim, keepdim)))


def _arg(name: str, x, dim, keepdim: bool):
    from lucid.tensor import Tensor

    if dim is None:
        out = getattr(x.data, name)()
        return Tensor._wrap(get_array_module(x.data).asarray(out, dtype="int64"), x.device)
    (axis,) = normalize_axes(dim, x.ndim)
    out = getattr(x.data, name)(axis=axis)
    if keepdim:
        out = get_array_module(out).expand_dims(out, axis)
    return Tensor._wrap(out.astype("int64", copy=False), x.device)


def argmax(x, dim=None, keepdim: bool = False):
    return _arg("argmax", x, dim, keepdim)


def argmin(x, dim=None, keepdim: bool = False):
    return _arg("argmin", x, dim, keepdim)
