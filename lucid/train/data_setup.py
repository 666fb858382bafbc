"""Datasets and loaders of a run: the configured data source (an ImageFolder tree, fake
data, or any registered source) read by each rank through a DistributedSampler.

Training drops the tail of each epoch (every step sees a full global batch, so the
maths of a step does not depend on the world size); evaluation never pads nor drops,
so every validation image counts exactly once.
"""
from __future__ import annotations

from dataclasses import dataclass

from lucid import data
from lucid.train.config import DataConfig
from lucid.train.data_sources import SOURCES


@dataclass
class RunData:
    train_loader: data.DataLoader
    val_loader: data.DataLoader
    train_sampler: data.DistributedSampler
    num_classes: int
    normalize: tuple | None = None  # (mean, std) still to apply to the image batches (data.normalize_on = "device")


def _transform(cfg: DataConfig, split: str) -> tuple:
    """(the split's preset transform, the (mean, std) left to the batch or None)."""
    key = "train" if split == "train" else "eval"
    name, args = (cfg.train_preset, cfg.train_preset_args) if split == "train" else (cfg.eval_preset, cfg.eval_preset_args)
    try:
        transform = data.preset(name, size=cfg.image_size, channels=cfg.channels, **args)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"data.{key}_preset_args = {args!r} rejected by transform preset {name!r}: {exc}") from None
    if cfg.normalize_on == "loader":
        if getattr(transform, "yields_uint8", False):
            raise ValueError(f"data.{key}_preset {name!r} with {args!r} yields uint8 images that nothing would "
                             "normalise; set data.normalize_on = 'device' (or keep the preset's normalize = true)")
        return transform, None
    try:
        return transform.defer_normalize()
    except (AttributeError, ValueError) as exc:
        raise ValueError(f"data.normalize_on = 'device' needs data.{key}_preset {name!r} to end in ToArray + Normalize "
                         f"({exc}); use data.normalize_on = 'loader'") from None


def batch_normalization(cfg: DataConfig) -> tuple | None:
    """The (mean, std) that the run's image batches still need (data.normalize_on = "device"),
    the same for training and evaluation; None when the loaders normalise."""
    if cfg.normalize_on == "device" and (cfg.mixup_alpha > 0 or cfg.cutmix_alpha > 0):
        raise ValueError("data.normalize_on = 'device' does not combine with data.mixup_alpha / data.cutmix_alpha: "
                         "mixing runs on the host, before the copy, on normalised floats; use data.normalize_on = 'loader'")
    norms = {split: _transform(cfg, split)[1] for split in ("train", "val")}
    if norms["train"] != norms["val"]:
        raise ValueError(f"data.normalize_on = 'device': the train and eval presets normalise differently "
                         f"({norms['train']} vs {norms['val']}); one normalisation serves both on the device")
    return norms["train"]


def _dataset(cfg: DataConfig, split: str, num_classes: int, seed: int):
    transform = _transform(cfg, split)[0]
    return SOURCES.build(cfg.source, cfg, split, num_classes, seed, transform, **cfg.source_args)


def build_val_loader(cfg: DataConfig, num_classes: int, rank: int, world: int, seed: int, batch_size: int) -> data.DataLoader:
    """This rank's share of the validation split, every image exactly once over all ranks;
    batches of ``cfg.eval_batch_size``, else ``batch_size``."""
    val_set = _dataset(cfg, "val", num_classes, seed)
    if getattr(val_set, "on_error", None) == "skip":  # count exactly the readable images, never a duplicate
        val_set = data.LeaveOutUnreadable(val_set)
    val_sampler = data.DistributedSampler(len(val_set), world, rank, shuffle=False, eval_mode=True)
    return data.DataLoader(val_set, cfg.eval_batch_size or batch_size, sampler=val_sampler, seed=seed, **_workers(cfg))


def _workers(cfg: DataConfig) -> dict:
    """The DataLoader's worker arguments from the config (keeping no workers when there are none)."""
    return {"num_workers": cfg.workers, "worker_mode": cfg.worker_mode,
            "persistent_workers": cfg.persistent_workers and cfg.workers > 0}


def build_data(cfg: DataConfig, num_classes: int, rank: int, world: int, seed: int, batch_size: int | None = None) -> RunData:
    """Loaders for this rank; ``batch_size`` is the per-rank batch (``cfg.batch_size`` unless
    the run resolved another one, e.g. to keep a checkpoint's global batch)."""
    batch_size = cfg.batch_size if batch_size is None else batch_size
    normalize = batch_normalization(cfg)  # a setting that cannot work stops here, before any folder is indexed
    train_set = _dataset(cfg, "train", num_classes, seed)
    if len(train_set) < batch_size * world:
        raise ValueError(
            f"data: {len(train_set)} training samples cannot fill one global batch of "
            f"{batch_size} x {world} ranks; lower data.batch_size"
        )
    train_sampler = data.DistributedSampler(len(train_set), world, rank, shuffle=True, seed=seed, drop_last=True)
    train_loader = data.DataLoader(
        train_set, batch_size, sampler=train_sampler, drop_last=True, seed=seed, **_workers(cfg)
    )
    val_loader = build_val_loader(cfg, num_classes, rank, world, seed, batch_size)
    return RunData(train_loader, val_loader, train_sampler, num_classes, normalize)
