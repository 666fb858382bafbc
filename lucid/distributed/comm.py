"""The world of processes: init, rank, world size, node-local rank, thread limits.

``init()`` starts MPI through mpi4py (a world of one when no launcher started the
process), splits off the ranks sharing this node's memory to learn the local rank,
limits BLAS/OpenMP threads so N ranks on a node don't oversubscribe its cores,
installs the failure handler (an uncaught exception aborts the whole job) and, on
GPU machines, makes device ``local_rank`` current.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

# Environment variables by which a user states thread counts; init() then leaves them.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


@dataclass
class World:
    """What init() learned about this process's place in the job."""

    comm: Any  # MPI.COMM_WORLD
    local_comm: Any  # ranks sharing this node's memory
    rank: int
    size: int
    local_rank: int
    local_size: int
    threads: int | None  # BLAS/OpenMP limit init() applied (None: left as the user set it)
    thread_limiter: Any = None  # keeps threadpoolctl's limit alive


_world: World | None = None


def init(limit_threads: bool = True, watchdog_timeout: float | None = None, abort_on_error: bool = True) -> World:
    """Start (or return) the distributed world; safe to call many times.

    Args:
        limit_threads: cap BLAS/OpenMP threads at ``cores_per_node // local_size``
            unless one of OMP/OPENBLAS/MKL/BLIS_NUM_THREADS is set.
        watchdog_timeout: seconds a collective may wait before the job is aborted
            with a message naming it (default: ``$LUCID_DIST_TIMEOUT`` or off).
        abort_on_error: an uncaught exception on any rank aborts every rank.
    """
    global _world
    if _world is not None:
        if watchdog_timeout:  # a later call may still arm (or re-arm) the watchdog
            from lucid.distributed import watchdog

            watchdog.start(watchdog_timeout)
        return _world
    from lucid.distributed import local_gpu

    chosen = local_gpu.select_before_mpi_init()
    from mpi4py import MPI  # imported here: start MPI only when asked

    comm = MPI.COMM_WORLD
    from lucid.distributed.launcher import check_world

    check_world(comm.Get_size())
    local = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
    world = World(comm, local, comm.Get_rank(), comm.Get_size(), local.Get_rank(), local.Get_size(), None)
    if limit_threads:
        _limit_threads(world)
    _world = world
    if abort_on_error:
        from lucid.distributed import failure

        failure.install_excepthook()
    timeout = watchdog_timeout if watchdog_timeout is not None else _env_float("LUCID_DIST_TIMEOUT")
    if timeout:
        from lucid.distributed import watchdog

        watchdog.start(timeout)
    if chosen is None:
        local_gpu.use_gpu(world.local_rank)  # fallback: the shared-memory split's local rank
    return world


def _limit_threads(world: World) -> None:
    """One share of the node's cores per local rank, unless the user chose."""
    if any(os.environ.get(v) for v in THREAD_ENV_VARS):
        return
    from threadpoolctl import threadpool_limits

    from lucid.ops import blocked

    cores = os.cpu_count() or 1
    world.threads = max(1, cores // world.local_size)
    world.thread_limiter = threadpool_limits(limits=world.threads)
    blocked.set_num_threads(world.threads)  # lucid's own threaded kernels take the same share


def _env_float(name: str) -> float | None:
    value = os.environ.get(name)
    if not value:
        return None
    try:
        return float(value)
    except ValueError as exc:
        raise ValueError(f"${name} must be a number of seconds, got {value!r}") from exc


def world() -> World:
    """The initialised world (init() runs on first use)."""
    return _world if _world is not None else init()


def is_initialized() -> bool:
    return _world is not None


def rank() -> int:
    """This process's index in the job, 0 .. world_size()-1."""
    return world().rank


def world_size() -> int:
    """Number of processes in the job (1 without a launcher)."""
    return world().size


def local_rank() -> int:
    """This process's index among the ranks on its node."""
    return world().local_rank


def local_size() -> int:
    """Number of ranks on this node."""
    return world().local_size


def is_main() -> bool:
    """True on rank 0: the one that logs, prints and commits checkpoints."""
    return world().rank == 0


def device(require_gpu: bool = False) -> str:
    """This rank's device: "gpu:<local_rank mod GPUs>" when a GPU is usable, else "cpu".

    ``require_gpu``: raise instead, naming what is missing (CuPy, a CUDA device, the driver).
    """
    from lucid import _backend

    w = world()
    if require_gpu:
        _backend.cupy_module()
    elif not _backend.gpu_available():
        return "cpu"
    return f"gpu:{w.local_rank % _backend.cupy_module().cuda.runtime.getDeviceCount()}"


def barrier() -> None:
    """Wait until every rank arrives."""
    from lucid.distributed.watchdog import watch

    with watch("barrier"):
        world().comm.Barrier()
