"""Host synchronisations and kernel launches per training step, counted on the fake GPU.

    python benchmarks/gpu_syncs.py [--model resnet_50] [--batch 2] [--size 64] [--steps 2] [--no-trainer]

Runs on the strict NumPy-backed fake CuPy device of the test suite, which counts every
device->host wait (``.get()``, ``.item()``, ``float()``, stream/device/event syncs)
and every kernel launch (each elementwise/reduction/matmul call; views are free).

1. A bare training step (forward, cross-entropy, backward, SGD-momentum step), with
   lucid's fused GPU kernels off ("unfused") and on ("fused"): BatchNorm(+ReLU), the
   residual add+ReLU, ReLU's backward and the multi-tensor optimizer update.
2. The Trainer's own step (``Trainer._train_step``: the batch prefetched to the device,
   DDP on one rank, the loss kept on the device), outside logging steps, with each
   host wait attributed to the lucid function that asked for it.

Counts do not depend on the image size, so a small one keeps this quick; they are per
steady-state step (the first step is not counted). No timing: the fake runs on the CPU.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import fakegpu  # noqa: E402
from fake_cupy import _core  # noqa: E402

import lucid  # noqa: E402
import lucid.nn.functional as F  # noqa: E402
from lucid import models, optim  # noqa: E402
from lucid.ops import gpu_fused  # noqa: E402


def count(fn) -> tuple[int, int]:
    """(syncs, kernel launches) that ``fn()`` caused."""
    s, k = fakegpu.STATS.syncs, fakegpu.STATS.kernels
    fn()
    return fakegpu.STATS.syncs - s, fakegpu.STATS.kernels - k


def bare_step(args, fused: bool) -> list[tuple[float, float]]:
    """Mean (syncs, kernels) of forward, backward and optimizer step."""
    with fakegpu.installed(devices=1), gpu_fused.enabled(fused):
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
        lucid.ops.device_asserts.raise_pending()
    return [tuple(sum(r[j][m] for r in rows) / len(rows) for m in (0, 1)) for j in range(3)]


def trainer_step(args) -> tuple[float, float, collections.Counter]:
    """Mean (syncs, kernels) of Trainer._train_step outside logging, and who waited."""
    from lucid.train.config import load_config
    from lucid.train.trainer import Trainer

    overrides = [f'run.output_dir="{tempfile.mkdtemp()}"', f"run.max_steps={args.steps + 1}", "run.epochs=1",
                 'run.device="gpu"', f"run.log_interval={args.steps + 5}", f'model.name="{args.model}"',
                 "model.overrides={}", "model.num_classes=10", "data.source_args={train_samples=96, val_samples=2}",
                 "data.channels=3", f"data.image_size={args.size}",
                 f"data.batch_size={args.batch}", "run.progress=false"]
    waiters: collections.Counter = collections.Counter()
    rows = []
    with fakegpu.installed(devices=1):
        trainer = Trainer(load_config(os.path.join(ROOT, "configs", "debug.toml"), overrides))
        inner, real_sync = trainer._train_step, _core.sync

        def attributed():
            frames = [f for f in traceback.extract_stack()[:-1] if os.sep + "lucid" + os.sep in f.filename]
            where = frames[-1] if frames else None
            waiters[f"{os.path.relpath(where.filename, ROOT)}:{where.name}" if where else "?"] += 1
            real_sync()

        def counted(*a, **k):
            s, n = fakegpu.STATS.syncs, fakegpu.STATS.kernels
            if rows is not None:
                _core.sync = attributed
            try:
                out = inner(*a, **k)
            finally:
                _core.sync = real_sync
            rows.append((fakegpu.STATS.syncs - s, fakegpu.STATS.kernels - n))
            return out

        trainer._train_step = counted
        trainer.fit()
    steady = rows[1:]
    return (sum(r[0] for r in steady) / len(steady), sum(r[1] for r in steady) / len(steady), waiters)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet_50")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--no-trainer", action="store_true", help="skip the Trainer step")
    args = p.parse_args()
    before, after = bare_step(args, fused=False), bare_step(args, fused=True)
    print(f"{args.model}, batch {args.batch}, {args.size}x{args.size}, fake GPU, mean of {args.steps} steps")
    print(f"{'part':10s} {'host syncs':>10s} {'launches unfused':>17s} {'launches fused':>15s}")
    for name, b, a in zip(("forward", "backward", "sgd step"), before, after):
        print(f"{name:10s} {a[0]:10.1f} {b[1]:17.1f} {a[1]:15.1f}")
    print(f"{'total':10s} {sum(a[0] for a in after):10.1f} {sum(b[1] for b in before):17.1f} "
          f"{sum(a[1] for a in after):15.1f}")
    if args.no_trainer:
        return
    syncs, kernels, waiters = trainer_step(args)
    print(f"\nTrainer step (prefetched batch, DDP on 1 rank, fused): {syncs:.1f} host syncs, {kernels:.1f} launches")
    for where, n in waiters.most_common():
        print(f"  {n / (args.steps + 1):5.1f} per step  {where}")


if __name__ == "__main__":
    main()
