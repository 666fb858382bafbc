"""Forward+backward time of lucid's performance-critical kernels, with PyTorch's when it imports.

    python benchmarks/ops.py                                           # lucid only
    PYTHONPATH=. /opt/torchvenv/bin/python benchmarks/ops.py           # + PyTorch ratios
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/ops.py   # native BLAS kernel

Each case runs forward and backward (with a fixed output gradient) on the
docs/design.md ("Performance") shapes. Lucid and PyTorch run interleaved in one process, repetition
by repetition, so other work on the machine slows both alike; the table shows the
median and the minimum of each (the minimum is the least disturbed run). A short
pause precedes each timed step: PyTorch's OpenMP workers and OpenBLAS's threads
keep spinning on the cores for milliseconds after they finish, which would
otherwise slow whichever library runs next.
PyTorch runs with channels-last (NHWC) memory, lucid's activation layout, and
with plain NCHW memory; the ratio is lucid's time over the faster of the two.
Where oneDNN is installed, lucid also runs with it switched off (the NumPy / GEMM
path alone), which shows what oneDNN buys per kernel.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import lucid
from lucid import ops
from lucid.autograd import Function
from lucid.ops import onednn
from lucid.ops.layout import from_nhwc

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the comparison is optional
    torch = None

# name: (input NCHW shape, extra parameter shapes, lucid fn, torch fn)
CASES = {
    "conv2d 3x3 64->64 56x56 b16": (
        (16, 64, 56, 56), [(64, 64, 3, 3)],
        lambda x, w: ops.conv2d(x, w, padding=1),
        lambda x, w: F.conv2d(x, w, padding=1),
    ),
    "conv2d 1x1 256->64 56x56 b16": (
        (16, 256, 56, 56), [(64, 256, 1, 1)],
        lambda x, w: ops.conv2d(x, w),
        lambda x, w: F.conv2d(x, w),
    ),
    "conv2d 3x3 g32 128->128 56x56 b16": (
        (16, 128, 56, 56), [(128, 4, 3, 3)],
        lambda x, w: ops.conv2d(x, w, padding=1, groups=32),
        lambda x, w: F.conv2d(x, w, padding=1, groups=32),
    ),
    "conv2d 3x3 s2 128->128 56x56 b16": (
        (16, 128, 56, 56), [(128, 128, 3, 3)],
        lambda x, w: ops.conv2d(x, w, stride=2, padding=1),
        lambda x, w: F.conv2d(x, w, stride=2, padding=1),
    ),
    "batch_norm train 64ch 56x56 b16": (
        (16, 64, 56, 56), [(64,), (64,)],
        lambda x, w, b: ops.batch_norm(x, None, None, w, b, training=True),
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
    ),
    "batch_norm+relu train 256ch 56x56 b8": (
        (8, 256, 56, 56), [(256,), (256,)],
        lambda x, w, b: ops.batch_norm(x, None, None, w, b, training=True, relu=True),
        lambda x, w, b: F.relu(F.batch_norm(x, None, None, w, b, training=True)),
    ),
    "batch_norm train 2048ch 7x7 b8": (
        (8, 2048, 7, 7), [(2048,), (2048,)],
        lambda x, w, b: ops.batch_norm(x, None, None, w, b, training=True),
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
    ),
    # SyncBatchNorm's kernel path, its cross-rank sum replaced by the identity (PyTorch: plain batch norm)
    "sync_batch_norm+relu train 16ch 28x28 b64": (
        (64, 16, 28, 28), [(16,), (16,)],
        lambda x, w, b: ops.batch_norm(x, None, None, w, b, training=True, relu=True, stats_reduce=lambda p: p),
        lambda x, w, b: F.relu(F.batch_norm(x, None, None, w, b, training=True)),
    ),
    "sync_batch_norm+relu train 128ch 14x14 b64": (
        (64, 128, 14, 14), [(128,), (128,)],
        lambda x, w, b: ops.batch_norm(x, None, None, w, b, training=True, relu=True, stats_reduce=lambda p: p),
        lambda x, w, b: F.relu(F.batch_norm(x, None, None, w, b, training=True)),
    ),
    "batch_norm eval 256ch 56x56 b16": (
        (16, 256, 56, 56), [(256,), (256,)],
        lambda x, w, b: ops.batch_norm(x, lucid.zeros(256), lucid.ones(256), w, b),
        lambda x, w, b: F.batch_norm(x, torch.zeros(256), torch.ones(256), w, b),
    ),
    "relu 64ch 56x56 b16": (
        (16, 64, 56, 56), [],
        lambda x: ops.relu(x),
        lambda x: F.relu(x),
    ),
    "max_pool2d 3x3 s2 64ch 112x112 b16": (
        (16, 64, 112, 112), [],
        lambda x: ops.max_pool2d(x, 3, 2, 1),
        lambda x: F.max_pool2d(x, 3, 2, 1),
    ),
}


def channels_last(shape, rng):
    """A float32 NCHW-shaped array with NHWC memory."""
    n, c, h, w = shape
    return from_nhwc(rng.standard_normal((n, h, w, c), dtype=np.float32))


class GradSink(Function):
    """Identity whose backward drops the gradient.

    The benchmark input then behaves like an activation inside a network: the kernel
    computes its input gradient, but no leaf ``.grad`` is filled (that copy is the
    engine's cost, not the kernel's, and does not happen for activations).
    """

    def forward(self, x):
        return x

    def backward(self, g):
        return (None,)


def lucid_step(fn, arrays, gy_holder):
    inputs = [lucid.Tensor(a, requires_grad=True) for a in arrays]
    inputs[0] = GradSink.apply(inputs[0])
    y = fn(*inputs)
    if gy_holder[0] is None:
        gy_holder[0] = lucid.Tensor(np.ones_like(y.data))
    y.backward(gy_holder[0])


def torch_step(fn, tensors, gy_holder):
    for t in tensors:
        t.grad = None
    y = fn(*tensors)
    if gy_holder[0] is None:
        gy_holder[0] = torch.ones_like(y)
    y.backward(gy_holder[0])


def without_onednn(step) -> None:
    onednn.set_enabled(False)
    try:
        step()
    finally:
        onednn.set_enabled(None)


def timed(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def blas_kernels() -> str:
    from threadpoolctl import threadpool_info

    parts = []
    for info in threadpool_info():
        arch = info.get("architecture") or info.get("threading_layer") or ""
        library = os.path.basename(info["filepath"])
        parts.append(f"{info['internal_api']} {info.get('version') or ''} {arch} x{info['num_threads']} ({library})")
    return "; ".join(parts)


def run_case(name, repeats: int, rng, gap: float):
    shape, params, lucid_fn, torch_fn = CASES[name]
    x = channels_last(shape, rng)
    extra = [rng.standard_normal(s, dtype=np.float32) for s in params]
    arrays = [x] + extra
    lucid_gy = [None]
    steps = [("lucid", lambda: lucid_step(lucid_fn, arrays, lucid_gy))]
    if onednn.enabled():
        plain_gy = [None]
        steps.append(("lucid_plain", lambda: without_onednn(lambda: lucid_step(lucid_fn, arrays, plain_gy))))
    if torch is not None:
        t_cl = [torch.from_numpy(np.ascontiguousarray(a)).requires_grad_() for a in arrays]
        t_cl[0] = t_cl[0].detach().to(memory_format=torch.channels_last).requires_grad_()
        t_nchw = [t.detach().contiguous().requires_grad_() for t in t_cl]
        cl_gy, nchw_gy = [None], [None]
        steps.append(("torch", lambda: torch_step(torch_fn, t_cl, cl_gy)))
        steps.append(("torch_nchw", lambda: torch_step(torch_fn, t_nchw, nchw_gy)))
    for _, step in steps:  # warm-up: allocator, caches, lazy imports
        step()
    times: dict[str, list[float]] = {k: [] for k, _ in steps}
    for _ in range(repeats):
        for key, step in steps:
            time.sleep(gap)  # let the previous step's spinning workers (OpenMP, OpenBLAS) go idle
            times[key].append(timed(step))
    return {k: (statistics.median(v) * 1e3, min(v) * 1e3) for k, v in times.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed repetitions per case (median and minimum reported)")
    parser.add_argument("--case", action="append", help="substring of the case names to run (repeatable)")
    parser.add_argument("--gap", type=float, default=0.05, help="seconds of pause before each timed step")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    names = [n for n in CASES if not args.case or any(s in n for s in args.case)]
    print(f"BLAS: {blas_kernels()}")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')} "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', '(unset)')}")
    if torch is not None:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    else:
        print("torch not importable: lucid figures only")
    plain = onednn.enabled()
    print(f"oneDNN: {'on (lucid w/o oneDNN: the same kernels with it off)' if plain else 'off'}")
    header = f"{'case (fwd+bwd ms: median / min)':38s} {'lucid':>15s}" + (f" {'lucid w/o oneDNN':>16s}" if plain else "")
    if torch is not None:
        header += f" {'torch NHWC':>15s} {'torch NCHW':>15s} {'ratio vs best torch':>20s}"
    print(header)
    for name in names:
        r = run_case(name, args.repeats, rng, args.gap)
        line = f"{name:38s} {r['lucid'][0]:7.2f} /{r['lucid'][1]:6.2f}"
        if plain:
            line += f"  {r['lucid_plain'][0]:7.2f} /{r['lucid_plain'][1]:6.2f}"
        if torch is not None:
            best = [min(r["torch"][i], r["torch_nchw"][i]) for i in (0, 1)]
            line += f" {r['torch'][0]:7.2f} /{r['torch'][1]:6.2f} {r['torch_nchw'][0]:7.2f} /{r['torch_nchw'][1]:6.2f}"
            line += f" {r['lucid'][0] / best[0]:11.2f} /{r['lucid'][1] / best[1]:5.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
