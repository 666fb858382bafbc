"""Cache-blocked, multi-threaded loops over the rows of (M, C) arrays, for memory-bound kernels.

A NumPy expression of several ops streams every full-size temporary through main
memory once per op, on one core. Running the same ops block by block keeps each
block's temporaries in cache, and since NumPy releases the GIL inside its loops,
blocks can run on all cores at once (~2x on 2 cores; docs/design.md, "Performance"). On the GPU (CuPy)
the whole array is one block: its kernels are already parallel.

Compute-bound kernels (convolutions) share the batch instead (``map_batch``): each
thread copies its own im2col columns and runs its own GEMMs on ONE BLAS thread.
Left multi-threaded, OpenBLAS's helper threads keep spinning for a while after each
GEMM and take the cores from the copies and the memory-bound kernels that follow
(measured: ResNet-18/50 training steps 1.5-2x faster without them).
Work started from inside a pool thread runs serially in that thread (no nested pools).
"""
from __future__ import annotations

import contextlib
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
_local = threading.local()  # .busy: this thread runs a share of pooled work
_blas_lock = threading.Lock()
_blas_state = {"libs": None, "users": 0, "saved": []}


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


def _run_shares(work: Callable, shares: list) -> list:
    """[work(share) for share in shares], the first in this thread and the others in the pool."""
    def marked(share):
        _local.busy = True
        try:
            return work(share)
        finally:
            _local.busy = False

    pool = _executor()
    futures = [pool.submit(marked, share) for share in shares[1:]]
    results = [marked(shares[0])]
    return results + [f.result() for f in futures]


def map_row_blocks(fn: Callable[[int, int], object], m: int, row_bytes: int, xp=np) -> list:
    """``[fn(start, stop) for each row block]``, the blocks shared among threads in contiguous runs.

    ``fn`` must only write rows [start, stop) of its outputs (blocks run concurrently).
    """
    if xp is not np or m == 0:
        return [fn(0, m)]
    blocks = row_blocks(m, row_bytes)
    threads = 1 if getattr(_local, "busy", False) else min(num_workers(), len(blocks))
    if threads == 1:
        return [fn(a, b) for a, b in blocks]
    per = -(-len(blocks) // threads)
    runs = [blocks[i : i + per] for i in range(0, len(blocks), per)]
    results = []
    for part in _run_shares(lambda run: [fn(a, b) for a, b in run], runs):
        results += part
    return results


def map_batch(fn: Callable[[int, int], object], n: int, xp=np) -> list:
    """``[fn(start, stop)]`` for one contiguous share of range(n) per thread, with BLAS on one thread.

    For compute-bound kernels whose GEMMs run inside ``fn`` (see the module docstring).
    ``fn`` must only write its share of the outputs. One call ``fn(0, n)`` on the GPU.
    """
    if xp is not np or n == 0:
        return [fn(0, n)]
    threads = 1 if getattr(_local, "busy", False) else min(num_workers(), n)
    shares = [(i * n // threads, (i + 1) * n // threads) for i in range(threads)]
    with single_threaded_blas():
        if threads == 1:
            return [fn(0, n)]
        return _run_shares(lambda share: fn(*share), shares)


def _blas_libraries() -> list:
    """threadpoolctl controllers of the BLAS libraries loaded now (looked up once)."""
    if _blas_state["libs"] is None:
        from threadpoolctl import ThreadpoolController  # imported here: scans the loaded libraries

        _blas_state["libs"] = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
    return _blas_state["libs"]


@contextlib.contextmanager
def single_threaded_blas():
    """Run BLAS calls on the calling thread only, restoring the thread count after the last user leaves."""
    with _blas_lock:
        if _blas_state["users"] == 0:
            libs = _blas_libraries()
            _blas_state["saved"] = [c.num_threads for c in libs]
            for c in libs:
                c.set_num_threads(1)
        _blas_state["users"] += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_state["users"] -= 1
            if _blas_state["users"] == 0:
                for c, count in zip(_blas_libraries(), _blas_state["saved"]):
                    c.set_num_threads(count)
