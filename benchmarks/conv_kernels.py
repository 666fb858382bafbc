"""A convolution's three kernels one at a time: lucid's GEMM path, oneDNN, and PyTorch (channels_last).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=. /opt/torchvenv/bin/python benchmarks/conv_kernels.py
    python benchmarks/conv_kernels.py --layer 16,64,56,64,3,1,1     # batch,C_in,size,C_out,kernel,stride,groups

Milliseconds per call (median of --reps after one warm-up call) of the forward, the input
gradient and the weight gradient, float32, NHWC memory, on ``--threads`` threads; marks
with * the path ``lucid.ops.conv_onednn.kernels`` picks for each kernel, and names oneDNN's
implementation. lucid's operands and the buffers its kernels allocate start on 64-byte
boundaries (``lucid.ops.aligned``); ``--offset 16`` moves all of them 16 bytes past one (where
NumPy's large arrays start) to show what the alignment buys. PyTorch runs in a second pass after lucid's (never interleaved: its OpenMP
threads would spin next to lucid's), when it imports.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

LAYERS = [
    "16,3,224,64,7,2,1", "16,64,56,64,3,1,1", "16,64,56,64,1,1,1", "16,128,28,128,3,1,1", "16,256,14,256,3,1,1",
    "16,512,7,512,3,1,1", "16,1024,14,256,1,1,1", "64,64,32,64,3,1,1", "64,512,4,512,3,1,1", "8,128,56,128,3,1,32",
    "8,256,28,256,3,1,32", "8,1024,7,1024,3,1,32",
]


def timed(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def operands(spec: str):
    n, c, h, o, k, s, g = map(int, spec.split(","))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, h, h, c), np.float32)  # NHWC
    w = (rng.standard_normal((o, c // g, k, k), np.float32) * 0.1).astype(np.float32)
    return x, w, k, s, k // 2, g


def misalign(offset: int) -> None:
    """Make ``lucid.ops.aligned.empty`` return arrays ``offset`` bytes past a 64-byte boundary."""
    from lucid.ops import aligned

    aligned_empty = aligned.empty

    def empty(shape, dtype=np.float32, xp=np):
        if xp is not np:
            return aligned_empty(shape, dtype, xp)
        dtype = np.dtype(dtype)
        shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(shape)
        raw = aligned_empty(int(np.prod(shape)) * dtype.itemsize + offset, np.uint8)
        return raw[offset:].view(dtype).reshape(shape)

    aligned.empty = empty


def placed(a):
    """A copy of ``a`` where lucid's kernels would allocate it (``lucid.ops.aligned.empty``)."""
    from lucid.ops import aligned

    out = aligned.empty(a.shape, a.dtype)
    out[...] = a
    return out


def lucid_row(spec: str, reps: int) -> str:
    from lucid.ops import conv, conv_onednn, onednn
    from lucid.ops.conv import conv_nhwc, conv_window, weight_matrix

    xh, w, k, s, p, g = operands(spec)
    window, out_hw = conv_window(xh.shape[1:3], (k, k), s, p, 1)
    gy = np.random.default_rng(1).standard_normal((xh.shape[0], *out_hw, w.shape[0]), np.float32)
    xh, w, gy = placed(xh), placed(w), placed(gy)
    gemm = [timed(lambda: conv_nhwc(xh, weight_matrix(w, g), window, out_hw), reps),
            timed(lambda: conv.conv_grad_input(gy, w, window, g, xh.shape[1:3]), reps),
            timed(lambda: conv.conv_grad_weight(xh, gy, window, g, w.shape), reps)]
    if not onednn.enabled():
        return f"{spec:24s} GEMM {' / '.join(f'{t:.1f}' for t in gemm)}   oneDNN: {conv_onednn.describe()}"
    dnnl = [timed(lambda: conv_onednn.conv_forward(xh, w, None, window, g, out_hw), reps),
            timed(lambda: conv_onednn.conv_grad_input(gy, w, window, g, xh.shape), reps),
            timed(lambda: conv_onednn.conv_grad_weight(xh, gy, window, g, w.shape), reps)]
    chosen = conv_onednn.kernels(xh.transpose(0, 3, 1, 2), w, window, g, out_hw)
    plan = conv_onednn.plan_for(xh.shape, w.shape, g, window, out_hw)
    forward = plan.forward.implementation() if plan.paired is None else f"{plan.paired.forward.implementation()} (groups paired)"
    impl = "/".join([forward] + [p.implementation() for p in (plan.data, plan.weights)])
    cells = []
    for kind, a, b in zip(("forward", "input", "weight"), gemm, dnnl):
        cells.append(f"{a:.1f}{'' if kind in chosen else '*'} | {b:.1f}{'*' if kind in chosen else ''}")
    return f"{spec:24s} " + "   ".join(cells) + f"   ({impl})"


def torch_row(spec: str, reps: int, threads: int) -> str:
    import torch

    torch.set_num_threads(threads)
    xh, w, k, s, p, g = operands(spec)
    x = torch.from_numpy(xh).permute(0, 3, 1, 2)  # channels_last memory
    wt = torch.from_numpy(w)
    y = torch.nn.functional.conv2d(x, wt, None, s, p, 1, g)
    gy = torch.randn(y.shape).contiguous(memory_format=torch.channels_last)
    back = torch.ops.aten.convolution_backward
    times = [timed(lambda: torch.nn.functional.conv2d(x, wt, None, s, p, 1, g), reps),
             timed(lambda: back(gy, x, wt, None, [s, s], [p, p], [1, 1], False, [0, 0], g, [True, False, False]), reps),
             timed(lambda: back(gy, x, wt, None, [s, s], [p, p], [1, 1], False, [0, 0], g, [False, True, False]), reps)]
    return f"{spec:24s} torch channels_last {' / '.join(f'{t:.1f}' for t in times)}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layer", action="append", help="batch,C_in,size,C_out,kernel,stride,groups (repeatable)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--offset", type=int, default=0, help="bytes past a 64-byte boundary for lucid's arrays (16: NumPy's)")
    ap.add_argument("--side", choices=["lucid", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    layers = args.layer or LAYERS
    if args.side:  # a worker: one side, one process
        cpus = sorted(os.sched_getaffinity(0))[: args.threads]
        os.sched_setaffinity(0, cpus)
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
        if args.offset:
            misalign(args.offset)
        for spec in layers:
            row = lucid_row(spec, args.reps) if args.side == "lucid" else torch_row(spec, args.reps, args.threads)
            print(row, flush=True)
        if args.side == "lucid":
            from threadpoolctl import threadpool_info

            print("lucid BLAS: " + "; ".join(f"{i['internal_api']} {i.get('architecture') or ''}"
                                              for i in threadpool_info()))
        return
    print("ms per call: forward | input gradient | weight gradient; lucid: 'GEMM path | oneDNN' per kernel, "
          "* = the path lucid picks")
    base = [sys.executable, os.path.abspath(__file__), "--reps", str(args.reps), "--threads", str(args.threads),
            "--offset", str(args.offset)]
    base += [a for spec in layers for a in ("--layer", spec)]
    subprocess.run(base + ["--side", "lucid"], check=True)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("(PyTorch not importable: no reference row)")
        return
    subprocess.run(base + ["--side", "torch"], check=True)


if __name__ == "__main__":
    main()
