"""Cache-blocked, multi-threaded loops over the rows of (M, C) arrays, for memory-bound kernels.

A NumPy expression of several ops streams every full-size temporary through main
memory once per op, on one core. Running the same ops block by block keeps each
block's temporaries in cache, and since NumPy releases the GIL inside its loops,
blocks can run on all cores at once (DESIGN.md: ~2x on 2 cores). On the GPU (CuPy)
the whole array is one block: its kernels are already parallel.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

BLOCK_BYTES = 1 << 19  # rows per block: about 512 KiB of one (M, C) operand

_pool: ThreadPoolExecutor | None = None
_pool_pid = -1
_pool_lock = threading.Lock()
_threads: int | None = None


def set_num_threads(threads: int | None) -> None:
    """Use ``threads`` threads for blocked kernels (None: decide from the environment).

    Data parallelism with several processes per node gives each one its share of the
    cores, as it does for the BLAS threads.
    """
    global _threads
    if threads is not None and int(threads) < 1:
        raise ValueError(f"set_num_threads: need a positive number of threads, got {threads}")
    _threads = None if threads is None else int(threads)


def num_workers() -> int:
    """Threads to use: set_num_threads's value, else OMP_NUM_THREADS, else the cores this process may run on."""
    if _threads is not None:
        return _threads
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _executor() -> ThreadPoolExecutor:
    """The shared pool of helper threads (re-created after a fork: threads do not survive it).

    The caller runs one share of the work itself; idle helpers cost nothing, so the
    pool is sized for the cores and never shrinks.
    """
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            helpers = max(1, (os.cpu_count() or 2) - 1)
            _pool = ThreadPoolExecutor(max_workers=helpers, thread_name_prefix="lucid-blocks")
            _pool_pid = os.getpid()
        return _pool


def row_blocks(m: int, row_bytes: int) -> list[tuple[int, int]]:
    """[start, stop) row ranges of about BLOCK_BYTES each (at least one row)."""
    step = max(1, BLOCK_BYTES // max(row_bytes, 1))
    return [(a, min(a + step, m)) for a in range(0, m, step)]


def map_row_blocks(fn: Callable[[int, int], object], m: int, row_bytes: int, xp=np) -> list:
    """``[fn(start, stop) for each row block]``, the blocks shared among threads in contiguous runs.

    ``fn`` must only write rows [start, stop) of its outputs (blocks run concurrently).
    """
    if xp is not np or m == 0:
        return [fn(0, m)]
    blocks = row_blocks(m, row_bytes)
    threads = min(num_workers(), len(blocks))
    if threads == 1:
        return [fn(a, b) for a, b in blocks]
    per = -(-len(blocks) // threads)
    runs = [blocks[i : i + per] for i in range(0, len(blocks), per)]

    def work(run):
        return [fn(a, b) for a, b in run]

    pool = _executor()
    futures = [pool.submit(work, run) for run in runs[1:]]
    results = work(runs[0])
    for f in futures:
        results += f.result()
    return results
