"""DistributedDataParallel(backend=NAME) on every rank: report the transport or the error."""
import sys

from script_io import report

import lucid.distributed as dist
import lucid.nn as nn

dist.init()
r = dist.rank()
name = sys.argv[1] if sys.argv[1] != "per-rank" else ("mpi" if r == 0 else "auto")
try:
    ddp = dist.DistributedDataParallel(nn.Linear(2, 2), backend=name)
    report(r, transport=ddp.reducer.transport.name, error=None)
except ValueError as exc:
    report(r, transport=None, error=str(exc))
