"""Training images per second of a ResNet on one GPU, lucid (CuPy) and PyTorch (CUDA) when importable.

    python benchmarks/gpu_throughput.py [--model resnet_50] [--batch 32] [--size 224] [--steps 10]

A full step (forward, cross-entropy, backward, SGD-momentum) on a fixed batch already
on the device; timed between device synchronisations after warm-up steps. Both
frameworks run float32 with the same batch; PyTorch in channels_last (its faster layout).
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def lucid_ips(model_name: str, batch: int, size: int, steps: int, warmup: int) -> float:
    import lucid
    import lucid.nn.functional as F
    from lucid import models, optim

    cp = lucid._backend.cupy_module()
    model = getattr(models, model_name)().to("gpu")
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = lucid.randn(batch, 3, size, size, device="gpu")
    y = lucid.randint(0, 1000, (batch,), device="gpu")

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    cp.cuda.Device().synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    cp.cuda.Device().synchronize()
    return steps * batch / (time.perf_counter() - t0)


def torch_ips(model_name: str, batch: int, size: int, steps: int, warmup: int) -> float | None:
    try:
        import torch
        import torchvision
    except ImportError:
        return None
    if not torch.cuda.is_available() or not hasattr(torchvision.models, model_name.replace("_", "")):
        return None
    model = getattr(torchvision.models, model_name.replace("_", ""))().cuda().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, size, size, device="cuda").to(memory_format=torch.channels_last)
    y = torch.from_numpy(np.random.default_rng(0).integers(0, 1000, batch)).cuda()

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet_50")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    a = p.parse_args()
    mine = lucid_ips(a.model, a.batch, a.size, a.steps, a.warmup)
    theirs = torch_ips(a.model, a.batch, a.size, a.steps, a.warmup)
    print(f"{a.model} b{a.batch} {a.size}x{a.size} float32 training: lucid {mine:.1f} img/s", end="")
    print(f", PyTorch {theirs:.1f} img/s (lucid {mine / theirs:.2f}x)" if theirs else ", PyTorch: not importable with CUDA")


if __name__ == "__main__":
    main()
