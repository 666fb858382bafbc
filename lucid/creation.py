"""Tensor constructors: tensor, zeros, ones, full, empty, arange and the *_like forms."""
from __future__ import annotations

from typing import Any

from lucid import _backend
from lucid.dtypes import DEFAULT_FLOAT, resolve_dtype
from lucid.tensor import Tensor


def _shape(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = size[0]
    return tuple(int(s) for s in size)


def _make(fn: str, shape, dtype, device, requires_grad, *args) -> Tensor:
    device = _backend.parse_device(device)
    xp = _backend.get_array_module(device)
    with _backend.on_device(device):
        data = getattr(xp, fn)(shape, *args, dtype=resolve_dtype(dtype) or DEFAULT_FLOAT)
    t = Tensor._wrap(data, device)
    t.requires_grad = requires_grad
    return t


def tensor(data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data``."""
    src = data.data if isinstance(data, Tensor) else data
    t = Tensor(src.copy() if hasattr(src, "copy") and hasattr(src, "dtype") else src, requires_grad, dtype, device)
    return t


def zeros(*size, dtype: Any = None, device: Any = "cpu", requires_grad: bool = False) -> Tensor:
    return _make("zeros", _shape(size), dtype, device, requires_grad)


def ones(*size, dtype: Any = None, device: Any = "cpu", requires_grad: bool = False) -> Tensor:
    return _make("ones", _shape(size), dtype, device, requires_grad)


def empty(*size, dtype: Any = None, device: Any = "cpu", requires_grad: bool = False) -> Tensor:
    return _make("empty", _shape(size), dtype, device, requires_grad)


def full(size, fill_value: float, dtype: Any = None, device: Any = "cpu", requires_grad: bool = False) -> Tensor:
    device = _backend.parse_device(device)
    xp = _backend.get_array_module(device)
    dtype = resolve_dtype(dtype) or (DEFAULT_FLOAT if isinstance(fill_value, float) else None)
    with _backend.on_device(device):
        data = xp.full(_shape((size,)) if isinstance(size, int) else tuple(size), fill_value, dtype=dtype)
    t = Tensor._wrap(data, device)
    t.requires_grad = requires_grad
    return t


def arange(start: float, end: float | None = None, step: float = 1, dtype: Any = None, device: Any = "cpu") -> Tensor:
    """Values from start to end (exclusive); int64 for integer arguments, float32 otherwise."""
    if end is None:
        start, end = 0, start
    device = _backend.parse_device(device)
    xp = _backend.get_array_module(device)
    dtype = resolve_dtype(dtype)
    if dtype is None:
        integral = all(isinstance(v, int) for v in (start, end, step))
        dtype = resolve_dtype("int64") if integral else DEFAULT_FLOAT
    with _backend.on_device(device):
        return Tensor._wrap(xp.arange(start, end, step, dtype=dtype), device)


def _like(fn, x: Tensor, dtype, device, requires_grad):
    return fn(x.shape, dtype=dtype or x.dtype, device=device or x.device, requires_grad=requires_grad)


def zeros_like(x: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _like(zeros, x, dtype, device, requires_grad)


def ones_like(x: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _like(ones, x, dtype, device, requires_grad)


def empty_like(x: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _like(empty, x, dtype, device, requires_grad)


def full_like(x: Tensor, fill_value: float, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return full(x.shape, fill_value, dtype=dtype or x.dtype, device=device or x.device, requires_grad=requires_grad)
