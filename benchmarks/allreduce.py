"""Gradient sync of ResNet-50-sized gradients: DDP's buckets vs one raw MPI Allreduce.

    mpiexec -n 2 python benchmarks/allreduce.py [--iters 10] [--compression fp16]

The gradients are ResNet-50's 161 parameter tensors (25,557,032 float32 values,
generated from the architecture's shapes, so the bucket layout is the real one).
A DDP sync is timed from the first post-accumulate hook to the return of
``finish()`` (pre-division, non-finite check, flag slots, every bucket's
Iallreduce), the raw baseline is one ``Allreduce`` of a flat array of the same
bytes. Runs are interleaved and the medians compared.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from mpi4py import MPI

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import lucid
import lucid.distributed as dist
from lucid.distributed.backends import MPITransport


def resnet50_shapes() -> list[tuple[int, ...]]:
    """Parameter shapes of torchvision's resnet50 in registration order."""
    shapes = [(64, 3, 7, 7), (64,), (64,)]
    inplanes = 64
    for planes, blocks in zip((64, 128, 256, 512), (3, 4, 6, 3)):
        for b in range(blocks):
            shapes += [(planes, inplanes, 1, 1), (planes,), (planes,)]
            shapes += [(planes, planes, 3, 3), (planes,), (planes,)]
            shapes += [(planes * 4, planes, 1, 1), (planes * 4,), (planes * 4,)]
            if b == 0:
                shapes += [(planes * 4, inplanes, 1, 1), (planes * 4,), (planes * 4,)]
            inplanes = planes * 4
    return shapes + [(1000, 2048), (1000,)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--compression", default=None)
    ap.add_argument("--bucket-cap-mb", type=float, default=25)
    args = ap.parse_args()
    dist.init()
    comm = MPI.COMM_WORLD
    shapes = resnet50_shapes()
    total = sum(int(np.prod(s)) for s in shapes)
    assert total == 25_557_032, total
    rng = np.random.default_rng(dist.rank())
    params = [lucid.Tensor(rng.standard_normal(s, dtype=np.float32), requires_grad=True) for s in shapes]
    names = [f"p{i}" for i in range(len(params))]
    reducer = dist.Reducer(
        params, names, MPITransport(comm.Dup()), comm.size,
        bucket_cap_mb=args.bucket_cap_mb, compression=args.compression,
    )
    grads = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
    flat = np.concatenate([g.ravel() for g in grads])

    def ddp_sync() -> float:
        reducer.attach_grads()
        for p, g in zip(params, grads):
            p.grad.data[...] = g  # what backward would have accumulated
        comm.Barrier()
        start = time.perf_counter()
        for p in reversed(params):  # the engine fires these as gradients become final
            for hook in p._post_accumulate_hooks:
                hook(p)
        ok = reducer.finish()
        elapsed = time.perf_counter() - start
        assert ok
        return elapsed

    def raw() -> float:
        buf = flat.copy()
        comm.Barrier()
        start = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        return time.perf_counter() - start

    ddp_sync(), raw()  # warm-up: first touches, MPI shared-memory setup
    times = {"raw": [], "ddp": []}
    for _ in range(args.iters):
        times["raw"].append(raw())
        times["ddp"].append(ddp_sync())
    # every rank must hold the same averaged gradient
    check = comm.allgather(float(params[0].grad.numpy().ravel()[:1000].sum()))
    if dist.is_main():
        nbytes = flat.nbytes
        t_raw, t_ddp = np.median(times["raw"]), np.median(times["ddp"])
        print(f"ranks={comm.size} gradients={total:,} float32 ({nbytes / 2**20:.1f} MiB) "
              f"buckets={len(reducer.buckets)} cap={args.bucket_cap_mb} MB compression={args.compression}")
        print(f"raw Allreduce : median {t_raw * 1e3:7.1f} ms  {nbytes / t_raw / 1e9:5.2f} GB/s  "
              f"(runs: {' '.join(f'{t * 1e3:.0f}' for t in times['raw'])})")
        print(f"DDP buckets   : median {t_ddp * 1e3:7.1f} ms  {nbytes / t_ddp / 1e9:5.2f} GB/s  "
              f"(runs: {' '.join(f'{t * 1e3:.0f}' for t in times['ddp'])})")
        print(f"DDP / raw bandwidth: {t_raw / t_ddp:.2f}x (target >= 0.9x)")
        print(f"ranks agree on the reduced gradient: {len(set(check)) == 1}")
        from threadpoolctl import threadpool_info

        blas = [(i.get("internal_api"), i.get("architecture"), i.get("num_threads")) for i in threadpool_info()]
        print(f"BLAS (rank 0, used by the NaN check): {blas}; other jobs share these cores: figures are noisy")


if __name__ == "__main__":
    main()
