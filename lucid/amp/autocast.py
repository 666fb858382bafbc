"""``autocast``: run matrix products in float16 and precision-sensitive ops in float32 (torch.autocast).

Inside the context every op's floating Tensor inputs on the chosen device type are
cast to the dtype its policy names (``lucid.amp.policy``) before the op runs. The
casts are ordinary differentiable ops, so gradients flow back to the float32
parameters ("master weights") in float32. The state is per thread and nests; an
inner ``autocast(..., enabled=False)`` turns it off for a block.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from lucid import _backend
from lucid.amp.policy import FLOAT32, KEEP, LOWER, policy_of
from lucid.autograd.function import _dispatch, set_autocast_hook
from lucid.dtypes import is_floating
from lucid.ops.elementwise import cast
from lucid.tensor import Tensor

DEVICE_TYPES = ("cpu", "gpu", "cuda")  # "cuda" is "gpu", as in lucid's device strings
_FLOAT16_NAMES = ("float16", "fp16", "half")
_BFLOAT16_NAMES = ("bfloat16", "bf16")


def _device_kind(device_type: str) -> str:
    if device_type not in DEVICE_TYPES:
        raise ValueError(f"autocast: device_type must be one of {', '.join(map(repr, DEVICE_TYPES))}, got {device_type!r}")
    return "cpu" if device_type == "cpu" else "gpu"


def low_precision_dtype(dtype: Any, device_type: str = "cpu"):
    """The array dtype meant by ``dtype`` (float16 or bfloat16, by dtype or name) on ``device_type``.

    bfloat16 needs an array library that has it: NumPy (CPU) and CuPy (GPU) have no
    bfloat16 dtype, so asking for it is an error that says so.
    """
    kind = _device_kind(device_type)
    name = dtype if isinstance(dtype, str) else getattr(dtype, "name", None) or getattr(dtype, "__name__", repr(dtype))
    if name in _BFLOAT16_NAMES:
        xp = np if kind == "cpu" else _backend.cupy_module()
        found = getattr(xp, "bfloat16", None)
        if found is None:
            raise TypeError(
                f"mixed precision dtype {dtype!r}: {xp.__name__} (the array library of device {device_type!r}) has "
                "no bfloat16 dtype; use float16 ('fp16'), which lucid trains with dynamic loss scaling (GradScaler)"
            )
        return np.dtype(found)
    if name in _FLOAT16_NAMES:
        return np.dtype(np.float16)
    raise TypeError(f"mixed precision dtype must be float16 or bfloat16 ('fp16', 'bf16'), got {dtype!r}")


class _Caster:
    """The dispatch hook: casts an op's floating Tensor inputs per its policy, for the device kinds in ``dtypes``."""

    def __init__(self, dtypes: dict):
        self.dtypes = dtypes  # "cpu"/"gpu" -> low-precision dtype, or None where turned off

    def __call__(self, cls, args: tuple) -> tuple:
        policy = policy_of(cls)
        if policy == KEEP:
            return args
        floats = [i for i, a in enumerate(args) if isinstance(a, Tensor) and is_floating(a.data.dtype)]
        if not floats:
            return args
        low = self.dtypes.get("cpu" if args[floats[0]].device == "cpu" else "gpu")
        if low is None:
            return args
        dtypes = [args[i].data.dtype for i in floats]
        if policy == LOWER:
            if np.float64 in dtypes:
                raise TypeError(
                    f"autocast({low.name}): {cls.__name__} got a float64 input; mixed precision runs float32 "
                    "models (float32 master weights): convert the model and inputs with .float() or leave autocast off"
                )
            target = low
        elif policy == FLOAT32:
            target = np.dtype(np.float32)
        elif len(set(dtypes)) == 1:
            return args
        else:  # promote to the widest floating input
            target = max(dtypes, key=lambda d: d.itemsize)
        out = list(args)
        for i, d in zip(floats, dtypes):
            if d != target and not (policy == FLOAT32 and d.itemsize >= 4):
                out[i] = cast(args[i], target)
        return tuple(out)


def _current() -> dict:
    hook = getattr(_dispatch, "autocast", None)
    return dict(hook.dtypes) if isinstance(hook, _Caster) else {}


def is_autocast_enabled(device_type: str = "cpu") -> bool:
    """Whether ops on ``device_type`` are autocast on this thread now."""
    return _current().get(_device_kind(device_type)) is not None


def get_autocast_dtype(device_type: str = "cpu"):
    """The low-precision dtype autocast uses on ``device_type`` now (None when off)."""
    return _current().get(_device_kind(device_type))


class autocast:
    """Context manager (and decorator) for mixed-precision regions (PyTorch's ``torch.autocast``).

    Args:
        device_type: "cpu" or "gpu" ("cuda" is accepted as "gpu"): only ops on that
            kind of device are affected.
        dtype: the low-precision dtype, ``lucid.float16`` (default; "fp16") or
            "bfloat16" where the array library has it (NumPy and CuPy do not: error).
            PyTorch's CPU default is bfloat16; lucid's is float16 on every device.
        enabled: False leaves ops as they are inside the block (also inside an outer autocast).

    Use it around the forward pass and the loss only; run ``backward`` outside it.
    """

    def __init__(self, device_type: str, dtype: Any = None, enabled: bool = True):
        self.device_type = _device_kind(device_type)
        self.enabled = bool(enabled)
        self.fast_dtype = low_precision_dtype(np.float16 if dtype is None else dtype, device_type) if enabled else None
        self._previous: list = []

    def __enter__(self) -> "autocast":
        dtypes = _current() | {self.device_type: self.fast_dtype}
        hook = _Caster(dtypes) if any(d is not None for d in dtypes.values()) else None
        self._previous.append(set_autocast_hook(hook))
        return self

    def __exit__(self, *exc) -> bool:
        set_autocast_hook(self._previous.pop())
        return False

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self:
                return fn(*args, **kwargs)

        return wrapper
