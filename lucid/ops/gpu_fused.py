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


_BUILDERS = {"affine": _affine, "add_relu": _add_relu, "relu_grad": _relu_grad}


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
