"""Process groups under mpiexec -n 3: bad ranks fail on every rank; collectives, metrics,
SyncBatchNorm and DDP over the group [0, 2] leave rank 1 out.

    groups.py MODE     MODE: range | duplicate | differ | notalist | use
"""
import sys

import numpy as np
from script_io import report

import lucid
import lucid.distributed as dist
import lucid.nn as nn
import lucid.optim as optim

MODE = sys.argv[1]
dist.init()
r, w = dist.rank(), dist.world_size()

if MODE != "use":
    ranks = {
        "range": [0, w + 2],
        "duplicate": [0, 1, 1],
        "differ": [0, 1] if r == 0 else [0, 2],
        "notalist": 7,
    }[MODE]
    try:
        dist.new_group(ranks)
        report(r, error=None)
    except (ValueError, TypeError) as exc:
        report(r, error=f"{type(exc).__name__}: {exc}")
    sys.exit(0)

g = dist.new_group([2, 0])  # given unsorted: group ranks follow world ranks
out = {"is_member": g.is_member, "ranks": list(g.ranks)}
if g.is_member:
    out["group_rank"] = dist.rank(g)
    out["group_size"] = dist.world_size(g)
    out["sum"] = dist.all_reduce(np.array([float(r + 1)]), group=g).tolist()
    out["gathered"] = dist.all_gather_object(r, group=g)
    out["metrics"] = dist.reduce_sums({"n": r + 1.0}, group=g)
    # SyncBatchNorm over the group: batch statistics of ranks 0 and 2 only
    bn = dist.SyncBatchNorm(2, process_group=g).double()
    x = np.arange(12.0).reshape(6, 2) * (r + 1)
    bn(lucid.tensor(x))
    both = np.concatenate([np.arange(12.0).reshape(6, 2) * k for k in (1, 3)])
    out["bn_mean_err"] = float(np.abs(bn.running_mean.numpy() - 0.1 * both.mean(0)).max())
    # DDP over the group: the members' replicas step together
    lucid.manual_seed(10 + r)
    model = nn.Linear(3, 2).double()
    ddp = dist.DistributedDataParallel(model, process_group=g)
    opt = optim.SGD(ddp.parameters(), lr=0.5)
    w0, b0 = model.weight.detach().numpy().copy(), model.bias.detach().numpy().copy()
    y = ddp(lucid.tensor(np.full((2, 3), r + 1.0)))
    (y * y).sum().backward()
    opt.step()
    out["weights"] = model.weight.detach().numpy().tolist()
    grads = []  # one process: d/dW sum(y^2) on each member's batch, averaged
    for k in (1.0, 3.0):
        xk = np.full((2, 3), k)
        grads.append(2 * (xk @ w0.T + b0).T @ xk)
    out["ref_err"] = float(np.abs(model.weight.detach().numpy() - (w0 - 0.5 * np.mean(grads, 0))).max())
else:
    try:
        dist.all_reduce(np.ones(1), group=g)
        out["error"] = None
    except ValueError as exc:
        out["error"] = str(exc)
dist.barrier()  # the world still works after the group's traffic
report(r, **out)
