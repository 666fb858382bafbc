"""DDP training vs ONE process training on the whole batch, on every rank.

    ddp_train.py MODEL SPLIT MODE [TRANSPORT [STEPS]]
    MODEL  syncbn (conv-BN-ReLU ResNet-like, SyncBatchNorm) | plain (BN-free) |
           bnonly (SyncBN without convs: lets a rank hold an empty batch)
    SPLIT  even | uneven | one (1 sample per rank) | empty (last rank gets none)
    MODE   train | nosync (2 micro-batches, first under no_sync) | nan (step 1: NaN loss on last rank) |
           torch (PyTorch's loop: backward, opt.step(), opt.zero_grad(); finish() never called)
    TRANSPORT  cpu (default) | staged | cuda_aware | nccl: the DDP model on the fake GPU of
           tests/fake_cupy (a real one with LUCID_TEST_REAL_GPU=1), gradients summed
           through that GPU transport
    STEPS  optimizer steps (default 3)

Each rank initialises its model from a different seed (DDP must copy rank 0's
weights), trains STEPS SGD-momentum steps in float64 and, in the same process, trains a
reference copy of rank 0's model on the whole global batch; it reports the largest
differences. Loss per rank: sum over its samples * world / global batch, so the
averaged gradient is the global mean's.
"""
import os
import sys

import numpy as np
from script_io import report

import lucid
import lucid.distributed as dist
import lucid.nn as nn
import lucid.nn.functional as F
import lucid.optim as optim
from lucid.distributed import sync_batchnorm

TRANSPORT = sys.argv[4] if len(sys.argv) > 4 else "cpu"
if TRANSPORT != "cpu" and os.environ.get("LUCID_TEST_REAL_GPU") != "1":  # set by benchmarks/gpu_smoke.sh
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import fakegpu

    fakegpu.install(process_wide=True)
    os.environ["LUCID_CUDA_AWARE_MPI"] = "1" if TRANSPORT == "cuda_aware" else "0"

MODEL, SPLIT, MODE = sys.argv[1:4]
STEPS = int(sys.argv[5]) if len(sys.argv) > 5 else 3
dist.init()
r, w = dist.rank(), dist.world_size()
DEVICE = "cpu" if TRANSPORT == "cpu" else dist.device(require_gpu=True)


class Block(nn.Module):
    def __init__(self, cin, cout, stride, bn):
        super().__init__()
        norm = (lambda c: nn.BatchNorm2d(c)) if bn else (lambda c: nn.Identity())
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=not bn)
        self.bn1 = norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=not bn)
        self.bn2 = norm(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=not bn), norm(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.down is None else self.down(x)))


class SpatialMean(nn.Module):
    def forward(self, x):
        return x.mean((2, 3))


def build(seed):
    lucid.manual_seed(seed)
    if MODEL == "bnonly":  # no conv/flatten: those kernels reject an empty batch (see report)
        return nn.Sequential(nn.BatchNorm2d(3), nn.ReLU(), SpatialMean(), nn.Linear(3, 5)).double()
    bn = MODEL == "syncbn"
    stem = [nn.Conv2d(3, 4, 3, padding=1, bias=not bn)] + ([nn.BatchNorm2d(4)] if bn else []) + [nn.ReLU()]
    return nn.Sequential(
        *stem, Block(4, 4, 1, bn), Block(4, 8, 2, bn), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)
    ).double()


def batch(step):
    n = {"even": 4 * w, "uneven": 4 * w + 3, "one": w, "empty": 3 * w}[SPLIT]
    rng = np.random.default_rng(step)
    x = rng.standard_normal((n, 3, 6, 6)) * 2 + 0.5
    y = rng.integers(0, 5, n)
    if SPLIT == "uneven":
        sizes = [3 + 2 * k for k in range(w)]
        sizes[-1] += n - sum(sizes)
    elif SPLIT == "empty":
        sizes = [n // (w - 1)] * (w - 1) + [0]
        sizes[0] += n - sum(sizes)
    else:
        sizes = [n // w] * w
    bounds = np.cumsum([0] + sizes)
    return x, y, [np.arange(bounds[k], bounds[k + 1]) for k in range(w)]


def make_optimizer(params):
    return optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-3)


def shares_memory(a, b) -> bool:
    """Whether view ``a`` lies inside ``b``'s memory (host or device arrays)."""
    if isinstance(a, np.ndarray):
        return np.shares_memory(a, b)
    start, end = b.data.ptr, b.data.ptr + b.nbytes
    return start <= a.data.ptr < end


calls = []
real_reduce = sync_batchnorm.sum_over_ranks
sync_batchnorm.sum_over_ranks = lambda a, group=None: calls.append(1) or real_reduce(a, group)  # counts SyncBN all-reduces
model = build(seed=100 + r)
if MODEL != "plain":
    model = dist.SyncBatchNorm.convert_sync_batchnorm(model)
ddp = dist.DistributedDataParallel(
    model.to(DEVICE), bucket_cap_mb=0.002, first_bucket_mb=0.0005, backend="mpi" if TRANSPORT == "cpu" else TRANSPORT
)
opt = make_optimizer(ddp.parameters())
ref = build(seed=100)
ref_opt = make_optimizer(ref.parameters())
oks, losses = [], []
for step in range(STEPS):
    x, y, rows = batch(step)
    mine = rows[r]
    scale = w / len(y)
    opt.zero_grad()
    if MODE == "nosync":
        half = len(mine) // 2
        with ddp.no_sync():
            xs, ys = lucid.tensor(x[mine[:half]], device=DEVICE), lucid.tensor(y[mine[:half]], device=DEVICE)
            loss = F.cross_entropy(ddp(xs), ys, reduction="sum") * scale
            loss.backward()
        mine = mine[half:]
    loss = F.cross_entropy(ddp(lucid.tensor(x[mine], device=DEVICE)), lucid.tensor(y[mine], device=DEVICE), reduction="sum") * scale
    if MODE == "nan" and step == 1 and r == w - 1:
        loss = loss * float("nan")
    loss.backward()
    if step == 0:  # every gradient is a view into its bucket's buffer: nothing was copied
        views = [
            (p.grad is b.grads[i], shares_memory(p.grad.data, b.buffer))
            for b in ddp.reducer.buckets
            for i, p in enumerate(b.params)
        ]
        grad_views = [sum(a and s for a, s in views), len(views), len(list(ddp.parameters()))]
    if MODE == "torch":
        opt.step()
        oks.append(True)
    else:
        oks.append(ddp.step(opt))
    losses.append(float(loss.item()))
    ref_opt.zero_grad()
    ref_loss = F.cross_entropy(ref(lucid.tensor(x)), lucid.tensor(y))
    ref_loss.backward()
    if not (MODE == "nan" and step == 1):
        ref_opt.step()

train_calls = len(calls)
ddp.eval()
ref.eval()
x, _, rows = batch(7)
with lucid.no_grad():
    eval_err = float(np.abs(ddp(lucid.tensor(x, device=DEVICE)).numpy() - ref(lucid.tensor(x)).numpy()).max())

mine = dict(ddp.module.named_parameters())
param_err = max(float(np.abs(mine[n].detach().numpy() - p.detach().numpy()).max()) for n, p in ref.named_parameters())
bufs = dict(ddp.module.named_buffers())
buf_err = max([float(np.abs(bufs[n].numpy() - b.numpy()).max()) for n, b in ref.named_buffers()] or [0.0])
checksum = [float(np.sum(p.detach().numpy())) for p in ddp.module.parameters()] + [float(np.sum(b.numpy())) for b in ddp.module.buffers()]
report(
    r, oks=oks, param_err=param_err, buf_err=buf_err, eval_err=eval_err, train_reduce_calls=train_calls,
    eval_reduce_calls=len(calls) - train_calls, skipped=ddp.skipped_steps, grad_views=grad_views,
    n_buckets=len(ddp.reducer.buckets), checksum=checksum, n_buffers=len(bufs), local_sizes=[len(k) for k in batch(0)[2]],
    device=DEVICE, transport=type(ddp.reducer.transport).__name__,
)
