"""The arguments of ``Tensor.to`` and ``Module.to``, parsed once for both (PyTorch's rules),
and the shorthands both classes build on ``to`` (``cpu()``, ``gpu()``, ``double()``, ...).

``to(device)``, ``to(dtype)``, ``to(device, dtype)`` and the keywords ``device=`` /
``dtype=``; each may be given once (positionally or by keyword, as in PyTorch, where
giving both is an error). A string is a device ("cpu", "gpu:N", "cuda:N") when it
names one, else a dtype name ("float64"); anything else is an error naming both.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from lucid import _backend
from lucid.dtypes import resolve_dtype


def parse_to_args(args: tuple, kwargs: dict) -> tuple[str | None, np.dtype | None]:
    """(parsed device or None, NumPy dtype or None)."""
    given: dict[str, Any] = {}
    extra = sorted(set(kwargs) - {"device", "dtype"})
    if extra:
        raise TypeError(f"to() got unexpected arguments {extra}")
    for a in args:
        kind, value = _classify(a)
        if kind in given:
            raise TypeError(f"to() got two {kind}s: {given[kind]!r} and {value!r}")
        given[kind] = value
    for kind in ("device", "dtype"):
        if kwargs.get(kind) is not None:
            if kind in given:
                raise TypeError(f"to() got {kind} both as an argument ({given[kind]!r}) and as {kind}={kwargs[kind]!r}")
            given[kind] = kwargs[kind]
    device = given.get("device")
    return (None if device is None else _backend.parse_device(device)), resolve_dtype(given.get("dtype"))


class ToShorthands:
    """``cpu()``, ``gpu(index)`` (alias ``cuda``), ``float()``, ``double()``, ``half()``: each is
    ``self.to(...)``; a base of Tensor and Module, which define ``to``."""

    def cpu(self):
        return self.to("cpu")

    def gpu(self, index: int = 0):
        return self.to(f"gpu:{index}")

    cuda = gpu

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    def half(self):
        return self.to(np.float16)


def _classify(arg: Any) -> tuple[str, Any]:
    if not isinstance(arg, str):
        return "dtype", arg
    try:
        return "device", _backend.parse_device(arg)
    except ValueError as err:
        try:
            return "dtype", np.dtype(arg)
        except TypeError:
            raise ValueError(f"to(): {arg!r} is neither a device nor a dtype; {err}") from None
