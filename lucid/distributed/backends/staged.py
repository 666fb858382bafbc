"""Staged: device buffer -> pinned host buffer -> ``MPI_Iallreduce`` -> back to the device.

The GPU route when MPI is not CUDA-aware and NCCL is missing. Each bucket keeps its
host buffer (allocated once). The copy back to the device is the transport's landing
step, so it happens whether the request completes in ``test()`` or in ``wait()``.
Copy and allocation functions are arguments: the logic runs with NumPy stand-ins.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from lucid.distributed.backends.mpi import MPITransport


def _pinned_empty(size: int, dtype) -> np.ndarray:
    from lucid.distributed import gpu

    return gpu.pinned_empty(size, dtype)


def _device_to_host(device_array, host: np.ndarray) -> None:
    device_array.get(out=host, blocking=True)


def _host_to_device(host: np.ndarray, device_array) -> None:
    device_array.set(host)  # ordered on the current stream before later kernels


@dataclass
class _Staged:
    request: Any
    host: np.ndarray
    device: Any


class StagedTransport(MPITransport):
    """All-reduce device buffers through host buffers kept per bucket (pinned on GPU).

    Args:
        comm: MPI communicator.
        alloc: ``(size, dtype) -> host array`` (pinned memory by default).
        to_host: ``(device_array, host)`` copy, complete on return.
        to_device: ``(host, device_array)`` copy.
    """

    name = "staged"

    def __init__(
        self,
        comm,
        alloc: Callable[[int, Any], np.ndarray] = _pinned_empty,
        to_host: Callable[[Any, np.ndarray], None] = _device_to_host,
        to_device: Callable[[np.ndarray, Any], None] = _host_to_device,
    ):
        super().__init__(comm)
        self.alloc, self.to_host, self.to_device = alloc, to_host, to_device
        self.host_buffers: dict[int, np.ndarray] = {}  # id(device buffer) -> its staging buffer

    def host_buffer(self, device_array) -> np.ndarray:
        """The staging buffer of this device buffer, allocated once and reused."""
        host = self.host_buffers.get(id(device_array))
        if host is None or host.size != device_array.size or host.dtype != device_array.dtype:
            host = self.alloc(device_array.size, device_array.dtype)
            self.host_buffers[id(device_array)] = host
        return host

    def _start(self, buffer) -> _Staged:
        host = self.host_buffer(buffer)
        self.to_host(buffer, host)
        return _Staged(self.iallreduce(host), host, buffer)

    def _test(self, staged: _Staged) -> bool:
        return staged.request.Test()

    def _wait(self, staged: _Staged) -> None:
        staged.request.Wait()

    def _land(self, staged: _Staged) -> None:
        self.to_device(staged.host, staged.device)
