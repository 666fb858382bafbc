"""Mixup/CutMix of global batches through the real sampler, loader and Sendrecv.

    mix_global.py GLOBAL_BATCH STEPS ACCUM

Every rank loads its share (per-rank batch GLOBAL_BATCH / world) of a 48-sample
dataset with the training DistributedSampler, mixes each micro-batch with
GlobalBatchMix (mixup and CutMix both on, so both kinds occur over the steps) and
reports, per (step, micro), the dataset indices it held, its mixed images and soft
targets, and the parameters drawn. The test puts the global batches back together by
index and compares world sizes.
"""
import sys

import numpy as np
from script_io import report

import lucid.distributed as dist
from lucid import data
from lucid.data.mix import Mixup, mix_generator
from lucid.train.batch_mix import GlobalBatchMix

GLOBAL, STEPS, ACCUM = (int(a) for a in sys.argv[1:4])
dist.init()
r, w = dist.rank(), dist.world_size()
rng = np.random.default_rng(7)
images = rng.integers(0, 256, (48, 6, 5, 3), dtype=np.uint8)
labels = rng.integers(0, 4, 48)
ids = np.arange(48)
dataset = data.ArrayDataset(images, labels, ids, transform=data.transforms.Compose([data.transforms.ToArray()]))
sampler = data.DistributedSampler(len(dataset), w, r, shuffle=True, seed=3, drop_last=True)
loader = data.DataLoader(dataset, GLOBAL // w, sampler=sampler, drop_last=True, seed=3)
mixup = Mixup(mixup_alpha=0.4, cutmix_alpha=1.0, prob=0.9, switch_prob=0.5, label_smoothing=0.1, num_classes=4)
mix = GlobalBatchMix(mixup, seed=11, rank=r, world=w)
out = {}
batches = iter(loader)
for step in range(STEPS):
    for micro in range(ACCUM):
        x, y, idx = next(batches)
        mixed, targets = mix(x, y, step, micro)
        p = mixup.params(mix_generator(11, step, micro), 6, 5)
        out[f"{step}.{micro}"] = {
            "ids": idx.numpy(), "images": mixed.numpy(), "targets": targets.numpy(),
            "lam": p.lam, "cutmix": p.cutmix, "box": p.box, "channels_last": mixed.data.transpose(0, 2, 3, 1).flags.c_contiguous,
        }
report(r, world=w, batches=out)
