"""Five checkpoints with keep_last=1; steps 1 and 2 are marked best, 3 and 4 "other":
pruning must keep 2 and 4 (the newest of each mark) and 5 (the newest)."""
import os
import sys

from script_io import report

import lucid
import lucid.distributed as dist
from lucid.distributed import checkpoint

folder = sys.argv[1]
dist.init()
for step in range(1, 6):
    marks = {"best": {"val_top1": float(step)}} if step in (1, 2) else ({"other": {}} if step in (3, 4) else None)
    state = {"model": {"w": lucid.tensor([float(step), 0.0])}, "config": {"model": {"name": "x"}}}
    checkpoint.save(folder, step, state, keep_last=1, marks=marks)
report(dist.rank(), kept=sorted(n for n in os.listdir(folder) if n.startswith("step_")))
