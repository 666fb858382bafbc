"""Input pipeline throughput: lucid.data's imagenet_train(224) against a plain Pillow baseline.

Generates ImageNet-like JPEGs (500x375, quality 90, gradients + shapes + noise) in a
temporary ImageFolder and measures images/s over whole passes:

- baseline: Pillow open -> convert("RGB") -> crop + resize (bilinear) at full decode
  size -> flip -> NumPy normalise to CHW float32, one sample at a time, then np.stack
  (the crops and flips are the same as lucid's: same per-sample generators);
- lucid with ``normalize=False``: uint8 batches, normalised later per batch (on the GPU by
  ``DevicePrefetcher(normalize=...)``, what a GPU run's loader cores then do), and the same
  plus ``normalize_batch`` on this core (what it costs when the normalisation stays here);
- lucid: ImageFolder(root, imagenet_train(224)) batches as DataLoader(num_workers=0)
  builds them (one core), with the default JPEG decoder (TurboJPEG through simplejpeg when
  it is installed, which the run names), with Pillow's (``decoder="pillow"``, the same
  pixels) and with the opt-in ``decoder="turbo_fast"`` (other pixels), alone and with uint8
  batches (the fastest opt-in combination), and the DataLoader
  with 0, 2 thread and 2 process workers (kept from pass to pass with ``persistent_workers``,
  as for the epochs of a run), and 2 process workers started anew each pass (what each
  epoch pays without ``persistent_workers``: start-up and sending them the dataset).

Like a training process (``lucid.distributed.init``), the script keeps freed large blocks
for reuse (``lucid._malloc.tune``), and so do the loader's worker processes: without it
every decode's image is a fresh mmap, faulted in page by page (both pipelines ~8% slower).
Other jobs share the cores, so the one-core pipelines are timed in CPU seconds, batch
by batch in rotating turns (all see the same load), and medians are reported; the
loaders' passes are timed in wall-clock seconds, interleaved.
Usage: python benchmarks/dataloader.py [--images 192] [--reps 5] [--batch 32]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lucid import _malloc
from lucid.data import DataLoader, ImageFolder, imagenet_train, jpeg_turbo, natural_image, normalize_batch, sample_generator
from lucid.data.collate import to_tensors
from lucid.data.fetch import fetch_batch
from lucid.data.presets import IMAGENET_MEAN, IMAGENET_STD
from lucid.data.transforms import RandomResizedCrop


def make_dataset(root: str, count: int, classes: int = 4) -> None:
    rng = np.random.default_rng(0)
    for i in range(count):
        folder = os.path.join(root, f"n{i % classes:08d}")
        os.makedirs(folder, exist_ok=True)
        natural_image(500, 375, rng).save(os.path.join(folder, f"img_{i:05d}.JPEG"), "JPEG", quality=90)


def baseline_batch(ds: ImageFolder, indices, size: int = 224) -> np.ndarray:
    mean = np.asarray(IMAGENET_MEAN, np.float32)
    std = np.asarray(IMAGENET_STD, np.float32)
    samples = []
    for i in indices:
        rng = sample_generator(0, 0, int(i))
        img = Image.open(ds.samples[i][0]).convert("RGB")
        left, top, w, h = RandomResizedCrop.get_params(img.width, img.height, (0.08, 1.0), (3 / 4, 4 / 3), rng)
        img = img.crop((left, top, left + w, top + h)).resize((size, size), Image.Resampling.BILINEAR)
        if rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        a = (np.asarray(img, dtype=np.float32) / 255.0 - mean) / std
        samples.append(a.transpose(2, 0, 1))
    return np.stack(samples)


def lucid_batch(ds: ImageFolder, indices):
    """What DataLoader(num_workers=0) does for one batch."""
    return to_tensors(fetch_batch(ds, indices, 0, 0)[0])


def paired_per_core(runs: dict, batches: list, reps: int) -> dict:
    """CPU seconds per image of each one-core pipeline, measured batch by batch in turns
    (the order rotates), so that all see the same load; medians over batches and passes."""
    per_image = {name: [] for name in runs}
    names = list(runs)
    for rep in range(reps):
        for b, indices in enumerate(batches):
            turn = names[(rep + b) % len(names) :] + names[: (rep + b) % len(names)]
            for name in turn:
                c0 = time.process_time()
                runs[name](indices)
                per_image[name].append((time.process_time() - c0) / len(indices))
    return {name: float(np.median(v)) for name, v in per_image.items()}


def loader_pass(loader: DataLoader) -> None:
    for _batch in loader:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=192)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    tuned = _malloc.tune()  # as dist.init() does in a training process (and its loader's workers then)
    with tempfile.TemporaryDirectory() as root:
        make_dataset(root, args.images)
        area = ImageFolder(root, transform=imagenet_train(224))
        pillow = ImageFolder(root, transform=imagenet_train(224), decoder="pillow")
        bilinear = ImageFolder(root, transform=imagenet_train(224, interpolation="bilinear"))
        batches = [np.arange(k, min(k + args.batch, len(area))) for k in range(0, len(area), args.batch)]
        one_core = {
            "baseline (Pillow)": lambda ix: baseline_batch(area, ix),
            "lucid imagenet_train(224)": lambda ix: lucid_batch(area, ix),
            "lucid, decoder='pillow'": lambda ix: lucid_batch(pillow, ix),
            "lucid, interpolation='bilinear'": lambda ix: lucid_batch(bilinear, ix),
        }
        raw = ImageFolder(root, transform=imagenet_train(224, normalize=False))  # uint8 samples
        one_core["lucid, normalize=False (uint8 out)"] = lambda ix: lucid_batch(raw, ix)
        one_core["  + normalize_batch on this core"] = lambda ix: normalize_batch(lucid_batch(raw, ix)[0], IMAGENET_MEAN, IMAGENET_STD)
        if jpeg_turbo.available():  # opt-in: TurboJPEG's fast IDCT and upsampling (other pixels)
            fast = ImageFolder(root, transform=imagenet_train(224), decoder="turbo_fast")
            one_core["lucid, decoder='turbo_fast'"] = lambda ix: lucid_batch(fast, ix)
            fast_raw = ImageFolder(root, transform=imagenet_train(224, normalize=False), decoder="turbo_fast")
            one_core["lucid, turbo_fast + uint8 out"] = lambda ix: lucid_batch(fast_raw, ix)
        same = all(np.array_equal(lucid_batch(area, ix)[0].numpy(), lucid_batch(pillow, ix)[0].numpy()) for ix in batches[:2])
        for run in one_core.values():  # warm the page cache and the imports
            run(batches[0])
        cpu = paired_per_core(one_core, batches, args.reps)
        kept = {mode: DataLoader(area, args.batch, num_workers=2, worker_mode=mode, persistent_workers=True)
                for mode in ("thread", "process")}
        loaders = {
            "0 workers": lambda: loader_pass(DataLoader(area, args.batch)),
            "2 thread workers": lambda: loader_pass(kept["thread"]),
            "2 process workers": lambda: loader_pass(kept["process"]),
            "2 process workers, new each pass": lambda: loader_pass(DataLoader(area, args.batch, num_workers=2, worker_mode="process")),
        }
        for run in loaders.values():
            run()
        wall = {name: [] for name in loaders}
        for _ in range(args.reps):
            for name, run in loaders.items():
                t0 = time.perf_counter()
                run()
                wall[name].append(time.perf_counter() - t0)
        for loader in kept.values():
            loader.close()
    n = len(area)
    base = cpu["baseline (Pillow)"]
    print(f"{n} JPEGs 500x375 q90, batch {args.batch}, {args.reps} passes; cpus={os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f} (other jobs share the cores); malloc tuned as in training: {tuned}")
    if jpeg_turbo.uses_turbo(area.decoder):
        decoder = f"TurboJPEG (simplejpeg {jpeg_turbo.simplejpeg.__version__})"
    else:
        decoder = "Pillow's (simplejpeg is not installed: pip install 'lucid-resnet[jpeg]')"
    print(f"default JPEG decoder: {decoder}; its batches equal decoder='pillow''s: {same}")
    print("per core (CPU time of one thread, batches measured in turns):")
    for name, sec in cpu.items():
        print(f"  {name:34s} {1 / sec:7.1f} img/s per core   {base / sec:5.2f}x baseline")
    print("DataLoader imagenet_train(224), wall clock (median pass; workers kept between passes "
          "(persistent_workers) but in the last line, which pays their start-up every pass):")
    for name, t in wall.items():
        print(f"  {name:34s} {n / float(np.median(t)):7.1f} img/s")


if __name__ == "__main__":
    main()
