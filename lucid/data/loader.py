"""DataLoader: batches in sampler order, computed in parallel, resumable mid-epoch."""
from __future__ import annotations

import weakref

import numpy as np

from lucid.data.collate import to_tensors
from lucid.data.sampler import DistributedSampler
from lucid.data.workers import WORKER_MODES, make_backend


class DataLoader:
    """Iterate over ``dataset`` in batches.

    Args:
        dataset: a lucid Dataset (``get(index, rng, out)``) or anything indexable with ``len()``.
        batch_size: samples per batch (on this rank).
        sampler: the index order, e.g. a DistributedSampler; by default a single-rank
            DistributedSampler with ``shuffle`` and ``seed`` (its epoch advances after
            every complete pass, so each pass is reshuffled).
        shuffle: shuffle the default sampler (not allowed together with ``sampler``).
        num_workers: 0 computes batches in the iterating thread; N > 0 uses N workers.
        prefetch: batches in flight per worker.
        drop_last: drop this rank's last incomplete batch.
        collate_fn: ``f(list of samples) -> batch`` instead of the default, which writes
            images into one preallocated (N, H, W, C) array and yields lucid Tensors
            ``(images (N, C, H, W) channels-last float32, labels (N,) int64)``.
        seed: seed of the augmentation (and of the default sampler's order) when the
            sampler has no ``seed`` of its own.
        worker_mode: "thread" (default; see lucid/data/workers.py) or "process".
        persistent_workers: keep the workers between iterations (epochs) instead of starting
            new ones each time: worker processes then start, and receive the dataset, once.
            Each later iteration checks that the dataset and collate_fn are still what the
            workers have (process workers: a hash of them pickled, streamed; thread
            workers: the same objects) and starts new workers when not, so a transform
            changed between epochs is used. ``close()`` stops them, and so does garbage
            collection of the loader.
    """

    def __init__(
        self,
        dataset,
        batch_size: int = 1,
        sampler=None,
        shuffle: bool = False,
        num_workers: int = 0,
        prefetch: int = 2,
        drop_last: bool = False,
        collate_fn=None,
        seed: int = 0,
        worker_mode: str = "thread",
        persistent_workers: bool = False,
    ):
        if batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        if num_workers < 0 or prefetch < 1:
            raise ValueError(f"DataLoader: need num_workers >= 0 and prefetch >= 1, got {num_workers}, {prefetch}")
        if worker_mode not in WORKER_MODES:
            raise ValueError(f"DataLoader: worker_mode must be one of {WORKER_MODES}, got {worker_mode!r}")
        if persistent_workers and num_workers == 0:
            raise ValueError("DataLoader: persistent_workers=True needs num_workers > 0 (with 0 there are no workers to keep)")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: shuffle=True cannot be combined with a sampler (the sampler decides the order)")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self._own_sampler = sampler is None
        self.sampler = DistributedSampler(len(dataset), 1, 0, shuffle=shuffle, seed=seed) if sampler is None else sampler
        self.num_workers = int(num_workers)
        self.prefetch = int(prefetch)
        self.drop_last = bool(drop_last)
        self.collate_fn = collate_fn
        self.seed = int(seed)
        self.worker_mode = worker_mode
        self.persistent_workers = bool(persistent_workers)
        self._backend = None  # the kept workers (persistent_workers)
        self._finalizer = None
        self._epoch = 0  # augmentation epoch for samplers without one
        self._live = None

    # -- epoch and length ----------------------------------------------------------
    @property
    def epoch(self) -> int:
        return int(getattr(self.sampler, "epoch", self._epoch))

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch of the order and of the augmentation."""
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        self._epoch = int(epoch)

    def __len__(self) -> int:
        """Batches the next iteration yields (a full epoch's, unless a mid-epoch state
        was loaded: then the remaining ones)."""
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    # -- resumable position --------------------------------------------------------
    def state_dict(self) -> dict:
        """The sampler's state: ``{"epoch", "consumed", ...}`` where ``consumed`` counts
        the leading samples of the epoch's global order handed out by every rank."""
        if not hasattr(self.sampler, "state_dict"):
            raise TypeError(f"DataLoader.state_dict: the sampler {type(self.sampler).__name__} has no state_dict()")
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """Resume: the next iteration continues epoch ``state["epoch"]`` after its
        first ``state["consumed"]`` samples (any world size)."""
        if not hasattr(self.sampler, "load_state_dict"):
            raise TypeError(f"DataLoader.load_state_dict: the sampler {type(self.sampler).__name__} has no load_state_dict()")
        self.sampler.load_state_dict(state)
        self._epoch = int(state.get("epoch", self._epoch))

    # -- iteration -------------------------------------------------------------------
    def __iter__(self):
        self._end_live_iteration()  # one live iteration (and one set of workers) at a time
        gen = self._iterate()
        self._live = weakref.ref(gen)
        return gen

    def _end_live_iteration(self) -> None:
        previous = self._live() if self._live is not None else None
        if previous is not None:
            previous.close()

    def _batches(self) -> list:
        indices = np.fromiter(iter(self.sampler), dtype=np.int64)
        b = self.batch_size
        count = len(indices) // b if self.drop_last else -(-len(indices) // b)
        return [indices[k * b : (k + 1) * b] for k in range(count)]

    def _iterate(self):
        batches = self._batches()
        seed = int(getattr(self.sampler, "seed", self.seed))
        epoch = self.epoch
        backend = self._open_backend() if batches else None
        ahead = self.prefetch * max(1, self.num_workers)
        submitted = 0
        try:
            for b, indices in enumerate(batches):
                while submitted < min(len(batches), b + ahead):
                    backend.submit(submitted, batches[submitted], seed, epoch)
                    submitted += 1
                batch = backend.result(b)
                if self.collate_fn is None:
                    batch = to_tensors(batch)
                self._advance(len(indices), last=b == len(batches) - 1)
                yield batch
            if not batches:
                self._advance(0, last=True)
        finally:
            if backend is not None and not self.persistent_workers:
                backend.close()

    def _open_backend(self):
        """This iteration's workers: new ones, or with persistent_workers the kept ones, their
        batches still in flight from an abandoned iteration dropped first."""
        if not self.persistent_workers:
            return self._new_backend()
        if self._backend is not None and (getattr(self._backend, "broken", False)
                                          or self._backend.stale(self.dataset, self.collate_fn)):
            self._close_backend()  # a worker died (reported then), or they have an old dataset: start new ones
        if self._backend is None:
            self._backend = self._new_backend()
            self._finalizer = weakref.finalize(self, self._backend.close)
            return self._backend
        try:
            self._backend.drain()
        except BaseException:
            self._close_backend()  # a worker died: the next iteration starts new ones
            raise
        return self._backend

    def _new_backend(self):
        return make_backend(self.worker_mode, self.dataset, self.collate_fn, self.num_workers, self.prefetch,
                            kept=self.persistent_workers)

    def close(self) -> None:
        """Stop the workers kept by ``persistent_workers`` (a later iteration starts new ones);
        an iteration still going ends here."""
        self._end_live_iteration()
        self._close_backend()

    def _close_backend(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # closes the backend, once
        self._backend = self._finalizer = None

    def _advance(self, count: int, last: bool) -> None:
        """Record ``count`` samples as handed out; after the last batch the epoch is done
        (the default sampler then moves to the next epoch)."""
        if last and hasattr(self.sampler, "mark_epoch_done"):
            self.sampler.mark_epoch_done()
            if self._own_sampler:
                self.set_epoch(self.epoch + 1)
        elif hasattr(self.sampler, "mark_consumed"):
            self.sampler.mark_consumed(count)
