"""Data parallelism over MPI: one process per core group or GPU, gradients all-reduced.

    import lucid.distributed as dist
    dist.init()                                   # world of one without a launcher
    model = dist.DistributedDataParallel(model)   # same weights everywhere, bucketed all-reduce
    loss.backward()                               # returns with every gradient averaged
    if model.finish():                            # False: a rank saw NaN/Inf, all ranks skip
        optimizer.step()

See docs/distributed.md.
"""
from lucid.distributed.buckets import Reducer, plan_buckets
from lucid.distributed.collectives import (
    ReduceOp,
    all_gather,
    all_gather_object,
    all_reduce,
    broadcast,
    broadcast_object,
    reduce_scatter,
)
from lucid.distributed.comm import (
    barrier,
    device,
    init,
    is_initialized,
    is_main,
    local_rank,
    local_size,
    new_group,
    rank,
    world_size,
)
from lucid.distributed.consistency import ReplicaCheck, ReplicasDiverged, SettingsMismatch, check_same_settings
from lucid.distributed.ddp import DistributedDataParallel
from lucid.distributed.failure import abort, abort_on_exit, nonfinite
from lucid.distributed.group import ProcessGroup
from lucid.distributed.launcher import find_mpiexec
from lucid.distributed.metrics import ClassificationMeter, reduce_sums
from lucid.distributed.sync_batchnorm import SyncBatchNorm, SyncBatchNormAct
from lucid.distributed.watchdog import watch

__all__ = [
    "find_mpiexec",
    "ClassificationMeter",
    "DistributedDataParallel",
    "ProcessGroup",
    "ReduceOp",
    "ReplicaCheck",
    "ReplicasDiverged",
    "Reducer",
    "SettingsMismatch",
    "SyncBatchNorm",
    "SyncBatchNormAct",
    "abort",
    "abort_on_exit",
    "all_gather",
    "all_gather_object",
    "all_reduce",
    "barrier",
    "broadcast",
    "broadcast_object",
    "check_same_settings",
    "device",
    "init",
    "is_initialized",
    "is_main",
    "local_rank",
    "local_size",
    "new_group",
    "nonfinite",
    "plan_buckets",
    "rank",
    "reduce_scatter",
    "reduce_sums",
    "watch",
    "world_size",
]
