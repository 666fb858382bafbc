"""Seedable random numbers: one generator per device, seeded by ``lucid.manual_seed``.

The CPU generator is NumPy's PCG64; its state is plain JSON-able data, so
checkpoints can store and restore it exactly.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from lucid import _backend
from lucid.dtypes import DEFAULT_FLOAT, resolve_dtype

_cpu = np.random.Generator(np.random.PCG64(0))
_gpu: dict[str, Any] = {}
_seed = 0


def manual_seed(seed: int) -> None:
    """Seed every device's generator (the GPU ones lazily, from the same seed)."""
    global _cpu, _seed
    _seed = int(seed)
    _cpu = np.random.Generator(np.random.PCG64(_seed))
    _gpu.clear()


def initial_seed() -> int:
    return _seed


def generator(device: str = "cpu"):
    """The generator that draws numbers for ``device``."""
    if device == "cpu":
        return _cpu
    if device not in _gpu:
        cp = _backend.cupy_module()
        with cp.cuda.Device(int(device.split(":")[1])):
            _gpu[device] = cp.random.Generator(cp.random.XORWOW(_seed))
    return _gpu[device]


def get_rng_state() -> dict:
    """The CPU generator's state (JSON-serialisable)."""
    return _cpu.bit_generator.state


def set_rng_state(state: dict) -> None:
    _cpu.bit_generator.state = state


def uniform_array(shape, dtype=DEFAULT_FLOAT, device: str = "cpu"):
    """Raw array of U[0, 1) draws on ``device`` (kernels use this, e.g. dropout)."""
    dtype = resolve_dtype(dtype)
    gen = generator(device)
    if dtype in (np.float32, np.float64):
        return gen.random(shape, dtype=dtype)
    return gen.random(shape, dtype=np.float32).astype(dtype)


def _tensor(data, requires_grad: bool):
    from lucid.tensor import Tensor

    t = Tensor._wrap(data, _backend.device_of(data))
    t.requires_grad = requires_grad
    return t


def _shape(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = size[0]
    return tuple(int(s) for s in size)


def rand(*size, dtype: Any = None, device: Any = "cpu", requires_grad: bool = False):
    """Uniform samples on [0, 1)."""
    device = _backend.parse_device(device)
    return _tensor(uniform_array(_shape(size), resolve_dtype(dtype) or DEFAULT_FLOAT, device), requires_grad)


def randn(*size, dtype: Any = None, device: Any = "cpu", requires_grad: bool = False):
    """Standard normal samples."""
    device = _backend.parse_device(device)
    dtype = resolve_dtype(dtype) or DEFAULT_FLOAT
    gen = generator(device)
    if dtype in (np.float32, np.float64):
        data = gen.standard_normal(_shape(size), dtype=dtype)
    else:
        data = gen.standard_normal(_shape(size), dtype=np.float32).astype(dtype)
    return _tensor(data, requires_grad)


def randint(low: int, high: int | None = None, size: Any = (), dtype: Any = "int64", device: Any = "cpu"):
    """Integers in [low, high) (or [0, low) when high is omitted), as torch.randint."""
    if high is None:
        low, high = 0, low
    device = _backend.parse_device(device)
    data = generator(device).integers(low, high, size=tuple(size), dtype=resolve_dtype(dtype))
    return _tensor(data, False)


def randperm(n: int, device: Any = "cpu"):
    device = _backend.parse_device(device)
    return _tensor(generator(device).permutation(n).astype("int64"), False)


def normal_array(shape, mean: float, std: float, dtype, device: str):
    """Raw array of N(mean, std^2) draws (used by lucid.nn.init)."""
    gen = generator(device)
    data = gen.standard_normal(shape, dtype=np.float64 if dtype == np.float64 else np.float32)
    return (data * std + mean).astype(dtype, copy=False)


def uniform_range_array(shape, low: float, high: float, dtype, device: str):
    """Raw array of U[low, high) draws (used by lucid.nn.init)."""
    data = uniform_array(shape, np.float64 if dtype == np.float64 else np.float32, device)
    return (data * (high - low) + low).astype(dtype, copy=False)
