"""DistributedSampler: one global order per (seed, epoch), shared out among ranks.

The epoch's *global order* is a permutation of ``range(num_samples)`` drawn from
``seed + epoch`` (PyTorch's semantics). Rank ``r`` of ``W`` takes positions
``r, r + W, r + 2W, ...`` of it, so after every rank has consumed ``j`` samples the
first ``j * W`` positions of the global order are done, whatever ``W`` is. That prefix
length is the resumable cursor: ``state_dict()`` stores ``{"epoch", "consumed"}`` and
``load_state_dict()`` at any world size continues with positions ``consumed, ...`` of
the same order, so global batches keep their content when ``batch_per_rank * W`` is kept.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

STATE_VERSION = 1


class DistributedSampler:
    """Indices of this rank's share of one epoch.

    Args:
        num_samples: size of the dataset (an int, or anything with ``len()``).
        num_replicas: world size (number of ranks sharing the epoch).
        rank: this rank, ``0 <= rank < num_replicas``.
        shuffle: permute with ``seed + epoch``; otherwise the order is ``0..n-1``.
        seed: base seed of the permutation (the same on every rank).
        drop_last: drop the tail of the global order so that it divides evenly;
            otherwise pad by wrapping around to its start (PyTorch's behaviour).
        eval_mode: never pad nor drop: every sample is visited exactly once and the
            shares differ in length by at most one (distributed evaluation).
    """

    def __init__(
        self,
        num_samples,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        eval_mode: bool = False,
    ):
        n = num_samples if isinstance(num_samples, (int, np.integer)) else len(num_samples)
        if n < 0:
            raise ValueError(f"DistributedSampler: num_samples must be >= 0, got {n}")
        if num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be >= 1, got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: rank {rank} is outside [0, {num_replicas - 1}]")
        if eval_mode and drop_last:
            raise ValueError("DistributedSampler: eval_mode never drops samples; drop_last must be False")
        self.num_samples = int(n)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.eval_mode = bool(eval_mode)
        self.epoch = 0
        self.consumed = 0  # global positions of this epoch's order consumed so far
        self._start = 0  # global position the next iteration starts from (one-shot)

    # -- epoch and order -----------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (and so the permutation). A resume position loaded for the
        same epoch is kept; moving to another epoch starts it from the beginning."""
        epoch = int(epoch)
        if epoch != self.epoch:
            self._start = 0
            self.consumed = 0
        self.epoch = epoch

    def global_order(self) -> np.ndarray:
        """The epoch's order of all sample indices (int64), the same on every rank."""
        if self.shuffle:
            return np.random.default_rng(self.seed + self.epoch).permutation(self.num_samples).astype(np.int64)
        return np.arange(self.num_samples, dtype=np.int64)

    def _positions(self, start: int) -> tuple[int, int]:
        """(end, total): positions [start, end) are real samples; up to total with padding."""
        remaining = self.num_samples - start
        w = self.num_replicas
        if self.eval_mode:
            return self.num_samples, self.num_samples
        if self.drop_last:
            end = start + remaining // w * w
            return end, end
        return self.num_samples, start + -(-remaining // w) * w

    def indices(self) -> np.ndarray:
        """This rank's indices for the next iteration (from the resume position, if any)."""
        order = self.global_order()
        start = self._start
        end, total = self._positions(start)
        seq = order[start:end]
        pad = total - end
        if pad > 0 and self.num_samples > 0:
            seq = np.concatenate([seq, np.resize(order, pad)])  # wrap around like PyTorch
        return seq[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        """Start an iteration: from the loaded resume position once, else from 0."""
        indices = self.indices()
        self.consumed = self._start
        self._start = 0
        return iter(indices.tolist())

    def __len__(self) -> int:
        """Number of indices the next iteration yields on this rank."""
        start = self._start
        end, total = self._positions(start)
        count = total - start
        return max(0, (count - self.rank + self.num_replicas - 1) // self.num_replicas)

    # -- resumable position --------------------------------------------------------
    def mark_consumed(self, local_count: int) -> None:
        """Record that this rank consumed ``local_count`` more of its indices; the
        DataLoader calls it as it hands out batches. Every rank advances in step, so the
        global cursor moves by ``local_count * num_replicas`` (capped at num_samples)."""
        self.consumed = min(self.num_samples, self.consumed + int(local_count) * self.num_replicas)

    def mark_epoch_done(self) -> None:
        """The iteration ran to its end: the epoch is complete (dropped tails included)."""
        self.consumed = self.num_samples
        self._start = 0

    def state_dict(self) -> dict:
        """``{"epoch", "consumed", ...}``: ``consumed`` is the number of leading positions of
        the epoch's global order already consumed by all ranks together."""
        return {
            "version": STATE_VERSION,
            "epoch": self.epoch,
            "consumed": self.consumed,
            "num_samples": self.num_samples,
            "seed": self.seed,
            "shuffle": self.shuffle,
        }

    def load_state_dict(self, state: dict) -> None:
        """Resume from ``state`` (written at any world size): the next iteration visits the
        positions ``consumed ..`` of epoch ``state["epoch"]``'s order, shared among this
        sampler's ranks."""
        for key in ("num_samples", "seed", "shuffle"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(
                    f"DistributedSampler.load_state_dict: {key} is {getattr(self, key)!r} here but "
                    f"{state[key]!r} in the state; resuming needs the same dataset and order"
                )
        consumed = int(state["consumed"])
        if not 0 <= consumed <= self.num_samples:
            raise ValueError(
                f"DistributedSampler.load_state_dict: consumed={consumed} is outside [0, {self.num_samples}]"
            )
        self.epoch = int(state["epoch"])
        self.consumed = consumed
        self._start = consumed  # == num_samples: the epoch is finished, iterating it yields nothing

    @property
    def epoch_done(self) -> bool:
        return self.consumed >= self.num_samples

    def __repr__(self) -> str:
        return (
            f"DistributedSampler(num_samples={self.num_samples}, num_replicas={self.num_replicas}, "
            f"rank={self.rank}, shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last}, "
            f"eval_mode={self.eval_mode})"
        )
