"""SyncBatchNorm on each rank's slice vs BatchNorm2d on the concatenated batch.

    syncbn_check.py SIZES DTYPE NDIM [act]   e.g. "3,1,4" float64 4  (one local batch size per rank)

With "act": BatchNormAct2d (BatchNorm + fused ReLU) vs its SyncBatchNorm.convert_sync_batchnorm
conversion (a SyncBatchNormAct), 4-D input only.
"""
import sys

import numpy as np
from script_io import report

import lucid
import lucid.distributed as dist
import lucid.nn as nn

sizes = [int(s) for s in sys.argv[1].split(",")]
dtype, ndim = sys.argv[2], int(sys.argv[3])
act = sys.argv[4:] == ["act"]
dist.init()
r, w = dist.rank(), dist.world_size()
assert len(sizes) == w
n, c = sum(sizes), 3
rng = np.random.default_rng(5)
shape = (n, c, 4, 5) if ndim == 4 else (n, c)
x = (rng.standard_normal(shape) * 3 + 10).astype(dtype)  # |mean| >> std: variance precision matters
g = rng.standard_normal(shape).astype(dtype)
rows = slice(sum(sizes[:r]), sum(sizes[: r + 1]))


def make(cls):
    lucid.manual_seed(0)
    m = cls(c).to(dtype)
    m.weight.data[...] = np.array([0.5, 2.0, -1.0])
    m.bias.data[...] = np.array([0.1, 0.0, -0.3])
    return m


if act:
    bn, sbn = make(nn.BatchNormAct2d), dist.SyncBatchNorm.convert_sync_batchnorm(make(nn.BatchNormAct2d))
    assert type(sbn) is dist.SyncBatchNormAct
else:
    bn, sbn = make(nn.BatchNorm2d), make(dist.SyncBatchNorm)
xs = lucid.tensor(x, requires_grad=True)
ys = bn(xs) if ndim == 4 else None
xl = lucid.tensor(x[rows], requires_grad=True)
yl = sbn(xl)
yl.backward(lucid.tensor(g[rows]))
out = {}
if ys is not None:
    ys.backward(lucid.tensor(g))
    ref = {"y": ys.detach().numpy()[rows], "dx": xs.grad.numpy()[rows], "dw": bn.weight.grad.numpy(), "db": bn.bias.grad.numpy(),
           "rm": bn.running_mean.numpy(), "rv": bn.running_var.numpy()}
else:  # 2-D input: the reference is the same maths written out with NumPy
    mean, var = x.mean(0), x.var(0)
    xhat = (x - mean) / np.sqrt(var + 1e-5)
    wgt = np.array([0.5, 2.0, -1.0])
    dxhat = g * wgt
    dx = (dxhat - dxhat.mean(0) - xhat * (dxhat * xhat).mean(0)) / np.sqrt(var + 1e-5)
    ref = {"y": (xhat * wgt + np.array([0.1, 0.0, -0.3]))[rows], "dx": dx[rows], "dw": (g * xhat).sum(0), "db": g.sum(0),
           "rm": 0.1 * mean, "rv": 0.9 + 0.1 * x.var(0, ddof=1)}
got = {"y": yl.detach().numpy(), "dx": xl.grad.numpy(),
       "dw": dist.all_reduce(sbn.weight.grad.numpy().copy()), "db": dist.all_reduce(sbn.bias.grad.numpy().copy()),
       "rm": sbn.running_mean.numpy(), "rv": sbn.running_var.numpy()}
for k in ref:
    scale = max(1.0, float(np.abs(ref[k]).max())) if ref[k].size else 1.0
    out[k] = float(np.abs(got[k] - ref[k]).max() / scale) if ref[k].size else 0.0
out["local_rows"] = int(yl.shape[0])
out["negatives"] = int((yl.detach().numpy() < 0).sum())
sbn.eval()
calls = []
real = dist.all_reduce
import lucid.distributed.sync_batchnorm as S  # noqa: E402

S.all_reduce = lambda a, op="sum": calls.append(1) or real(a, op)
with lucid.no_grad():
    sbn(lucid.tensor(x[rows]))
out["eval_calls"] = len(calls)
report(r, **out)
