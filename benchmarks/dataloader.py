"""Input pipeline throughput: lucid.data's imagenet_train(224) against a plain Pillow baseline.

Generates ImageNet-like JPEGs (500x375, quality 90, gradients + shapes + noise) in a
temporary ImageFolder and measures images/s over whole passes:

- baseline: Pillow open -> convert("RGB") -> crop + resize (bilinear) at full decode
  size -> flip -> NumPy normalise to CHW float32, one sample at a time, then np.stack
  (the crops and flips are the same as lucid's: same per-sample generators);
- lucid: DataLoader(ImageFolder(root, imagenet_train(224)), batch_size) with
  num_workers=0 (one core), and with 2 thread / 2 process workers.

Passes are interleaved and medians reported, because other jobs share the cores. Two
rates: images per wall-clock second, and images per CPU-second of this process (threads
included) -- the per-core throughput, much less disturbed by other jobs than wall time.
Usage: python benchmarks/dataloader.py [--images 192] [--reps 5] [--batch 32]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from PIL import Image

from lucid.data import DataLoader, ImageFolder, imagenet_train, natural_image, sample_generator
from lucid.data.presets import IMAGENET_MEAN, IMAGENET_STD
from lucid.data.transforms import RandomResizedCrop


def make_dataset(root: str, count: int, classes: int = 4) -> None:
    rng = np.random.default_rng(0)
    for i in range(count):
        folder = os.path.join(root, f"n{i % classes:08d}")
        os.makedirs(folder, exist_ok=True)
        natural_image(500, 375, rng).save(os.path.join(folder, f"img_{i:05d}.JPEG"), "JPEG", quality=90)


def baseline_pass(ds: ImageFolder, order, batch: int, size: int = 224) -> None:
    mean = np.asarray(IMAGENET_MEAN, np.float32)
    std = np.asarray(IMAGENET_STD, np.float32)
    for start in range(0, len(order), batch):
        samples = []
        for i in order[start : start + batch]:
            rng = sample_generator(0, 0, int(i))
            img = Image.open(ds.samples[i][0]).convert("RGB")
            left, top, w, h = RandomResizedCrop.get_params(img.width, img.height, (0.08, 1.0), (3 / 4, 4 / 3), rng)
            img = img.crop((left, top, left + w, top + h)).resize((size, size), Image.Resampling.BILINEAR)
            if rng.random() < 0.5:
                img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            a = (np.asarray(img, dtype=np.float32) / 255.0 - mean) / std
            samples.append(a.transpose(2, 0, 1))
        np.stack(samples)


def lucid_pass(loader: DataLoader) -> None:
    for images, labels in loader:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=192)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        make_dataset(root, args.images)
        area = ImageFolder(root, transform=imagenet_train(224))
        bilinear = ImageFolder(root, transform=imagenet_train(224, interpolation="bilinear"))
        order = np.arange(len(area))
        runs = {
            "baseline (Pillow, 1 core)": lambda: baseline_pass(area, order, args.batch),
            "lucid imagenet_train, 0 workers": lambda: lucid_pass(DataLoader(area, args.batch)),
            "lucid, interpolation=bilinear, 0 workers": lambda: lucid_pass(DataLoader(bilinear, args.batch)),
            "lucid, 2 thread workers": lambda: lucid_pass(DataLoader(area, args.batch, num_workers=2)),
            "lucid, 2 process workers": lambda: lucid_pass(DataLoader(area, args.batch, num_workers=2, worker_mode="process")),
        }
        for run in runs.values():  # warm the page cache, the forkserver and the imports
            run()
        wall: dict[str, list[float]] = {name: [] for name in runs}
        cpu: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.reps):
            for name, run in runs.items():
                w0, c0 = time.perf_counter(), time.process_time()
                run()
                wall[name].append(time.perf_counter() - w0)
                cpu[name].append(time.process_time() - c0)
    n = len(order)
    base_name = next(iter(runs))
    base_cpu = n / float(np.median(cpu[base_name]))
    print(f"{n} JPEGs 500x375 q90, batch {args.batch}, {args.reps} interleaved passes (medians); "
          f"cpus={os.cpu_count()}, load average {os.getloadavg()[0]:.1f} (other jobs share the cores)")
    print(f"  {'':42s} {'img/s':>8s} {'img/CPU-s':>10s} {'per core vs baseline':>21s}")
    for name in runs:
        rate = n / float(np.median(wall[name]))
        if "process" in name:  # the workers' CPU time is not this process's
            print(f"  {name:42s} {rate:8.1f} {'n/a':>10s} {'n/a':>21s}")
            continue
        per_cpu = n / float(np.median(cpu[name]))
        print(f"  {name:42s} {rate:8.1f} {per_cpu:10.1f} {per_cpu / base_cpu:20.2f}x")


if __name__ == "__main__":
    main()
