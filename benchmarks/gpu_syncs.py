"""Host synchronisations and kernel launches per training step, counted on the fake GPU.

    python benchmarks/gpu_syncs.py [--model resnet_50] [--batch 2] [--size 64] [--steps 2]

Runs a ResNet training step (forward, cross-entropy, backward, SGD-momentum step) on
the strict NumPy-backed fake CuPy device of the test suite, which counts every
device->host wait (``.get()``, ``.item()``, ``float()``, stream/device syncs) and every
kernel launch (each elementwise/reduction/matmul call). Counts do not depend on the
image size, so a small one keeps this quick; they are per steady-state step (the
first step is not counted). No timing: the fake runs on the CPU.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

import fakegpu

import lucid
import lucid.nn.functional as F
from lucid import models, optim


def count(fn) -> tuple[int, int]:
    """(syncs, kernel launches) that ``fn()`` caused."""
    s, k = fakegpu.STATS.syncs, fakegpu.STATS.kernels
    fn()
    return fakegpu.STATS.syncs - s, fakegpu.STATS.kernels - k


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet_50")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=2)
    args = p.parse_args()
    with fakegpu.installed(devices=1):
        lucid.manual_seed(0)
        model = getattr(models, args.model)(num_classes=10).to("gpu")
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        x = lucid.randn(args.batch, 3, args.size, args.size, device="gpu")
        y = lucid.randint(0, 10, (args.batch,), device="gpu")
        state: dict = {}

        def forward():
            state["loss"] = F.cross_entropy(model(x), y)

        def backward():
            state["loss"].backward()

        def step():
            opt.step()
            opt.zero_grad()

        rows = []
        for i in range(args.steps + 1):
            parts = [count(forward), count(backward), count(step)]
            if i:
                rows.append(parts)
        print(f"{args.model}, batch {args.batch}, {args.size}x{args.size}, fake GPU, mean of {args.steps} steps")
        print(f"{'part':10s} {'host syncs':>10s} {'kernel launches':>16s}")
        for j, name in enumerate(("forward", "backward", "sgd step")):
            s = sum(r[j][0] for r in rows) / len(rows)
            k = sum(r[j][1] for r in rows) / len(rows)
            print(f"{name:10s} {s:10.1f} {k:16.1f}")
        total_s = sum(sum(p[0] for p in r) for r in rows) / len(rows)
        total_k = sum(sum(p[1] for p in r) for r in rows) / len(rows)
        print(f"{'total':10s} {total_s:10.1f} {total_k:16.1f}")


if __name__ == "__main__":
    main()
