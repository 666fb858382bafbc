"""One training step on the CPU and on a GPU must give the same loss and parameters.

    python benchmarks/gpu_step_equality.py [--fake] [--models resnet_18,resnet_50,resnext_50_32x4d]

For each model and dtype, the same initial weights and batch run forward,
cross-entropy, backward and an SGD-momentum step (twice) on "cpu" and on "gpu". Batch 8
in train mode (float32 BatchNorm over tiny batches is ill-conditioned).

float64: the loss and every parameter agree within 1e-9 (relative to the largest).
float32: the first forward's logits and loss agree within 1e-4, or within 3x what the
CPU's own two float32 paths give each other (oneDNN's convolutions against the NumPy GEMM
path, when oneDNN is installed: ResNet-50 here differs by ~7e-5 in its logits, train-mode
BatchNorm over batch 8 amplifying the rounding of the summation order). Parameters agree
after each step within 1e-4 too, unless a ReLU input lay within float32 rounding of 0 and took the other side
on the two devices: ReLU is continuous, its derivative is not, so one such element
routes its O(1) gradient differently and the gradients upstream of it differ by ~1e-3
of their largest. Any two float32 summation orders (threads, GEMM blocking, GPU
reductions) can do this; the script counts such mask flips in both forwards (the second
one starts from parameters that already differ by float32 rounding) and then reports
the parameter difference as explained, not as a mismatch. ``--fake``
runs the GPU side on the test suite's NumPy-backed fake CuPy. Exit 1 on a mismatch.
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


def relu_masks(record: list):
    """Patch the ReLU-producing ops to append each output's (y > 0) mask to ``record``; returns an undo."""
    from lucid.ops import activation, norm

    patched = []
    for cls in (activation.ReLU, activation.AddReLU, norm.BatchNorm):
        forward = cls.forward

        def wrapped(self, *a, _forward=forward, **k):
            y = _forward(self, *a, **k)
            if not isinstance(self, norm.BatchNorm) or k.get("relu"):
                record.append(lucid._backend.asnumpy(y) > 0)
            return y

        cls.forward = wrapped
        patched.append((cls, forward))
    return lambda: [setattr(c, "forward", f) for c, f in patched]


def one_step(name: str, dtype: str, device: str, size: int, batch: int):
    """(first loss, first logits, ReLU masks of each forward, parameters after each of two steps)."""
    lucid.manual_seed(0)
    model = getattr(models, name)(num_classes=10).to(dtype)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, 3, size, size)).astype(dtype)
    y = rng.integers(0, 10, batch)
    model = model.to(device)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    first, masks, params = None, [], []
    for _ in range(2):  # the second step uses the momentum buffers
        masks.append([])
        undo = relu_masks(masks[-1])
        logits = model(lucid.tensor(x, device=device))
        undo()
        loss = F.cross_entropy(logits, lucid.tensor(y, device=device))
        if first is None:
            first = (float(loss.item()), logits.detach().numpy())
        opt.zero_grad()
        loss.backward()
        opt.step()
        params.append([p.detach().numpy().copy() for p in model.parameters()])  # CPU arrays are views
    return (*first, masks, params)


def relative(a, b) -> float:
    """Largest difference of two arrays relative to the largest element of ``a``."""
    return float(np.abs(a - b).max()) / max(float(np.abs(a).max()), 1e-30)


def cpu_floor(name: str, dtype: str, args, cpu_logits) -> float:
    """float32: how far the CPU's other float32 path (oneDNN off when it was on) puts the first
    forward's logits; 0 for float64 or without oneDNN (a single CPU path)."""
    from lucid.ops import onednn

    if dtype != "float32" or not onednn.enabled():
        return 0.0
    onednn.set_enabled(False)
    try:
        return relative(cpu_logits, one_step(name, dtype, "cpu", args.size, args.batch)[1])
    finally:
        onednn.set_enabled(None)


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
    print(f"{'model':20s} {'dtype':8s} {'loss diff':>10s} {'logit diff':>10s} {'cpu floor':>9s} {'params 1':>9s} "
          f"{'params 2':>9s} {'flips 1,2':>7s} {'fwd tol':>7s}  {'gpu (fake)' if args.fake else 'gpu'}")
    for name in args.models.split(","):
        for dtype, tol in TOL.items():
            cpu_loss, cpu_logits, cpu_masks, cpu_params = one_step(name, dtype, "cpu", args.size, args.batch)
            gpu_loss, gpu_logits, gpu_masks, gpu_params = one_step(name, dtype, "gpu", args.size, args.batch)
            loss_d = abs(cpu_loss - gpu_loss) / max(abs(cpu_loss), 1e-30)
            logit_d = relative(cpu_logits, gpu_logits)
            floor = cpu_floor(name, dtype, args, cpu_logits)
            forward_tol = max(tol, 3 * floor)
            # relative to the largest parameter of the model: a per-tensor ratio would divide the
            # float32 noise of near-cancelling sums (e.g. the bias of a BN followed by BN) by ~0
            param_d, flips, ok = [], [], loss_d <= forward_tol and logit_d <= forward_tol
            for step in range(2):  # each step's parameters, excused in float32 by a flip up to its forward
                scale = max(float(np.abs(a).max()) for a in cpu_params[step])
                param_d.append(max(float(np.abs(a - b).max()) for a, b in zip(cpu_params[step], gpu_params[step])) / scale)
                flips.append(sum(int((a != b).sum()) for a, b in zip(cpu_masks[step], gpu_masks[step])))
                ok &= param_d[-1] <= tol or (dtype == "float32" and sum(flips) > 0)
            exact = max(param_d) <= tol
            verdict = "ok" if ok and exact else "ok (ReLU mask flips)" if ok else "MISMATCH"
            failed |= not ok
            print(f"{name:20s} {dtype:8s} {loss_d:10.2e} {logit_d:10.2e} {floor:9.2e} {param_d[0]:9.2e} "
                  f"{param_d[1]:9.2e} {flips[0]:3d} {flips[1]:3d} {forward_tol:7.0e}  {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
