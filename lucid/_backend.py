"""Array module per device: NumPy on "cpu", CuPy on "gpu"/"gpu:N".

Chainer's ``xp`` idiom: every kernel asks ``get_array_module(x)`` for the module of
its inputs and is written once against it. Everything that only exists on the GPU
(importing CuPy, device contexts, host/device copies) lives in this file.
"""
from __future__ import annotations

import contextlib
import re
from typing import Any

import numpy as np

VALID_DEVICES = ("cpu", "gpu", "gpu:N", "cuda", "cuda:N")
_DEVICE_RE = re.compile(r"^(cpu|gpu|cuda)(?::(\d+))?$")

MIN_CUPY = (13, 0)
_cupy: Any = None
_cupy_error: str | None = None
_gpu_count = 0


def _load_cupy() -> tuple[Any, str | None]:
    """Import CuPy and look for a GPU; the module or why it is not usable."""
    try:
        import cupy
    except ImportError as exc:
        return None, (
            f"CuPy is not installed ({exc}); install it with pip install -e '.[gpu]' in a lucid checkout "
            "(or pip install 'cupy-cuda12x[ctk]' nvidia-nccl-cu12)"
        )
    version = tuple(int(v) for v in re.findall(r"\d+", cupy.__version__)[:2])
    if version < MIN_CUPY:
        return None, f"CuPy {cupy.__version__} is too old; lucid needs CuPy >= {'.'.join(map(str, MIN_CUPY))}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError
        if "NoDevice" in str(exc) or "no CUDA-capable device" in str(exc):
            return None, f"no CUDA device is visible to CuPy {cupy.__version__} ({exc})"
        return None, f"the CUDA driver/runtime failed ({exc}); check nvidia-smi and the driver version"
    if count == 0:
        return None, "no CUDA device is visible to CuPy"
    return cupy, None


def cupy_module():
    """CuPy, imported on first use; a RuntimeError naming what is missing otherwise."""
    global _cupy, _cupy_error, _gpu_count
    if _cupy is None and _cupy_error is None:
        _cupy, _cupy_error = _load_cupy()
        if _cupy is not None:
            _gpu_count = _cupy.cuda.runtime.getDeviceCount()
    if _cupy is None:
        raise RuntimeError(f"device 'gpu' is not usable: {_cupy_error}")
    return _cupy


def use_cupy(module) -> Any:
    """Use ``module`` as CuPy from now on (the test suite's fake device); returns the previous one."""
    global _cupy, _cupy_error, _gpu_count
    prev = _cupy
    _cupy, _cupy_error = module, None
    _gpu_count = module.cuda.runtime.getDeviceCount() if module is not None else 0
    return prev


def gpu_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    try:
        cupy_module()
        return True
    except RuntimeError:
        return False


def gpu_index(device: str) -> int:
    """The GPU number of a parsed "gpu:N", checked against the GPUs present."""
    cupy_module()
    index = int(device.split(":")[1])
    if index >= _gpu_count:
        raise ValueError(f"device {device!r} does not exist: {_gpu_count} GPU(s) present (gpu:0..gpu:{_gpu_count - 1})")
    return index


def on_device(device: str):
    """Context in which new arrays and kernels go to ``device`` (nothing to do for "cpu")."""
    if device == "cpu":
        return contextlib.nullcontext()
    return cupy_module().cuda.Device(gpu_index(device))


def parse_device(device: Any) -> str:
    """Normalise a device spec to "cpu" or "gpu:N"; reject anything else."""
    if device is None:
        return "cpu"
    m = _DEVICE_RE.match(str(device).strip().lower())
    if m is None:
        raise ValueError(f"unknown device {device!r}; valid devices: {', '.join(VALID_DEVICES)}")
    if m.group(1) == "cpu":
        if m.group(2) is not None:
            raise ValueError(f"unknown device {device!r}; valid devices: {', '.join(VALID_DEVICES)}")
        return "cpu"
    return f"gpu:{int(m.group(2) or 0)}"


def get_array_module(*arrays):
    """The array module of ``arrays``: numpy, or cupy when any of them is a CuPy array.

    A single device string (already parsed: "cpu" or "gpu:N") gives the module that
    holds data on that device. The one lookup of the ``xp`` idiom, used everywhere.
    """
    if len(arrays) == 1 and isinstance(arrays[0], str):
        return np if arrays[0] == "cpu" else cupy_module()
    if _cupy is not None:
        return _cupy.get_array_module(*arrays)
    return np


def device_of(array) -> str:
    """The device string of a NumPy or CuPy array."""
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return f"gpu:{array.device.id}"
    return "cpu"


def to_device(array, device: str):
    """Copy ``array`` to ``device`` (no copy when it is already there)."""
    src = device_of(array)
    if src == device:
        return array
    if device == "cpu":
        return _cupy.asnumpy(array)
    with on_device(device):
        if src != "cpu":  # gpu:i -> gpu:j: asarray would hand back the gpu:i array unchanged
            return cupy_module().copy(array)
        return cupy_module().asarray(array)


def asnumpy(array) -> np.ndarray:
    """A NumPy array with the values of ``array`` (copies from the GPU)."""
    if isinstance(array, np.ndarray):
        return array
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy.asnumpy(array)
    return np.asarray(array)


def scatter_add(xp, target, index, values) -> None:
    """``target[index] += values`` with repeated indices summed (np.add.at)."""
    xp.add.at(target, index, values)
