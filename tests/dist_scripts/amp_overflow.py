"""Mixed precision under DDP: one rank alone overflows in float16, every rank skips.

    amp_overflow.py

A conv-BN-linear model trains 7 steps with autocast(float16) and a GradScaler
(init_scale 256, growth_interval 2). Rank 1 overflows at step 2 and rank 0 at step 4:
that rank's loss is multiplied by 1e6, so its float16 backward produces Inf while its
forward (and BatchNorm statistics) stay finite. At step 5 rank 1's loss is +Inf but
its gradients are finite (``loss + inf``): no gradient shows it, only DDP's all-rank
verdict (``ddp.backward`` flags the loss, ``finish()`` returns False everywhere), so
this step checks that ``unscale_(found_inf=...)`` honours it (the scale backs off).
Each rank reports, per step, whether the step was taken, whether the parameters
moved, the scale after update() and a checksum of the parameters, and whether the (reduced) gradients were there and finite.
"""
import numpy as np
from script_io import report

import lucid
import lucid.distributed as dist
import lucid.nn as nn
import lucid.nn.functional as F
import lucid.optim as optim
from lucid.amp import GradScaler

dist.init()
r, w = dist.rank(), dist.world_size()
OVERFLOW = {1: 2, 0: 4}  # rank -> step at which it alone overflows
BAD_LOSS = {1: 5}  # rank -> step at which its loss alone is +Inf with finite gradients

lucid.manual_seed(r)  # different initial weights: DDP must copy rank 0's
model = nn.Sequential(
    nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
)
ddp = dist.DistributedDataParallel(model)
opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
scaler = GradScaler(init_scale=256.0, growth_interval=2)
rng = np.random.default_rng(100 + r)


def flat():
    """The parameters (BatchNorm running statistics are per rank: plain BatchNorm2d)."""
    return np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])


taken, moved, scales, checksums, grads_finite, grads_present = [], [], [], [], [], []
for step in range(7):
    x = lucid.tensor(rng.standard_normal((4, 1, 6, 6)).astype(np.float32))
    y = lucid.tensor(rng.integers(0, 3, 4))
    with lucid.autocast("cpu"):
        loss = F.cross_entropy(ddp(x), y)
    if OVERFLOW.get(r) == step:
        loss = loss * 1e6
    if BAD_LOSS.get(r) == step:
        loss = loss + float("inf")
    ddp.backward(scaler.scale(loss))
    # backward returned with the gradients reduced; on a step some rank flagged, DDP dropped them (None)
    present = all(p.grad is not None for p in model.parameters())
    finite_here = present and bool(all(np.isfinite(p.grad.numpy()).all() for p in model.parameters()))
    ok = scaler.unscale_(opt, found_inf=not ddp.finish())
    before = flat()
    scaler.step(opt)
    scaler.update()
    opt.zero_grad()
    after = flat()
    taken.append(ok)
    moved.append(bool(not np.array_equal(before, after)))
    scales.append(scaler.get_scale())
    checksums.append(float(np.sum(after.astype(np.float64) * np.arange(1, after.size + 1))))
    grads_finite.append(finite_here)
    grads_present.append(present)

buffers_finite = bool(all(np.isfinite(b.numpy()).all() for b in model.buffers()))
report(r, buffers_finite=buffers_finite, taken=taken, moved=moved, scales=scales, checksums=checksums,
       grads_finite=grads_finite, grads_present=grads_present, params_dtype=[str(p.dtype) for p in model.parameters()])
