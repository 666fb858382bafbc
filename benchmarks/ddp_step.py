"""One DDP training step of a ResNet-18-like model: time breakdown and 1 -> 2 rank scaling.

    python benchmarks/ddp_step.py [--batch 16] [--steps 4] [--image 32] [--sync-bn] [--repeats 3]

The driver launches this file twice under ``mpiexec`` with one BLAS thread per rank
(OPENBLAS/OMP/MKL_NUM_THREADS=1):

1. ``-n 2``: per-step breakdown on rank 0 — forward (+loss), backward, time blocked
   in ``ddp.finish()`` after backward (communication not hidden by backward, plus
   any wait for a rank that is slower, e.g. because another job took its core), and
   the optimizer step; plus how many buckets had started before backward returned.
2. ``-n 1``: the same per-rank batch in one process (DDP over a world of one).

Scaling = (2 * batch / step time with 2 ranks) / (batch / step time with 1 rank),
from the best of ``--repeats`` interleaved pairs (other jobs on the machine share the
same cores, so single runs are noisy; every pair's ratio is printed too).
The model is ``lucid.models.resnet_18`` when that import works, else a CIFAR-style
ResNet-18 built here from lucid.nn (3x3 stem, no max-pool, 10 classes).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lucid.distributed.launcher import find_mpiexec


def build_model(sync_bn: bool):
    import lucid.nn as nn
    import lucid.nn.functional as F

    try:
        from lucid.models import resnet_18

        model, name = resnet_18(num_classes=10), "lucid.models.resnet_18(num_classes=10)"
    except ImportError:

        class Block(nn.Module):
            def __init__(self, cin, cout, stride):
                super().__init__()
                self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
                self.bn1 = nn.BatchNorm2d(cout)
                self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
                self.bn2 = nn.BatchNorm2d(cout)
                self.down = None
                if stride != 1 or cin != cout:
                    self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

            def forward(self, x):
                out = F.relu(self.bn1(self.conv1(x)))
                out = self.bn2(self.conv2(out))
                return F.relu(out + (x if self.down is None else self.down(x)))

        layers = [nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU()]
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
            cin = cout
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 10)]
        model, name = nn.Sequential(*layers), "CIFAR-style ResNet-18 built from lucid.nn (benchmark-local)"
    if sync_bn:
        from lucid.distributed import SyncBatchNorm

        model = SyncBatchNorm.convert_sync_batchnorm(model)
    return model, name


def worker(args) -> None:
    from threadpoolctl import threadpool_info

    import lucid
    import lucid.distributed as dist
    import lucid.nn.functional as F
    import lucid.optim as optim

    dist.init()
    lucid.manual_seed(0)
    model, name = build_model(args.sync_bn)
    ddp = dist.DistributedDataParallel(model)
    opt = optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    rng = np.random.default_rng(dist.rank())
    x = lucid.tensor(rng.standard_normal((args.batch, 3, args.image, args.image), dtype=np.float32))
    y = lucid.tensor(rng.integers(0, 10, args.batch))
    rows = []
    for step in range(args.steps + 1):  # step 0 warms up (first touches, buffers)
        dist.barrier()
        t0 = time.perf_counter()
        loss = F.cross_entropy(ddp(x), y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        ok = ddp.finish()
        t3 = time.perf_counter()
        if ok:
            opt.step()
        opt.zero_grad()
        t4 = time.perf_counter()
        if step:
            rows.append([t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0, ddp.reducer.overlapped])
    if dist.is_main():
        med = np.median(np.array(rows), axis=0)
        blas = [(i.get("internal_api"), i.get("architecture"), i.get("num_threads")) for i in threadpool_info()]
        print(json.dumps({
            "world": dist.world_size(), "model": name, "batch_per_rank": args.batch, "image": args.image,
            "params": sum(p.numel() for p in model.parameters()), "buckets": len(ddp.reducer.buckets),
            "forward": med[0], "backward": med[1], "blocked": med[2], "optimizer": med[3], "step": med[4],
            "started_before_finish": int(med[5]), "blas": blas,
        }))


def launch(n: int, args) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [find_mpiexec() or "mpiexec", "-n", str(n), sys.executable, os.path.abspath(__file__), "--worker",
           "--batch", str(args.batch), "--steps", str(args.steps), "--image", str(args.image)]
    cmd += ["--sync-bn"] if args.sync_bn else []
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16, help="images per rank")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--image", type=int, default=32)
    ap.add_argument("--sync-bn", action="store_true")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved 2-rank/1-rank pairs")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    pairs = [(launch(2, args), launch(1, args)) for _ in range(args.repeats)]  # interleaved
    two = min((p[0] for p in pairs), key=lambda r: r["step"])
    one = min((p[1] for p in pairs), key=lambda r: r["step"])
    print(f"model: {two['model']}, {two['params']:,} parameters, {two['buckets']} buckets, "
          f"batch {args.batch}/rank, {args.image}x{args.image}, sync_bn={args.sync_bn}")
    print(f"BLAS (rank 0): {two['blas']}; {args.repeats} interleaved 2-rank/1-rank runs, best shown")
    for res in (two, one):
        s = res["step"]
        print(f"{res['world']} rank(s): step {s * 1e3:7.1f} ms = forward {res['forward'] * 1e3:6.1f} + backward "
              f"{res['backward'] * 1e3:6.1f} + blocked on comm {res['blocked'] * 1e3:5.1f} "
              f"({100 * res['blocked'] / s:4.1f}% of step, target <= 10%) + optimizer {res['optimizer'] * 1e3:5.1f}; "
              f"buckets started during backward: {res['started_before_finish']}/{res['buckets']}")
    blocked = [100 * p[0]["blocked"] / p[0]["step"] for p in pairs]
    print(f"blocked share of the 2-rank step, every run: {' '.join(f'{b:.1f}%' for b in blocked)}")
    thr2, thr1 = 2 * args.batch / two["step"], args.batch / one["step"]
    ratios = [(2 * p[1]["step"]) / p[0]["step"] for p in pairs]
    print(f"throughput (best runs): 1 rank {thr1:.1f} img/s, 2 ranks {thr2:.1f} img/s -> scaling {thr2 / thr1:.2f}x "
          f"(target >= 1.8x); per pair: {' '.join(f'{r:.2f}x' for r in ratios)}")
    print("note: other jobs share this machine's 2 cores; figures are noisy")


if __name__ == "__main__":
    main()
