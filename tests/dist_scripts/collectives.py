"""Every collective on arrays, tensors and numbers; reports what each rank got."""
import os

import numpy as np
from script_io import report

import lucid
import lucid.distributed as dist

dist.init()
r, w = dist.rank(), dist.world_size()
out = {}

a = np.array([r + 1.0, 2.0 * (r + 1)])
out["sum"] = dist.all_reduce(a, "sum")
t = lucid.tensor([float(r), 10.0 * r], dtype=lucid.float64)
returned = dist.all_reduce(t, dist.ReduceOp.MEAN)
out["mean_tensor"] = t.numpy()
out["mean_returns_same"] = returned is t
out["max"] = dist.all_reduce(np.array([r, -r], dtype=np.int64), "max")
out["min"] = dist.all_reduce(np.array([r, -r], dtype=np.int32), "min")
out["scalar_sum"] = dist.all_reduce(r + 1)
out["scalar_mean"] = dist.all_reduce(r, "mean")
base = np.arange(6.0).reshape(2, 3) * (r + 1)
view = base.T  # not contiguous: reduced through a copy, written back in place
dist.all_reduce(view, "sum")
out["noncontig"] = base
try:
    dist.all_reduce(np.array([1, 2]), "mean")
    out["int_mean_error"] = None
except TypeError as exc:
    out["int_mean_error"] = str(exc)

b = np.full(3, float(r))
dist.broadcast(b, src=w - 1)
out["broadcast"] = b
out["broadcast_scalar"] = dist.broadcast(100 + r, src=0)

gathered = dist.all_gather(np.full((r + 1, 2), r, dtype=np.int64))
out["gather_shapes"] = [g.shape for g in gathered]
out["gather_values"] = [g.tolist() for g in gathered]
gt = dist.all_gather(lucid.tensor([float(r)]))
out["gather_tensor_types"] = [type(g).__name__ for g in gt]
out["gather_tensor"] = [g.item() for g in gt]
try:
    dist.all_gather(np.zeros((1, 2 + (r > 0))))
    out["gather_mismatch"] = None
except ValueError as exc:
    out["gather_mismatch"] = str(exc)

x = np.arange(14.0).reshape(7, 2) * (r + 1)
out["reduce_scatter"] = dist.reduce_scatter(x, "sum")
out["reduce_scatter_mean"] = dist.reduce_scatter(lucid.tensor(x), "mean").numpy()

out["bcast_obj"] = dist.broadcast_object({"from": r, "list": [r]}, src=0)
out["gather_obj"] = dist.all_gather_object(("rank", r))
out["world"] = [dist.rank(), dist.world_size(), dist.local_rank(), dist.local_size(), dist.is_main()]
from threadpoolctl import threadpool_info  # noqa: E402

out["thread_limit"] = dist.comm.world().threads
out["blas_threads"] = sorted({pool["num_threads"] for pool in threadpool_info()})
out["cores_bound"] = len(os.sched_getaffinity(0))
out["kernel_threads"] = __import__("lucid.ops.blocked", fromlist=["num_workers"]).num_workers()
dist.barrier()
report(r, **out)
