"""Whole-run training throughput at 1 and 2 ranks: loader + step + all-reduce together.

    python benchmarks/epoch.py [--run demo|resnet_50|both] [--steps 20] [--repeats 2]
                                [--cached-batches] [--sync-bn config|on|off]

Two runs, each on a synthetic ImageFolder tree the script writes first (so nothing needs
downloading) and built by the real training components (``lucid.train.Trainer``: its
ImageFolder + DistributedSampler + DataLoader, model, SyncBatchNorm, DDP, optimizer,
scheduler):

- ``demo``: configs/fashion_mnist_resnet.toml as it is, on a tree of 28x28 grey PNGs in 10
  classes (the format launch.prepare_data writes for Fashion-MNIST);
- ``resnet_50``: ResNet-50 at 224x224, imagenet_train augmentation, 16 images per rank,
  2 loader workers, on 500x375 JPEGs (quality 90) in 4 classes.

Each run is launched under ``mpiexec -n 1`` and ``-n 2`` in turns (``--repeats`` pairs),
every rank pinned to its own core with one BLAS thread (so 2 ranks use twice the cores of
1). Rank 0 times ``--steps`` optimizer steps after ``--warmup`` untimed ones, the loop of
``Trainer._train_step`` with timers: waiting for the next batch (loader), forward + loss
+ backward (the all-reduce of early buckets overlaps it), ``ddp.finish()`` (all-reduce
not hidden by backward, plus waiting for the slower rank), and optimizer + scheduler.
Reported: images/s of the whole timed loop (global batch x steps / wall time), the share
of each part, and the 2-rank / 1-rank throughput ratio. ``--cached-batches`` makes the
batches before the clock starts (the step alone, without the loader's CPU time on the
same core) and ``--sync-bn on|off`` overrides the config, to take the ratio apart. Other jobs share the machine, so
every run is printed with the load average and the best run of each world size is used.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

PARTS = ("loader", "forward+backward", "all-reduce wait", "optimizer")


def run_config(run: str, data_root: str, out_dir: str, steps: int) -> dict:
    """The TrainConfig (as a dict) of ``run`` reading ``data_root`` and writing to ``out_dir``."""
    import tomllib

    if run == "demo":
        with open(os.path.join(ROOT, "configs", "fashion_mnist_resnet.toml"), "rb") as f:
            cfg = tomllib.load(f)
    else:
        cfg = {"model": {"name": "resnet_50", "num_classes": 4},
               "data": {"image_size": 224, "batch_size": 16, "workers": 2},
               "optim": {"name": "sgd", "lr": 0.1, "args": {"momentum": 0.9}, "weight_decay": 1e-4},
               "run": {"sync_bn": False}}
    cfg["data"]["root"] = data_root
    cfg["run"].update(output_dir=out_dir, name=run, progress=False, max_steps=steps, epochs=1)
    return cfg


def make_tree(run: str, root: str, images_per_rank: int, world: int = 2) -> None:
    """root/train and root/val in the run's format, enough training images for ``world`` ranks."""
    from lucid.data import make_fake_image_folder

    if run == "demo":
        classes, kind, sizes = 10, ("L", "PNG", ".png"), [(28, 28)]
    else:
        classes, kind, sizes = 4, ("RGB", "JPEG", ".JPEG"), [(500, 375)]
    per_class = -(-images_per_rank * world // classes)
    make_fake_image_folder(os.path.join(root, "train"), classes, per_class, sizes, [kind], seed=0)
    make_fake_image_folder(os.path.join(root, "val"), classes, 1, sizes, [kind], seed=1)


# -- one rank ---------------------------------------------------------------------------
def worker(args) -> None:
    rank = int(os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0")))
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[rank % len(cpus)]})  # before lucid sizes its thread pool
    import lucid.distributed as dist
    import lucid.nn.functional as F
    from lucid.train.config import config_from_dict
    from lucid.train.trainer import Trainer

    cfg = config_from_dict(json.loads(args.config), "benchmarks/epoch.py")
    trainer = Trainer(cfg)
    loader = trainer.data.train_loader
    loader.set_epoch(0)
    trainer.model.train()
    batches = iter(loader)
    if args.cached_batches:  # the loader's work done before the clock starts: the step alone
        batches = iter([next(batches) for _ in range(args.warmup + args.steps)])
    parts = dict.fromkeys(PARTS, 0.0)
    start = 0.0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            dist.barrier()
            parts = dict.fromkeys(PARTS, 0.0)
            start = time.perf_counter()
        t0 = time.perf_counter()
        images, labels = next(batches)
        t1 = time.perf_counter()
        loss = F.cross_entropy(trainer.ddp(images), labels, label_smoothing=cfg.optim.label_smoothing)
        loss.backward()
        t2 = time.perf_counter()
        ok = trainer.ddp.finish()
        t3 = time.perf_counter()
        if ok:
            trainer.optimizer.step()
        trainer.optimizer.zero_grad()
        trainer.scheduler.step()
        t4 = time.perf_counter()
        for name, dt in zip(PARTS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            parts[name] += dt
    dist.barrier()
    wall = time.perf_counter() - start
    if dist.is_main():
        from threadpoolctl import threadpool_info

        blas = ", ".join(f"{i['internal_api']} {i.get('architecture') or ''} x{i['num_threads']}" for i in threadpool_info())
        print(json.dumps({"world": dist.world_size(), "wall": wall, "parts": parts, "blas": blas,
                          "images": cfg.data.batch_size * dist.world_size() * args.steps}))


# -- driver -----------------------------------------------------------------------------
def launch(n: int, cfg: dict, args) -> dict:
    from lucid.distributed.launcher import find_mpiexec

    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [find_mpiexec() or "mpiexec", "-n", str(n), sys.executable, os.path.abspath(__file__), "--worker",
           "--config", json.dumps(cfg), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    cmd += ["--cached-batches"] if args.cached_batches else []
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    if out.returncode != 0:
        raise SystemExit(f"mpiexec -n {n} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["load"] = os.getloadavg()[0]
    return result


def describe(r: dict) -> str:
    shares = "  ".join(f"{p} {100 * r['parts'][p] / r['wall']:4.1f}%" for p in PARTS)
    return f"{r['world']} rank(s): {r['images'] / r['wall']:7.1f} img/s   {shares}   load {r['load']:.2f}"


def bench(run: str, args) -> None:
    with tempfile.TemporaryDirectory(prefix=f"lucid-epoch-{run}-") as tmp:
        cfg = run_config(run, os.path.join(tmp, "data"), os.path.join(tmp, "out"), args.warmup + args.steps)
        if args.sync_bn != "config":
            cfg["run"]["sync_bn"] = args.sync_bn == "on"
        make_tree(run, cfg["data"]["root"], cfg["data"]["batch_size"] * (args.warmup + args.steps))
        loading = "batches made before timing" if args.cached_batches else f"{cfg['data']['workers']} loader worker(s)"
        print(f"== {run}: {cfg['model']['name']}, {cfg['data']['image_size']}x{cfg['data']['image_size']}, "
              f"batch {cfg['data']['batch_size']}/rank, {loading}, sync_bn {cfg['run']['sync_bn']}, "
              f"{args.warmup} warm-up + {args.steps} timed steps", flush=True)
        results: dict = {1: [], 2: []}
        for _ in range(args.repeats):
            for n in (1, 2):
                r = launch(n, cfg, args)
                results[n].append(r)
                print("  " + describe(r), flush=True)
    best = {n: max(rs, key=lambda r: r["images"] / r["wall"]) for n, rs in results.items()}
    print(f"  BLAS (rank 0): {best[2]['blas']}")
    for n in (1, 2):
        print("  best " + describe(best[n]))
    ratio = (best[2]["images"] / best[2]["wall"]) / (best[1]["images"] / best[1]["wall"])
    pairs = [(a["images"] / a["wall"]) / (b["images"] / b["wall"]) for a, b in zip(results[2], results[1])]
    print(f"  2 ranks / 1 rank throughput: {ratio:.2f}x (target >= 1.85x); per pair: "
          + " ".join(f"{p:.2f}x" for p in pairs), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", choices=["demo", "resnet_50", "both"], default="both")
    ap.add_argument("--steps", type=int, default=20, help="timed optimizer steps per run")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="1-rank / 2-rank pairs, interleaved")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per mpiexec job")
    ap.add_argument("--cached-batches", action="store_true",
                    help="make every batch before the clock starts: the step (forward, backward, all-reduce) alone")
    ap.add_argument("--sync-bn", choices=["config", "on", "off"], default="config",
                    help="SyncBatchNorm as the run's config has it, or forced on/off")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    for run in (["demo", "resnet_50"] if args.run == "both" else [args.run]):
        bench(run, args)


if __name__ == "__main__":
    main()
