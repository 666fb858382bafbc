"""Fused elementwise kernels for the GPU path: one ``cupy.fuse`` kernel where NumPy runs several ops.

On a GPU every array op is a kernel launch (~10-20 µs of Python and driver time each)
and a full pass over memory; a ResNet-50 training step makes thousands. The memory-bound
chains that ops write as a few in-place NumPy calls (the CPU path, which stays as it is:
cache-blocked and threaded in ``lucid.ops.blocked``) run on a GPU as ONE kernel each:

- ``affine``: BatchNorm's ``((x*k1 + k0) + dy) * k`` (+ ReLU), with any of k0, dy, k
  absent: the forward normalisation (with the fused ReLU) and both input gradients;
- ``add_relu``: the residual join ``max(a + b, 0)``;
- ``relu_grad``: ReLU's backward ``g * (out > 0)``.

Per-channel vectors (float64) are cast to the data's dtype before they multiply, as on
the CPU path, so both paths round alike. ``enabled(False)`` (a context manager) turns
the fused kernels off, to measure what they save.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterator

import numpy as np

from lucid._backend import get_array_module

_state = threading.local()
_cache: dict = {}


def is_enabled() -> bool:
    return getattr(_state, "on", True)


@contextlib.contextmanager
def enabled(flag: bool) -> Iterator[None]:
    """Use (True, the default) or bypass (False) the fused GPU kernels inside the block."""
    before = is_enabled()
    _state.on = bool(flag)
    try:
        yield
    finally:
        _state.on = before


def use_fused(xp) -> bool:
    """True when ``xp`` is a GPU array module and fused kernels are on."""
    return is_enabled() and hasattr(xp, "fuse")


def kernel(xp, name: str, *variant) -> Callable:
    """The fused kernel ``name`` (of ``variant``) compiled for array module ``xp``, made once."""
    key = (id(xp), name, variant)
    fn = _cache.get(key)
    if fn is None:
        fn = _cache[key] = xp.fuse(kernel_name=f"lucid_{name}")(_BUILDERS[name](xp, *variant))
    return fn


def _affine(xp, has_k0: bool, has_dy: bool, has_k: bool, relu: bool):
    def affine(x, k1, k0, dy, k):
        y = x * k1.astype(x.dtype)
        if has_k0:
            y = y + k0.astype(x.dtype)
        if has_dy:
            y = y + dy
        if has_k:
            y = y * k.astype(x.dtype)
        return xp.maximum(y, 0) if relu else y

    return affine


def _add_relu(xp):
    def add_relu(a, b):
        return xp.maximum(a + b, 0)

    return add_relu


def _relu_grad(xp):
    def relu_grad(g, out):
        return g * (out > 0)

    return relu_grad


def _bn_coefficients(xp, training: bool, has_weight: bool, has_bias: bool, has_rm: bool, has_rv: bool):
    f64 = xp.float64

    def bn_coefficients(s, sq, weight, bias, rm, rv, count, momentum, eps, unbias):
        if training:
            mean = s / count
            var = xp.maximum(sq / count - mean * mean, 0.0)
            if has_rm:
                rm[...] = ((1.0 - momentum) * rm + momentum * mean).astype(rm.dtype)
            if has_rv:
                rv[...] = ((1.0 - momentum) * rv + momentum * (var * unbias)).astype(rv.dtype)
        else:
            mean, var = s.astype(f64), sq.astype(f64)
        invstd = 1.0 / xp.sqrt(var + eps)
        gamma = weight.astype(f64) if has_weight else invstd * 0.0 + 1.0
        scale = gamma * invstd
        shift = (bias.astype(f64) if has_bias else 0.0) - mean * scale
        return mean, invstd, gamma, scale, shift

    return bn_coefficients


def _bn_grad_coefficients(xp, training: bool, dtype: str):
    def bn_grad_coefficients(l0, l1, p0, p1, invstd, gamma, mean, count):
        gw = (l1 * invstd).astype(dtype)
        gb = l0.astype(dtype)
        k1 = gamma * invstd
        if not training:
            return gw, gb, k1, k1, k1
        k2 = -invstd * invstd * p1 / count
        k3 = -p0 / count - k2 * mean
        return gw, gb, k1, k2, k3

    return bn_grad_coefficients


def _moments_tail(xp):
    f64 = xp.float64

    def moments_tail(out_sum, out_sq, s, dd, centre, n):
        s64, c64 = s.astype(f64), centre.astype(f64)
        out_sum[...] = s64
        out_sq[...] = dd.astype(f64) + c64 * (2 * s64 - n * c64)

    return moments_tail


def _grad_sums_tail(xp):
    f64 = xp.float64

    def grad_sums_tail(out_dy, out_dyx, sum_dy, dot, centre, mean):
        s64 = sum_dy.astype(f64)
        out_dy[...] = s64
        out_dyx[...] = dot.astype(f64) + (centre.astype(f64) - mean) * s64

    return grad_sums_tail


def _centre(xp):
    def centre(s, n, like):
        return (s / n).astype(like.dtype)

    return centre


_BUILDERS = {"affine": _affine, "add_relu": _add_relu, "relu_grad": _relu_grad, "bn_coefficients": _bn_coefficients,
             "bn_grad_coefficients": _bn_grad_coefficients, "moments_tail": _moments_tail,
             "grad_sums_tail": _grad_sums_tail, "centre": _centre}


def register(name: str, builder: Callable) -> None:
    """Add a kernel: ``builder(xp, *variant)`` returns the Python function ``cupy.fuse`` compiles."""
    if name in _BUILDERS and _BUILDERS[name] is not builder:
        raise ValueError(f"a fused kernel named {name!r} is already registered")
    _BUILDERS[name] = builder


def affine(x, k1, k0=None, dy=None, k=None, relu: bool = False):
    """``((x*k1 + k0) + dy) * k`` (then ``max(., 0)``) as one kernel; absent terms are skipped."""
    xp = get_array_module(x)
    zero = 0.0  # stands in for an absent term: the kernel of that variant never reads it
    fn = kernel(xp, "affine", k0 is not None, dy is not None, k is not None, relu)
    return fn(x, k1, zero if k0 is None else k0, zero if dy is None else dy, zero if k is None else k)


def batch_norm_coefficients(packed, count, weight, bias, running_mean, running_var, momentum: float, eps: float):
    """BatchNorm's per-channel (mean, invstd, gamma, scale, shift), float64, as one kernel.

    Training (``packed`` the (3, C) statistics, ``count`` values per channel) also updates
    the running statistics in place, as ``lucid.ops.norm`` does; eval (``packed`` None)
    normalises with them.
    """
    training = packed is not None
    xp = get_array_module(running_mean if packed is None else packed)
    s, sq = (packed[1], packed[2]) if training else (running_mean, running_var)
    fn = kernel(xp, "bn_coefficients", training, weight is not None, bias is not None,
                training and running_mean is not None, training and running_var is not None)
    unbias = count / (count - 1) if training else 1.0
    none = 0.0
    return fn(s, sq, none if weight is None else weight, none if bias is None else bias,
              none if running_mean is None or not training else running_mean,
              none if running_var is None or not training else running_var,
              count if training else 1.0, momentum, eps, unbias)


def batch_norm_grad_coefficients(local, packed, invstd, gamma, mean, count, dtype, training: bool):
    """BatchNorm backward's (weight grad, bias grad, k1, k2, k3) as one kernel.

    ``local``: the (2, C) [sum dy, sum dy*(x - mean)] of this process (weight and bias
    gradients); ``packed``: the same summed over the processes that share the statistics.
    ``dx = (x*k2 + k3 + dy) * k1`` in training, ``dy * k1`` in eval (k2, k3 are then k1).
    """
    fn = kernel(get_array_module(local), "bn_grad_coefficients", training, str(np.dtype(dtype)))
    return fn(local[0], local[1], packed[0], packed[1], invstd, gamma, mean, count if training else 1.0)


def _in_layout(fn, first, *others):
    """``fn`` over the arrays' memory as 1-D runs, the result in ``first``'s memory layout.

    A GPU kernel writes a new array in C order; run on dense 1-D views in memory order,
    an NHWC-memory activation's result stays NHWC (what the next convolution reads).
    Arrays of different layouts (or broadcasting ones) run as they are.
    """
    if first.ndim < 2 or any(a.shape != first.shape or a.strides != first.strides for a in others):
        return fn(first, *others)
    order = sorted(range(first.ndim), key=lambda i: -first.strides[i])
    views = [a.transpose(order) for a in (first, *others)]
    if not views[0].flags.c_contiguous:
        return fn(first, *others)
    flat = fn(*(v.reshape(-1) for v in views))
    return flat.reshape(views[0].shape).transpose([order.index(i) for i in range(first.ndim)])


def add_relu(a, b):
    """``max(a + b, 0)`` as one kernel, in ``a``'s memory layout when ``b`` shares it."""
    return _in_layout(kernel(get_array_module(a, b), "add_relu"), a, b)


def relu_grad(g, out):
    """``g * (out > 0)`` as one kernel (the gradient through a ReLU whose output was ``out``), in ``out``'s layout."""
    fn = kernel(get_array_module(g, out), "relu_grad")
    return _in_layout(lambda o, gg: fn(gg, o), out, g)
