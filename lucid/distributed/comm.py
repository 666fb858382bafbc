"""The world of processes: init, rank, world size, node-local rank, thread limits, groups.

``init()`` starts MPI through mpi4py (a world of one when no launcher started the
process), splits off the ranks sharing this node's memory to learn the local rank,
limits BLAS/OpenMP threads so N ranks on a node don't oversubscribe its cores,
installs the failure handler (an uncaught exception aborts the whole job), tunes
malloc for training (``lucid._malloc``; ``malloc_tuning=False`` or
``LUCID_MALLOC_TUNING=0`` leave it) and, on GPU machines, makes device ``local_rank``
current. ``new_group(ranks)`` makes a process group; ``resolve(None)`` is the world's.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Sequence

from lucid.distributed import failure, watchdog
from lucid.distributed.group import ProcessGroup, check_ranks

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
    group: ProcessGroup = field(init=False)  # every rank: the default process group

    def __post_init__(self) -> None:
        self.group = ProcessGroup(self.comm, range(self.size))


_world: World | None = None


def init(
    limit_threads: bool = True,
    watchdog_timeout: float | None = None,
    abort_on_error: bool = True,
    malloc_tuning: bool = True,
) -> World:
    """Start (or return) the distributed world; safe to call many times.

    Args:
        limit_threads: cap BLAS/OpenMP threads at ``cores_per_node // local_size``
            unless one of OMP/OPENBLAS/MKL/BLIS_NUM_THREADS is set.
        watchdog_timeout: seconds a collective may wait before the job is aborted
            with a message naming it (default: ``$LUCID_DIST_TIMEOUT`` or off).
        abort_on_error: an uncaught exception on any rank aborts every rank.
        malloc_tuning: keep freed large arrays for reuse (``lucid._malloc.tune``);
            ``$LUCID_MALLOC_TUNING=0`` turns it off too.
    """
    global _world
    if _world is not None:
        if watchdog_timeout:  # a later call may still arm (or re-arm) the watchdog
            watchdog.start(watchdog_timeout, on_timeout=failure.abort)
        return _world
    if malloc_tuning:
        from lucid import _malloc

        _malloc.tune()
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
        failure.install_excepthook()
    timeout = watchdog_timeout if watchdog_timeout is not None else _env_float("LUCID_DIST_TIMEOUT")
    if timeout:
        watchdog.start(timeout, on_timeout=failure.abort)
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


def resolve(group: ProcessGroup | None) -> ProcessGroup:
    """``group``, or the world group when None."""
    if group is None:
        return world().group
    if not isinstance(group, ProcessGroup):
        raise TypeError(f"group must be a lucid.distributed.ProcessGroup or None, got {type(group).__name__}")
    return group


def new_group(ranks: Sequence[int] | None = None) -> ProcessGroup:
    """A process group of the world ranks ``ranks`` (all when None); collective over the world.

    Every rank calls it with the same list. Group ranks follow ascending world ranks
    (as in PyTorch). On a rank outside the group the result has ``is_member`` False
    and collectives on it raise. Lists that differ between ranks, ranks out of range,
    duplicates or an empty list raise the same ValueError on every rank.
    """
    from mpi4py import MPI

    w = world()
    try:
        mine: Any = list(range(w.size)) if ranks is None else [_plain(x) for x in ranks]
    except TypeError:
        mine = f"{ranks!r} ({type(ranks).__name__})"  # checked below, on every rank alike
    with watchdog.watch("new_group"):
        requested = w.comm.allgather(mine)
    members = check_ranks(requested, w.size)
    member = w.rank in members
    sub = w.comm.Split(0 if member else MPI.UNDEFINED, key=w.rank)
    return ProcessGroup(sub if member else None, members)


def _plain(x: Any) -> Any:
    """NumPy integers as ints; anything else as given (check_ranks names it)."""
    return int(x) if hasattr(x, "__index__") and not isinstance(x, bool) else x


def rank(group: ProcessGroup | None = None) -> int:
    """This process's index in the job (or in ``group``), 0 .. world_size(group)-1."""
    return world().rank if group is None else resolve(group).rank


def world_size(group: ProcessGroup | None = None) -> int:
    """Number of processes in the job (1 without a launcher), or in ``group``."""
    return world().size if group is None else resolve(group).size


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


def barrier(group: ProcessGroup | None = None) -> None:
    """Wait until every rank (of ``group``) arrives."""
    comm = resolve(group).member_comm("barrier")
    with watchdog.watch("barrier"):
        comm.Barrier()
