"""Which GPU this rank uses: ``local_rank mod GPUs``, chosen before MPI_Init when possible.

Some CUDA-aware MPI libraries set up their GPU support inside MPI_Init for the device
that is current then, so the device is selected first, from the local rank that the
launcher exports (Open MPI, MPICH/Hydra, PMI, Slurm). Launchers that export none get
the device after MPI_Init, from the shared-memory split of the world.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping

LOCAL_RANK_ENV = ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "PMI_LOCAL_RANK", "SLURM_LOCALID")


def launcher_local_rank(environ: Mapping[str, str] = os.environ) -> int | None:
    """The node-local rank the launcher exported, or None."""
    for name in LOCAL_RANK_ENV:
        value = environ.get(name, "").strip()
        if value:
            try:
                return int(value)
            except ValueError as exc:
                raise ValueError(f"${name} must be an integer local rank, got {value!r}") from exc
    return None


def use_gpu(local_rank: int) -> int | None:
    """Make GPU ``local_rank mod count`` current when CuPy sees GPUs; its index, or None."""
    from lucid import _backend

    if _backend._cupy is None and importlib.util.find_spec("cupy") is None:
        return None
    if not _backend.gpu_available():
        return None
    cp = _backend.cupy_module()
    index = local_rank % cp.cuda.runtime.getDeviceCount()
    cp.cuda.Device(index).use()
    return index


def select_before_mpi_init(environ: Mapping[str, str] = os.environ) -> int | None:
    """Select this rank's GPU from the launcher's local rank if MPI has not started yet."""
    if "mpi4py.MPI" in sys.modules:
        return None
    local = launcher_local_rank(environ)
    return None if local is None else use_gpu(local)
