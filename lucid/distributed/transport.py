"""Transports: how one flat gradient bucket is summed over all ranks, without blocking.

A transport has three methods the bucket logic (``buckets.Reducer``) calls and
nothing else: ``start(buffer) -> handle`` begins an in-place sum all-reduce,
``test(handle) -> bool`` drives it forward and says whether it is done, and
``wait(handle)`` blocks until the reduced values are in ``buffer``. The CPU path is
``MPITransport``; the GPU ones (CUDA-aware MPI, pinned host staging, NCCL) live in
``lucid.distributed.gpu`` and share every other piece of logic.
"""
from __future__ import annotations

from typing import Any, Callable

BACKENDS = ("auto", "mpi", "nccl")


class MPITransport:
    """``MPI_Iallreduce`` in place on a private communicator.

    Args:
        comm: the communicator (DDP passes a duplicate of COMM_WORLD so its
            bucket traffic never interleaves with other collectives).
        before_start: called before each start (the CUDA-aware path syncs the
            compute stream there so MPI reads finished gradients).
    """

    def __init__(self, comm, before_start: Callable[[], None] | None = None):
        self.comm = comm
        self.before_start = before_start

    def start(self, buffer) -> Any:
        from mpi4py import MPI

        if self.before_start is not None:
            self.before_start()
        return self.comm.Iallreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)

    def test(self, handle) -> bool:
        return handle.Test()

    def wait(self, handle) -> None:
        handle.Wait()


def make_transport(backend: str, device: str, comm):
    """The transport for gradients on ``device``.

    "mpi": MPI on host arrays; on GPU directly when the MPI library is CUDA-aware,
    else through pinned host buffers. "nccl": NCCL (GPU only). "auto": NCCL on GPU
    when CuPy has it, otherwise "mpi".
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if device == "cpu":
        if backend == "nccl":
            raise ValueError("backend='nccl' needs parameters on a GPU; these are on 'cpu'")
        return MPITransport(comm)
    from lucid.distributed import gpu  # imported here: GPU only

    if backend == "nccl" or (backend == "auto" and gpu.nccl_available()):
        return gpu.NCCLTransport(comm)
    if gpu.cuda_aware_mpi():
        return MPITransport(comm, before_start=gpu.sync_current_stream)
    return gpu.StagedTransport(comm)
