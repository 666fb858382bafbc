"""Where batches are computed: in the caller, in threads, or in worker processes.

Threads are the default: Pillow releases the GIL while it decodes and resamples
and NumPy while it converts, so threads scale over cores for the image pipeline,
share the dataset without pickling, write batches in place, and are safe under
mpiexec (nothing forks). Processes are for datasets whose Python code holds the GIL
(``lucid.data.process_workers``).

All three return the same batches: each sample's randomness comes from its own
(seed, epoch, index) generator, not from the worker that computes it.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait

from lucid.data.fetch import fetch_batch, fetch_held
from lucid.data.process_workers import ProcessBackend, WorkerError

__all__ = ["WORKER_MODES", "WorkerError", "SyncBackend", "ThreadBackend", "ProcessBackend", "make_backend"]

WORKER_MODES = ("thread", "process")


class SyncBackend:
    """Computes each batch when it is asked for (num_workers=0)."""

    def __init__(self, dataset, collate_fn):
        self.dataset, self.collate_fn = dataset, collate_fn
        self._tasks: dict[int, tuple] = {}

    def submit(self, batch_id: int, indices, seed: int, epoch: int) -> None:
        self._tasks[batch_id] = (indices, seed, epoch)

    def result(self, batch_id: int):
        indices, seed, epoch = self._tasks.pop(batch_id)
        return fetch_batch(self.dataset, indices, seed, epoch, self.collate_fn)[0]

    def drain(self) -> None:
        self._tasks.clear()

    def close(self) -> None:
        self._tasks.clear()


class ThreadBackend:
    """A pool of threads, one batch per task."""

    def __init__(self, dataset, collate_fn, num_workers: int):
        self.dataset, self.collate_fn = dataset, collate_fn
        self._pool = ThreadPoolExecutor(num_workers, thread_name_prefix="lucid-data")
        self._futures: dict = {}

    def submit(self, batch_id: int, indices, seed: int, epoch: int) -> None:
        self._futures[batch_id] = self._pool.submit(fetch_held, self.dataset, indices, seed, epoch, self.collate_fn)

    def stale(self, dataset, collate_fn) -> bool:
        """Whether ``dataset`` or ``collate_fn`` are other objects than the ones the threads use."""
        return dataset is not self.dataset or collate_fn is not self.collate_fn

    def result(self, batch_id: int):
        batch, _, records = self._futures.pop(batch_id).result()
        if records:
            self.dataset.skip_log.merge(records)
        return batch

    def drain(self) -> None:
        """Drop the batches in flight: cancel those not started, wait for the running ones."""
        running = [f for f in self._futures.values() if not f.cancel()]
        wait(running)
        self._futures.clear()

    def close(self) -> None:
        for f in self._futures.values():
            f.cancel()
        self._futures.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)


def make_backend(mode: str, dataset, collate_fn, num_workers: int, prefetch: int, kept: bool = False):
    """The workers of ``mode`` (none when ``num_workers`` is 0); ``kept``: they will serve several
    iterations (``persistent_workers``) and are asked whether they are ``stale``."""
    if num_workers == 0:
        return SyncBackend(dataset, collate_fn)
    if mode == "thread":
        return ThreadBackend(dataset, collate_fn, num_workers)
    return ProcessBackend(dataset, collate_fn, num_workers, prefetch, kept)
