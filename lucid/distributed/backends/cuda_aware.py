"""CUDA-aware MPI: ``MPI_Iallreduce`` straight on CuPy buffers, after syncing the compute stream."""
from __future__ import annotations

from typing import Any, Callable

from lucid.distributed.backends.mpi import MPITransport


def _sync_current_stream() -> None:
    from lucid.distributed import gpu

    gpu.sync_current_stream()


class CudaAwareTransport(MPITransport):
    """MPI reads device memory itself; ``before_start`` (the stream sync) makes it read final values."""

    name = "cuda_aware"

    def __init__(self, comm, before_start: Callable[[], None] = _sync_current_stream):
        super().__init__(comm)
        self.before_start = before_start

    def _start(self, buffer) -> Any:
        self.before_start()
        return self.iallreduce(buffer)
