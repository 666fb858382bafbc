"""Ranks build different models; DDP must raise the same clear error on every rank."""
import sys

from script_io import report

import lucid.distributed as dist
import lucid.nn as nn

mode = sys.argv[1]
dist.init()
r, w = dist.rank(), dist.world_size()
odd = r == w - 1
layers = [nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)]
if odd and mode == "shape":
    layers[2] = nn.Linear(5, 4)
if odd and mode == "dtype":
    layers[0] = nn.Linear(4, 5).double()
if odd and mode == "extra":
    layers.append(nn.Linear(3, 3))
model = nn.Sequential(*layers)
try:
    dist.DistributedDataParallel(model)
    error = None
except ValueError as exc:
    error = str(exc)
dist.barrier()  # everyone got here: nobody hangs in a collective
report(r, error=error)
