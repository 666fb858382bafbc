"""GPU helpers: CUDA-aware MPI detection, NCCL availability, stream sync, pinned memory.

The GPU transports themselves live in ``lucid.distributed.backends`` (cuda_aware,
staged, nccl); collectives use ``to_mpi_buffer`` for CuPy arrays.
"""
from __future__ import annotations

import ctypes
import os

import numpy as np

_cuda_aware: bool | None = None


def _libmpi():
    """The MPI shared library mpi4py loaded (Linux: found in /proc/self/maps)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "libmpi" in line and ".so" in line})
    except OSError:
        return None
    for path in paths:
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def cuda_aware_mpi() -> bool:
    """Whether the MPI library accepts CUDA device buffers.

    ``$LUCID_CUDA_AWARE_MPI`` = 1/0 decides when set; otherwise the library is asked
    (Open MPI and MPICH: ``MPIX_Query_cuda_support``; MPICH: ``MPIX_GPU_query_support``).
    """
    global _cuda_aware
    env = os.environ.get("LUCID_CUDA_AWARE_MPI")
    if env in ("0", "1"):
        return env == "1"
    if _cuda_aware is None:
        from mpi4py import MPI  # noqa: F401 - loads libmpi

        lib = _libmpi()
        _cuda_aware = False
        if lib is not None and hasattr(lib, "MPIX_Query_cuda_support"):
            _cuda_aware = bool(lib.MPIX_Query_cuda_support())
        elif lib is not None and hasattr(lib, "MPIX_GPU_query_support"):
            flag = ctypes.c_int(0)
            _cuda_aware = lib.MPIX_GPU_query_support(0, ctypes.byref(flag)) == 0 and bool(flag.value)
    return _cuda_aware


def nccl_available() -> bool:
    try:
        from cupy.cuda import nccl

        return nccl.available if hasattr(nccl, "available") else True
    except Exception:  # ImportError, or CuPy built without NCCL
        return False


def _cupy():
    from lucid import _backend

    return _backend.cupy_module()


def sync_current_stream() -> None:
    """Block until the compute stream has finished (MPI then reads final values)."""
    _cupy().cuda.get_current_stream().synchronize()


def is_device_array(array) -> bool:
    return not isinstance(array, np.ndarray) and hasattr(array, "__cuda_array_interface__")


def to_mpi_buffer(array):
    """A buffer MPI can read for ``array``: itself when CUDA-aware, else a host copy."""
    if cuda_aware_mpi():
        sync_current_stream()
        return array
    return _cupy().asnumpy(array)


# -- pinned host memory ----------------------------------------------------------


def pinned_empty(size: int, dtype) -> np.ndarray:
    """A page-locked host array (fast, asynchronous host<->device copies)."""
    dtype = np.dtype(dtype)
    mem = _cupy().cuda.alloc_pinned_memory(max(size, 1) * dtype.itemsize)
    return np.frombuffer(mem, dtype, size)
