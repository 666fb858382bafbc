"""Gradient transports, one file each, behind a small registry (``registry.py``).

=============  ======  ===============================================================
name           memory  how a bucket is summed
=============  ======  ===============================================================
"mpi"          CPU     ``MPI_Iallreduce`` on the NumPy buffer
"cuda_aware"   GPU     ``MPI_Iallreduce`` on the CuPy buffer (CUDA-aware MPI)
"staged"       GPU     device -> pinned host buffer -> ``MPI_Iallreduce`` -> device
"nccl"         GPU     ``ncclAllReduce`` on a side stream
=============  ======  ===============================================================

"auto" picks, the same on every rank, the first that runs on all of them: "mpi" on
CPU; "nccl", then "cuda_aware", then "staged" on GPU. A new transport subclasses
``base.Transport`` and calls ``register_backend``.
"""
from __future__ import annotations

from lucid.distributed.backends.base import Handle, Transport
from lucid.distributed.backends.cuda_aware import CudaAwareTransport
from lucid.distributed.backends.mpi import MPITransport
from lucid.distributed.backends.nccl import NCCLTransport
from lucid.distributed.backends.registry import (
    Backend,
    backend_names,
    choose_transport,
    decide,
    get_backend,
    local_report,
    register_backend,
)
from lucid.distributed.backends.staged import StagedTransport


def _no_gpu() -> str | None:
    from lucid import _backend

    return None if _backend.gpu_available() else "CuPy sees no usable GPU"


def _no_cuda_aware() -> str | None:
    from lucid.distributed import gpu

    return _no_gpu() or (
        None
        if gpu.cuda_aware_mpi()
        else "the MPI library does not report CUDA support (set LUCID_CUDA_AWARE_MPI=1 if it has it)"
    )


def _no_nccl() -> str | None:
    from lucid.distributed import gpu

    return _no_gpu() or (None if gpu.nccl_available() else "cupy.cuda.nccl is not usable (install nvidia-nccl-cu12)")


register_backend(Backend("mpi", "cpu", MPITransport, lambda: None, "MPI_Iallreduce on host buffers"), auto_rank=0)
register_backend(Backend("nccl", "gpu", NCCLTransport, _no_nccl, "ncclAllReduce on a side stream"), auto_rank=0)
register_backend(
    Backend("cuda_aware", "gpu", CudaAwareTransport, _no_cuda_aware, "MPI_Iallreduce on device buffers"), auto_rank=1
)
register_backend(Backend("staged", "gpu", StagedTransport, _no_gpu, "through pinned host buffers"), auto_rank=2)

__all__ = [
    "Backend",
    "CudaAwareTransport",
    "Handle",
    "MPITransport",
    "NCCLTransport",
    "StagedTransport",
    "Transport",
    "backend_names",
    "choose_transport",
    "decide",
    "get_backend",
    "local_report",
    "register_backend",
]
