"""Data sources by name, for configs: where a run's images come from.

Each entry is ``source(cfg, split, num_classes, seed, transform, **args)`` returning a
dataset of (image, label) for ``split`` ("train" or "val"); ``cfg`` is the run's
DataConfig, ``args`` the config's ``[data.source_args]``. Add one with
``@SOURCES.register("name")``.
"""
from __future__ import annotations

import os

import numpy as np

from lucid import data
from lucid.data import transforms as T
from lucid.registry import Registry

SOURCES = Registry("data source", supplied=("cfg", "split", "num_classes", "seed", "transform"))


def _split_dir(cfg, split_dir: str) -> str:
    path = os.path.join(cfg.root, split_dir)
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"data.root: no '{split_dir}' folder under {cfg.root!r} (expected {path}/<class>/<image>); "
            "for Fashion-MNIST run: python -m launch.prepare_data fashion-mnist --out " + cfg.root
        )
    return path


@SOURCES.register("folder")
def folder(cfg, split: str, num_classes: int, seed: int, transform, decoder: str = "auto") -> data.ImageFolder:
    """An ImageFolder tree: ``root/<train_split or val_split>/<class>/<image>``; ``decoder``
    is ImageFolder's JPEG decoder ("auto", "turbo", "turbo_fast", "pillow")."""
    split_dir = cfg.train_split if split == "train" else cfg.val_split
    dataset = data.ImageFolder(_split_dir(cfg, split_dir), transform=transform, on_error=cfg.on_error, decoder=decoder)
    if split == "train" and len(dataset.classes) != num_classes:
        raise ValueError(
            f"model.num_classes = {num_classes} but {cfg.root}/{split_dir} has {len(dataset.classes)} class folders"
        )
    return dataset


@SOURCES.register("fake")
def fake(cfg, split: str, num_classes: int, seed: int, transform, train_samples: int = 256, val_samples: int = 64):
    """Learnable synthetic images of ``cfg.image_size`` and ``cfg.channels``, made in memory."""
    for key, n in (("train_samples", train_samples), ("val_samples", val_samples)):
        if n <= 0:
            raise ValueError(f"{key} must be > 0, got {n}")
    n, index = (train_samples, 0) if split == "train" else (val_samples, 1)
    return fake_dataset(n, cfg.image_size, cfg.channels, num_classes, seed, index, transform)


def fake_dataset(
    n: int, size: int, channels: int, num_classes: int, seed: int, split: int, transform
) -> data.ArrayDataset:
    """Learnable synthetic images: one smooth random prototype per class (a 4x4 pattern
    blown up, so crops and flips keep it recognisable; shared by all splits) plus noise
    drawn per split (uint8 HWC)."""
    coarse = np.random.default_rng(seed).integers(0, 256, (num_classes, 4, 4, channels))
    cell = -(-size // 4)
    protos = coarse.repeat(cell, axis=1).repeat(cell, axis=2)[:, :size, :size]
    rng = np.random.default_rng([seed, split])
    labels = rng.integers(0, num_classes, n)
    noise = rng.normal(0, 40, (n, size, size, channels))
    images = np.clip(protos[labels] + noise, 0, 255).astype(np.uint8)
    if channels == 1:
        images = images[..., 0]  # PIL's "L" images are 2-D
    return data.ArrayDataset(images, labels.astype(np.int64), transform=T.Compose([T.ToPILImage(), transform]))
