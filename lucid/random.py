"""Seedable random numbers: one generator per device, seeded by ``lucid.manual_seed``.

The CPU generator is NumPy's PCG64; GPU draws use counter-based Philox streams.
Both states are plain JSON-able data, so checkpoints store and restore them exactly.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from lucid import _backend
from lucid.dtypes import DEFAULT_FLOAT, resolve_dtype

_cpu = np.random.Generator(np.random.PCG64(0))
_seed = 0
_gpu_calls: dict[str, int] = {}  # device -> draws made there since the seed


def manual_seed(seed: int) -> None:
    """Seed every device's generator."""
    global _cpu, _seed
    _seed = int(seed)
    _cpu = np.random.Generator(np.random.PCG64(_seed))
    _gpu_calls.clear()


def initial_seed() -> int:
    return _seed


def generator(device: str = "cpu", size: int = 0):
    """The generator for the next draw of ``size`` numbers on ``device``.

    On a GPU each draw gets its own counter-based Philox stream keyed by
    (seed, GPU index, draw number), so the whole GPU state is two integers per
    device that checkpoints store and restore exactly (cuRAND's own state lives
    in device memory, out of reach of a portable checkpoint).
    """
    if device == "cpu":
        return _cpu
    cp = _backend.cupy_module()
    calls = _gpu_calls.get(device, 0)
    _gpu_calls[device] = calls + 1
    bits = cp.random.Philox4x3210(seed=[_seed, _backend.gpu_index(device), calls], size=max(int(size), 1))
    return cp.random.Generator(bits)


def get_rng_state() -> dict:
    """Every generator's state (JSON-serialisable): the CPU PCG64 and the GPU draw counters."""
    return {"cpu": _cpu.bit_generator.state, "gpu": {"seed": _seed, "calls": dict(_gpu_calls)}}


def set_rng_state(state: dict) -> None:
    """Restore what ``get_rng_state`` returned (a bare PCG64 state is the CPU part alone)."""
    global _seed
    if "cpu" not in state:
        _cpu.bit_generator.state = state
        return
    _cpu.bit_generator.state = state["cpu"]
    _seed = int(state["gpu"]["seed"])
    _gpu_calls.clear()
    _gpu_calls.update({k: int(v) for k, v in state["gpu"]["calls"].items()})


def _draw(device: str, size, method: str, *args, **kwargs):
    """``generator(device).method(*args, size=size, **kwargs)`` with the result on ``device``."""
    n = int(np.prod(size)) if size is not None else 1
    with _backend.on_device(device):
        return getattr(generator(device, n), method)(*args, size=size, **kwargs)


def uniform_array(shape, dtype=DEFAULT_FLOAT, device: str = "cpu"):
    """Raw array of U[0, 1) draws on ``device`` (kernels use this, e.g. dropout)."""
    dtype = resolve_dtype(dtype)
    if dtype in (np.float32, np.float64):
        return _draw(device, shape, "random", dtype=dtype)
    return _draw(device, shape, "random", dtype=np.float32).astype(dtype)


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
    if dtype in (np.float32, np.float64):
        data = _draw(device, _shape(size), "standard_normal", dtype=dtype)
    else:
        data = _draw(device, _shape(size), "standard_normal", dtype=np.float32).astype(dtype)
    return _tensor(data, requires_grad)


def randint(low: int, high: int | None = None, size: Any = (), dtype: Any = "int64", device: Any = "cpu"):
    """Integers in [low, high) (or [0, low) when high is omitted), as torch.randint."""
    if high is None:
        low, high = 0, low
    device = _backend.parse_device(device)
    data = _draw(device, tuple(size), "integers", low, high, dtype=resolve_dtype(dtype))
    return _tensor(data, False)


def randperm(n: int, device: Any = "cpu"):
    """A random permutation of 0..n-1 (on a GPU: the argsort of uniform draws; CuPy has no permutation)."""
    device = _backend.parse_device(device)
    if device == "cpu":
        return _tensor(_cpu.permutation(n).astype("int64"), False)
    keys = _draw(device, (int(n),), "random")
    with _backend.on_device(device):
        return _tensor(keys.argsort().astype("int64"), False)


def normal_array(shape, mean: float, std: float, dtype, device: str):
    """Raw array of N(mean, std^2) draws (used by lucid.nn.init)."""
    data = _draw(device, shape, "standard_normal", dtype=np.float64 if dtype == np.float64 else np.float32)
    with _backend.on_device(device):
        return (data * std + mean).astype(dtype, copy=False)


def uniform_range_array(shape, low: float, high: float, dtype, device: str):
    """Raw array of U[low, high) draws (used by lucid.nn.init)."""
    data = uniform_array(shape, np.float64 if dtype == np.float64 else np.float32, device)
    with _backend.on_device(device):
        return (data * (high - low) + low).astype(dtype, copy=False)
