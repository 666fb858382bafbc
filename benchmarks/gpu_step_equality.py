"""One training step on the CPU and on a GPU must give the same loss and parameters.

    python benchmarks/gpu_step_equality.py [--fake] [--models resnet_18,resnet_50,resnext_50_32x4d]

For each model and dtype (float64 within 1e-9, float32 within 1e-4, relative to the
largest value), the same initial weights and batch run forward, cross-entropy,
backward and an SGD-momentum step on "cpu" and on "gpu"; the loss and every parameter
are compared, relative to the largest parameter. Batch 8 in train mode (float32 BatchNorm over tiny batches is
ill-conditioned, so differences there would mean nothing). ``--fake`` runs the GPU
side on the test suite's NumPy-backed fake CuPy (no GPU needed). Exit 1 on a mismatch.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import lucid
import lucid.nn.functional as F
from lucid import models, optim

TOL = {"float64": 1e-9, "float32": 1e-4}


def one_step(name: str, dtype: str, device: str, size: int, batch: int):
    lucid.manual_seed(0)
    model = getattr(models, name)(num_classes=10).to(dtype)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, 3, size, size)).astype(dtype)
    y = rng.integers(0, 10, batch)
    model = model.to(device)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    for _ in range(2):  # the second step uses the momentum buffers
        loss = F.cross_entropy(model(lucid.tensor(x, device=device)), lucid.tensor(y, device=device))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.item()), [p.detach().numpy() for p in model.parameters()]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fake", action="store_true", help="the fake CuPy device of tests/ instead of a GPU")
    p.add_argument("--models", default="resnet_18,resnet_50,resnext_50_32x4d")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    args = p.parse_args()
    if args.fake:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
        import fakegpu

        fakegpu.install()
    else:
        lucid._backend.cupy_module()  # a clear error when there is no usable GPU
    failed = False
    print(f"{'model':20s} {'dtype':8s} {'loss diff':>10s} {'param diff':>11s} {'tol':>7s}  {'gpu (fake)' if args.fake else 'gpu'}")
    for name in args.models.split(","):
        for dtype, tol in TOL.items():
            cpu_loss, cpu_params = one_step(name, dtype, "cpu", args.size, args.batch)
            gpu_loss, gpu_params = one_step(name, dtype, "gpu", args.size, args.batch)
            loss_d = abs(cpu_loss - gpu_loss) / max(abs(cpu_loss), 1e-30)
            # relative to the largest parameter of the model: a per-tensor ratio would divide the
            # float32 noise of near-cancelling sums (e.g. the bias of a BN followed by BN) by ~0
            scale = max(float(np.abs(a).max()) for a in cpu_params)
            param_d = max(float(np.abs(a - b).max()) for a, b in zip(cpu_params, gpu_params)) / scale
            ok = loss_d <= tol and param_d <= tol
            failed |= not ok
            print(f"{name:20s} {dtype:8s} {loss_d:10.2e} {param_d:11.2e} {tol:7.0e}  {'ok' if ok else 'MISMATCH'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
