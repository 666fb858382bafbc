"""Mixup/CutMix of each GLOBAL training batch, the same at every world size.

A global micro-batch is the ``G = B * W`` samples that ``W`` ranks of per-rank batch
``B`` take together for one micro-step; it is the same set of samples at every world
size because the run keeps ``B * W`` (the global batch) fixed. timm's batch mode mixes
global position ``g`` with ``G - 1 - g`` under one set of parameters drawn from
``mix_generator(seed, step, micro)``: the same numbers on every rank, no broadcast.

Where a sample's partner lives: the DistributedSampler deals positions round-robin
(rank ``r`` holds ``r, r + W, r + 2W, ...``), so local sample ``i`` of rank ``r`` is
global position ``g = i * W + r`` and its partner ``G - 1 - g = (B - 1 - i) * W +
(W - 1 - r)`` is local sample ``B - 1 - i`` of rank ``W - 1 - r``. Each rank therefore
needs exactly one peer's batch, reversed: one Sendrecv of images and one of labels
with rank ``W - 1 - r`` (the middle rank of an odd world is its own peer). That is
the least any exact scheme moves: every sample's partner is elsewhere unless the
rank is its own peer.
"""
from __future__ import annotations

import functools
from typing import Iterator

import numpy as np

from lucid.data.mix import Mixup, mix_generator
from lucid.distributed.comm import resolve
from lucid.distributed.group import ProcessGroup
from lucid.distributed.p2p import sendrecv
from lucid.tensor import Tensor
from lucid.train.config import TrainConfig


class GlobalBatchMix:
    """Mixes this rank's share of each global micro-batch.

    Args:
        mixup: the Mixup/CutMix settings (parameters per batch).
        seed: the run's seed.
        rank, world: this rank and the size of the data-parallel process group.
        exchange: ``exchange(array, peer) -> peer's array`` (default: MPI Sendrecv
            over the world; pass ``functools.partial(sendrecv, group=g)`` for a group).
        target_dtype: dtype of the soft targets (the run's float dtype).
    """

    def __init__(self, mixup: Mixup, seed: int, rank: int, world: int, exchange=sendrecv, target_dtype: str = "float32"):
        self.mixup, self.seed = mixup, int(seed)
        self.rank, self.world = int(rank), int(world)
        self.peer = self.world - 1 - self.rank
        self.exchange = exchange
        self.target_dtype = np.dtype(target_dtype)

    def partners(self, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The flip partner of each local sample: the peer's batch reversed."""
        if self.peer != self.rank:
            images, labels = self.exchange(images, self.peer), self.exchange(labels, self.peer)
        return images[::-1], labels[::-1]

    def __call__(self, images: Tensor, labels: Tensor, step: int, micro: int) -> tuple[Tensor, Tensor]:
        """(mixed images, soft targets (N, num_classes)) for optimizer step ``step``'s
        accumulation micro-step ``micro``; ``images`` is the loader's (N, C, H, W) host batch."""
        if images.device != "cpu" or labels.device != "cpu":
            raise ValueError(f"GlobalBatchMix mixes the loader's host batches (before any copy to a device), got {images.device}")
        x = images.data.transpose(0, 2, 3, 1)  # the NHWC memory of the channels-last batch
        y = np.asarray(labels.data)
        params = self.mixup.params(mix_generator(self.seed, step, micro), x.shape[1], x.shape[2])
        if not params.mixes:  # the same decision on every rank: no exchange
            return images, self._targets(y, y, params)
        partner_x, partner_y = self.partners(np.ascontiguousarray(x), y)
        mixed = self.mixup.mix_images(x, partner_x, params)
        return Tensor._wrap(mixed.transpose(0, 3, 1, 2), "cpu"), self._targets(y, partner_y, params)

    def _targets(self, y, partner_y, params) -> Tensor:
        return Tensor._wrap(self.mixup.targets(y, partner_y, params).astype(self.target_dtype, copy=False), "cpu")

    def stream(self, batches: Iterator, first_step: int, accum: int) -> Iterator[tuple[Tensor, Tensor]]:
        """The loader's ``(images, labels)`` batches mixed in order: batch ``j`` is micro-step
        ``j % accum`` of optimizer step ``first_step + j // accum``."""
        for j, (images, labels) in enumerate(batches):
            yield self(images, labels, first_step + j // accum, j % accum)


def build_batch_mix(cfg: TrainConfig, batch_size: int, group: ProcessGroup | None = None) -> GlobalBatchMix | None:
    """The run's GlobalBatchMix over the data-parallel ``group`` (None: the world), or None
    when ``data.mixup_alpha`` and ``data.cutmix_alpha`` are both 0. The global
    micro-batch ``batch_size * group size`` must be even (timm's pairing)."""
    d = cfg.data
    if not (d.mixup_alpha > 0 or d.cutmix_alpha > 0):
        return None
    g = resolve(group)
    rank, world = g.rank, g.size
    if batch_size * world % 2:
        raise ValueError(
            f"data.mixup_alpha / data.cutmix_alpha pair global positions g and G-1-g of each global batch, "
            f"which needs an even G: data.batch_size {batch_size} x {world} rank(s) = {batch_size * world}"
        )
    mixup = Mixup(d.mixup_alpha, d.cutmix_alpha, d.mix_prob, d.switch_prob, cfg.optim.label_smoothing, cfg.model.num_classes)
    return GlobalBatchMix(mixup, cfg.run.seed, rank, world, functools.partial(sendrecv, group=group), cfg.run.dtype)
