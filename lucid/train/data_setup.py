"""Datasets and loaders of a run: an ImageFolder tree (``root/train``, ``root/val``) or
in-memory fake data, each rank reading its share through a DistributedSampler.

Training drops the tail of each epoch (every step sees a full global batch, so the
maths of a step does not depend on the world size); evaluation never pads nor drops,
so every validation image counts exactly once.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from lucid import data
from lucid.data import transforms as T
from lucid.train.config import DataConfig


@dataclass
class RunData:
    train_loader: data.DataLoader
    val_loader: data.DataLoader
    train_sampler: data.DistributedSampler
    num_classes: int


def fake_dataset(n: int, cfg: DataConfig, num_classes: int, seed: int, split: int, transform) -> data.ArrayDataset:
    """Learnable synthetic images: one smooth random prototype per class (a 4x4 pattern
    blown up, so crops and flips keep it recognisable; shared by all splits) plus noise
    drawn per split (uint8 HWC)."""
    size = cfg.image_size
    coarse = np.random.default_rng(seed).integers(0, 256, (num_classes, 4, 4, cfg.channels))
    cell = -(-size // 4)
    protos = coarse.repeat(cell, axis=1).repeat(cell, axis=2)[:, :size, :size]
    rng = np.random.default_rng([seed, split])
    labels = rng.integers(0, num_classes, n)
    noise = rng.normal(0, 40, (n, size, size, cfg.channels))
    images = np.clip(protos[labels] + noise, 0, 255).astype(np.uint8)
    if cfg.channels == 1:
        images = images[..., 0]  # PIL's "L" images are 2-D
    return data.ArrayDataset(images, labels.astype(np.int64), transform=T.Compose([T.ToPILImage(), transform]))


def _transforms(cfg: DataConfig):
    train = data.preset(cfg.train_preset, size=cfg.image_size, channels=cfg.channels, **cfg.train_preset_args)
    val = data.preset(cfg.eval_preset, size=cfg.image_size, channels=cfg.channels, **cfg.eval_preset_args)
    return train, val


def _split_dir(cfg: DataConfig, split: str) -> str:
    path = os.path.join(cfg.root, split)
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"data.root: no '{split}' folder under {cfg.root!r} (expected {path}/<class>/<image>); "
            "for Fashion-MNIST run: python -m launch.prepare_data fashion-mnist --out " + cfg.root
        )
    return path


def build_data(cfg: DataConfig, num_classes: int, rank: int, world: int, seed: int) -> RunData:
    """Loaders for this rank; ``cfg.batch_size`` is the per-rank batch."""
    train_tf, val_tf = _transforms(cfg)
    if cfg.source == "fake":
        train_set = fake_dataset(cfg.fake_train_samples, cfg, num_classes, seed, 0, train_tf)
        val_set = fake_dataset(cfg.fake_val_samples, cfg, num_classes, seed, 1, val_tf)
    else:
        train_set = data.ImageFolder(_split_dir(cfg, cfg.train_split), transform=train_tf, on_error=cfg.on_error)
        val_set = data.ImageFolder(_split_dir(cfg, cfg.val_split), transform=val_tf, on_error=cfg.on_error)
        found = len(train_set.classes)
        if found != num_classes:
            raise ValueError(
                f"model.num_classes = {num_classes} but {cfg.root}/{cfg.train_split} has {found} class folders"
            )
    if len(train_set) < cfg.batch_size * world:
        raise ValueError(
            f"data: {len(train_set)} training samples cannot fill one global batch of "
            f"{cfg.batch_size} x {world} ranks; lower data.batch_size"
        )
    train_sampler = data.DistributedSampler(len(train_set), world, rank, shuffle=True, seed=seed, drop_last=True)
    val_sampler = data.DistributedSampler(len(val_set), world, rank, shuffle=False, eval_mode=True)
    train_loader = data.DataLoader(
        train_set, cfg.batch_size, sampler=train_sampler, num_workers=cfg.workers, drop_last=True, seed=seed
    )
    val_loader = data.DataLoader(
        val_set, cfg.eval_batch_size or cfg.batch_size, sampler=val_sampler, num_workers=cfg.workers, seed=seed
    )
    return RunData(train_loader, val_loader, train_sampler, num_classes)
