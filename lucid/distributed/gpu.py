"""GPU paths: CUDA-aware MPI detection, pinned host staging, an NCCL communicator.

All of it plugs into the same bucket logic as the CPU path (``buckets.Reducer``)
through the transport interface of ``lucid.distributed.transport``:

- CUDA-aware MPI reads CuPy buffers directly (``MPITransport`` with a stream sync);
- otherwise ``StagedTransport`` copies each bucket into a pinned host buffer it keeps
  for that bucket, all-reduces it with MPI and copies it back when waited on;
- ``NCCLTransport`` runs ``ncclAllReduce`` on a side stream, bootstrapped by
  broadcasting NCCL's unique id over MPI.

``StagedTransport`` takes its copy and allocation functions as arguments so its
logic is tested with NumPy stand-ins on machines without a GPU.
"""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from typing import Any, Callable

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
        from mpi4py import MPI  # noqa: F401 - imported for its side effect: loads libmpi

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


# -- pinned staging ----------------------------------------------------------------


def _pinned_empty(size: int, dtype) -> np.ndarray:
    """A page-locked host array (fast, asynchronous host<->device copies)."""
    dtype = np.dtype(dtype)
    mem = _cupy().cuda.alloc_pinned_memory(max(size, 1) * dtype.itemsize)
    return np.frombuffer(mem, dtype, size)


def _device_to_host(device_array, host: np.ndarray) -> None:
    device_array.get(out=host, blocking=True)


def _host_to_device(host: np.ndarray, device_array) -> None:
    device_array.set(host)  # ordered on the current stream before later kernels


@dataclass
class _Staged:
    request: Any
    host: np.ndarray
    device: Any
    landed: bool = False


class StagedTransport:
    """All-reduce device buffers through host buffers kept per bucket (pinned on GPU).

    Args:
        comm: MPI communicator.
        alloc: ``(size, dtype) -> host array`` (pinned memory by default).
        to_host: ``(device_array, host)`` copy, complete on return.
        to_device: ``(host, device_array)`` copy.
    """

    def __init__(
        self,
        comm,
        alloc: Callable[[int, Any], np.ndarray] = _pinned_empty,
        to_host: Callable[[Any, np.ndarray], None] = _device_to_host,
        to_device: Callable[[np.ndarray, Any], None] = _host_to_device,
    ):
        self.comm = comm
        self.alloc, self.to_host, self.to_device = alloc, to_host, to_device
        self.host_buffers: dict[int, np.ndarray] = {}  # id(device buffer) -> its staging buffer

    def host_buffer(self, device_array) -> np.ndarray:
        """The staging buffer of this device buffer, allocated once and reused."""
        host = self.host_buffers.get(id(device_array))
        if host is None or host.size != device_array.size or host.dtype != device_array.dtype:
            host = self.alloc(device_array.size, device_array.dtype)
            self.host_buffers[id(device_array)] = host
        return host

    def start(self, buffer) -> _Staged:
        from mpi4py import MPI

        host = self.host_buffer(buffer)
        self.to_host(buffer, host)
        return _Staged(self.comm.Iallreduce(MPI.IN_PLACE, host, op=MPI.SUM), host, buffer)

    def test(self, handle: _Staged) -> bool:
        if not handle.landed and handle.request.Test():
            self._land(handle)
        return handle.landed

    def wait(self, handle: _Staged) -> None:
        if not handle.landed:
            handle.request.Wait()
            self._land(handle)

    def _land(self, handle: _Staged) -> None:
        """The reduced values back on the device, whether ``test`` or ``wait`` saw the end."""
        self.to_device(handle.host, handle.device)
        handle.landed = True


# -- NCCL ----------------------------------------------------------------------------


class NCCLTransport:
    """``ncclAllReduce`` on a side stream; waiting only orders the compute stream after it."""

    def __init__(self, comm):
        from cupy.cuda import nccl

        cp = _cupy()
        uid = nccl.get_unique_id() if comm.Get_rank() == 0 else None
        uid = comm.bcast(uid, root=0)
        self.nccl = nccl
        self.comm = nccl.NcclCommunicator(comm.Get_size(), uid, comm.Get_rank())
        self.stream = cp.cuda.Stream(non_blocking=True)
        self.dtypes = {
            np.dtype(np.float16): nccl.NCCL_FLOAT16,
            np.dtype(np.float32): nccl.NCCL_FLOAT32,
            np.dtype(np.float64): nccl.NCCL_FLOAT64,
        }

    def start(self, buffer):
        cp = _cupy()
        self.stream.wait_event(cp.cuda.get_current_stream().record())
        ptr = buffer.data.ptr
        self.comm.allReduce(ptr, ptr, buffer.size, self.dtypes[buffer.dtype], self.nccl.NCCL_SUM, self.stream.ptr)
        return self.stream.record()

    def test(self, event) -> bool:
        return bool(event.done)

    def wait(self, event) -> None:
        _cupy().cuda.get_current_stream().wait_event(event)
