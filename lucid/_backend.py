"""Array module per device: NumPy on "cpu", CuPy on "gpu"/"gpu:N".

Chainer's ``xp`` idiom: every kernel asks ``get_array_module(x)`` for the module of
its inputs and is written once against it. Everything that only exists on the GPU
(importing CuPy, device contexts, host/device copies) lives in this file.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np

VALID_DEVICES = ("cpu", "gpu", "gpu:N", "cuda", "cuda:N")
_DEVICE_RE = re.compile(r"^(cpu|gpu|cuda)(?::(\d+))?$")

_cupy: Any = None
_cupy_error: Exception | None = None


def cupy_module():
    """Import CuPy on first use; raise a clear error when it is not usable."""
    global _cupy, _cupy_error
    if _cupy is None and _cupy_error is None:
        try:
            import cupy  # imported here: optional dependency

            cupy.cuda.runtime.getDeviceCount()
            _cupy = cupy
        except Exception as exc:  # ImportError, CUDARuntimeError, ...
            _cupy_error = exc
    if _cupy is None:
        raise RuntimeError(
            "device 'gpu' needs CuPy and a CUDA GPU (pip install -e '.[gpu]' in a lucid checkout, "
            f"or pip install cupy-cuda12x): {_cupy_error}"
        )
    return _cupy


def gpu_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    try:
        cupy_module()
        return True
    except RuntimeError:
        return False


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
    if isinstance(array, np.ndarray) or _cupy is None:
        return "cpu"
    return f"gpu:{array.device.id}"


def to_device(array, device: str):
    """Copy ``array`` to ``device`` (no copy when it is already there)."""
    src = device_of(array)
    if src == device:
        return array
    if device == "cpu":
        return _cupy.asnumpy(array)
    cp = cupy_module()
    with cp.cuda.Device(int(device.split(":")[1])):
        return cp.asarray(array)


def asnumpy(array) -> np.ndarray:
    """A NumPy array with the values of ``array`` (copies from the GPU)."""
    if isinstance(array, np.ndarray):
        return array
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy.asnumpy(array)
    return np.asarray(array)


def scatter_add(xp, target, index, values) -> None:
    """``target[index] += values`` with repeated indices summed (np.add.at)."""
    if xp is np:
        np.add.at(target, index, values)
    else:
        import cupyx  # imported here: GPU only

        cupyx.scatter_add(target, index, values)
