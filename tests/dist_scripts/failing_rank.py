"""One rank fails while the others wait in a collective. Modes:

raise      the last rank raises; the others block in all_reduce
raise_ddp  the last rank raises; the others block waiting for a gradient bucket
thread     the last rank's worker thread raises; the others block in a barrier
stall      the last rank sleeps; the others' watchdog (2 s) must abort the job
stall_ddp  the same while the others wait for a gradient bucket
exit       the last rank calls sys.exit(3) inside dist.abort_on_exit()
"""
import sys
import threading
import time

import numpy as np

import lucid
import lucid.distributed as dist
from lucid.distributed.backends import MPITransport

mode = sys.argv[1]
dist.init(watchdog_timeout=2.0 if mode.startswith("stall") else None)
r, w = dist.rank(), dist.world_size()
last = r == w - 1
if mode == "raise":
    if last:
        raise ValueError("injected failure on the last rank")
    dist.all_reduce(np.ones(3))
elif mode in ("raise_ddp", "stall_ddp"):
    p = lucid.ones(4, requires_grad=True)
    reducer = dist.Reducer([p], ["p"], MPITransport(dist.comm.world().comm.Dup()), w)
    if last and mode == "raise_ddp":
        raise ValueError("injected failure before backward")
    if last:
        time.sleep(60)
    (p * p).sum().backward()
    reducer.finish()
elif mode == "thread":
    if last:
        t = threading.Thread(target=lambda: 1 / 0, name="loader")
        t.start()
        t.join()
        time.sleep(60)
    dist.barrier()
elif mode == "exit":
    with dist.abort_on_exit():
        if last:
            sys.exit(3)
        dist.all_reduce(np.ones(3))
elif mode == "stall":
    if last:
        time.sleep(60)
    dist.all_reduce(np.ones(3))
print(f"rank {r} finished normally", flush=True)
time.sleep(60)  # a rank that got past the failure must not end the job cleanly either
