"""Gradient clipping after DDP's average: every rank clips the same gradients identically.

    clip_ddp.py MAX_NORM

Each rank runs a different batch through the same float32 model, finishes the
all-reduce, clips with ``clip_grad_norm_`` and reports the norm before and after and
a digest of its clipped gradients.
"""
import hashlib
import sys

import numpy as np
from script_io import report

import lucid
import lucid.distributed as dist
import lucid.nn as nn
import lucid.nn.functional as F
from lucid.nn.utils import clip_grad_norm_

MAX_NORM = float(sys.argv[1])
dist.init()
r = dist.rank()
lucid.manual_seed(0)
model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5))
ddp = dist.DistributedDataParallel(model)
rng = np.random.default_rng(100 + r)  # a different batch on every rank
x = lucid.tensor(rng.standard_normal((4, 3, 6, 6)).astype(np.float32))
y = lucid.tensor(rng.integers(0, 5, 4))
F.cross_entropy(ddp(x), y).backward()
assert ddp.finish()
local = np.concatenate([p.grad.numpy().ravel() for p in model.parameters()])
before = clip_grad_norm_(model.parameters(), MAX_NORM).item()
grads = np.concatenate([p.grad.numpy().ravel() for p in model.parameters()])
report(r, before=before, before_numpy=float(np.linalg.norm(local.astype(np.float64))),
       after=float(np.linalg.norm(grads.astype(np.float64))), digest=hashlib.sha256(grads.tobytes()).hexdigest())
