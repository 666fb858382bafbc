"""A strict NumPy-backed stand-in for CuPy, for testing lucid's GPU paths without a GPU.

Only names real CuPy has (``tests/test_gpu_api.py`` checks this against the real
wheel). Arrays are ``fake_cupy.ndarray``, not NumPy arrays; see ``_core``.
"""
from __future__ import annotations

import builtins  # this module's any/all/max/min/sum/abs/round are CuPy's
import sys

import numpy as _np

from fake_cupy import _core, cuda, random
from fake_cupy._core import STATS as _STATS
from fake_cupy._core import call as _call
from fake_cupy._core import ndarray
from fake_cupy._kernels import fuse

__version__ = "14.0.0"

# dtypes and constants
from numpy import (
    bool_,
    can_cast,
    complex64,
    complex128,
    e,
    finfo,
    float16,
    float32,
    float64,
    iinfo,
    inf,
    int8,
    int16,
    int32,
    int64,
    nan,
    newaxis,
    pi,
    promote_types,
    uint8,
    uint16,
    uint32,
    uint64,
)


class ufunc:
    """An elementwise kernel: one launch per call."""

    def __init__(self, np_ufunc):
        self._u = np_ufunc
        self.__name__ = np_ufunc.__name__
        self.nin, self.nout = np_ufunc.nin, np_ufunc.nout

    def __call__(self, *args, **kwargs):
        return _call(self._u, args, kwargs)

    def at(self, a, indices, b=None):
        args = (a, indices) if b is None else (a, indices, b)
        _call(self._u.at, args, {})

    def reduce(self, array, axis=0, dtype=None, out=None, keepdims=False):
        return _call(self._u.reduce, (array,), {"axis": axis, "dtype": dtype, "out": out, "keepdims": keepdims})


_UFUNCS = (
    "abs absolute add arccos arcsin arctan arctan2 bitwise_and bitwise_or bitwise_xor ceil cos cosh "
    "divide equal exp expm1 floor floor_divide fmax fmin greater greater_equal invert isfinite isinf isnan "
    "less less_equal log log1p log2 log10 logaddexp logical_and logical_not logical_or logical_xor maximum "
    "minimum multiply negative not_equal positive power reciprocal remainder rint sign sin sinh sqrt square "
    "subtract tan tanh true_divide"
).split()
for _n in _UFUNCS:
    globals()[_n] = ufunc(getattr(_np, _n))

_FUNCTIONS = (
    "all allclose amax amin any arange clip argmax argmin argsort array_equal around atleast_1d atleast_2d "
    "broadcast_arrays broadcast_to concatenate count_nonzero cumsum diag dot einsum empty empty_like "
    "expand_dims eye flip full full_like identity isclose linspace matmul max mean min moveaxis nonzero "
    "ones ones_like pad prod ravel repeat reshape roll round split squeeze stack std sum swapaxes take "
    "take_along_axis tensordot tile transpose tril triu unique var vstack hstack where zeros zeros_like"
).split()
_ALLOCATIONS = {"empty", "empty_like"}  # memory from the pool, nothing runs on the GPU
_VIEWS = set("atleast_1d atleast_2d broadcast_to expand_dims moveaxis ravel reshape squeeze swapaxes transpose".split())
for _n in _FUNCTIONS:
    _launches = _core.VIEW if _n in _VIEWS else 0 if _n in _ALLOCATIONS else 1  # views, allocations: no kernel
    globals()[_n] = (lambda f, n: lambda *a, **k: _call(f, a, k, launches=n))(getattr(_np, _n), _launches)
    globals()[_n].__name__ = _n
del _n, _launches


def concatenate(tup, axis=0, out=None, *, dtype=None, casting="same_kind"):
    """One kernel for more than 8 arrays of the output's dtype averaging under 2 MiB (CuPy's
    ``_concatenate_single_kernel``), else one copy kernel per array, as CuPy 14 does."""
    arrays = list(tup)
    kind = _np.dtype(dtype) if dtype is not None else out.dtype if out is not None else result_type(*arrays)
    single = len(arrays) > 8 and builtins.all(a.dtype == kind for a in arrays) and (
        builtins.sum(a.nbytes for a in arrays) < 2 * 1024 * 1024 * len(arrays))
    kw = {"axis": axis, "out": out, "dtype": dtype, "casting": casting}
    return _call(_np.concatenate, (arrays,), kw, launches=1 if single else len(arrays))


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    """Host data (lists, NumPy arrays) or device arrays as a device array (a host->device copy)."""
    if isinstance(a, ndarray) and (dtype is None or _np.dtype(dtype) == a.dtype):
        return a
    return _call(_np.asarray, (a, dtype, order), {}, transfer=True)


def copy(a, order="K"):
    """A copy on the CURRENT device; like CuPy, the source may live on another device (a
    peer copy), which is the one way an array changes device."""
    if not isinstance(a, ndarray):
        raise TypeError(f"fake cupy.copy takes a device array, got {type(a).__name__}")
    _STATS.kernels += 1
    return _core.wrap(_np.array(a._a, order=order, copy=True))


def asanyarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    return asarray(a, dtype, order)


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    return _call(_np.array, (obj, dtype), {"copy": True, "order": order, "ndmin": ndmin}, transfer=True)


def ascontiguousarray(a, dtype=None):
    return _call(_np.ascontiguousarray, (a, dtype), {}, transfer=True)


def result_type(*arrays_and_dtypes):
    return _np.result_type(*[x.dtype if isinstance(x, ndarray) else x for x in arrays_and_dtypes])


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    """Copy to the host (a synchronisation when blocking)."""
    if isinstance(a, ndarray):
        return a.get(stream=stream, order=order, out=out, blocking=blocking)
    return _np.asarray(a, order=order)


def get_array_module(*args):
    return sys.modules[__name__] if builtins.any(isinstance(a, ndarray) for a in args) else _np


class _Lib:
    class stride_tricks:
        @staticmethod
        def as_strided(x, shape=None, strides=None):
            return _call(_np.lib.stride_tricks.as_strided, (x,), {"shape": shape, "strides": strides}, launches=0)


lib = _Lib()

dtype = _np.dtype  # after the functions whose dtype parameters would shadow an import
