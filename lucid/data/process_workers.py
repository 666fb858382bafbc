"""Worker processes for the DataLoader (``worker_mode="process"``).

For datasets whose Python code holds the GIL. Workers start through a forkserver (never
a plain fork of an MPI process), receive the dataset and collate_fn once (pickled),
then only index lists, and return images through per-worker shared-memory slots that
the main process maps without a copy. A worker's death, a dataset error in it and the
main process's death are all noticed; see ``ProcessBackend``.
"""
from __future__ import annotations

import hashlib
import math
import mmap
import multiprocessing as mp
import os
import pickle
import signal
import time
import traceback
import weakref
from multiprocessing import connection, shared_memory

import numpy as np

from lucid import _malloc
from lucid.data.bad_images import SkipLog
from lucid.data.fetch import fetch_held

_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # map a slot's pages at once (Linux), not page by page


class WorkerError(RuntimeError):
    """A DataLoader worker process failed or died; the message carries its traceback."""


class _HashSink:
    """A file for pickle that keeps only a hash of what is written to it."""

    def __init__(self):
        self.hash = hashlib.blake2b(digest_size=16)

    def write(self, data) -> int:
        self.hash.update(data)
        return len(data)


class _DigestPickler(pickle.Pickler):
    def persistent_id(self, obj):
        # a skip log's counts grow as the main process counts skipped images; workers only hold records
        return "skip_log" if isinstance(obj, SkipLog) else None


def payload_digest(dataset, collate_fn) -> bytes:
    """A hash of what a worker process receives, the dataset and collate_fn pickled (streamed,
    not kept): it changes when either does, in place or replaced. Skip logs are left out."""
    sink = _HashSink()
    _DigestPickler(sink, protocol=pickle.HIGHEST_PROTOCOL).dump((dataset, collate_fn))
    return sink.hash.digest()


def _context():
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["lucid.data.forkserver_preload"])
        return ctx
    return mp.get_context("spawn")


def _main_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _error_message(worker_id: int, indices, exc: BaseException) -> tuple[bytes | None, str]:
    tb = "".join(traceback.format_exception(exc))
    head = f"DataLoader worker process {worker_id} (pid {os.getpid()}) failed on dataset indices {list(indices)[:16]}"
    try:
        blob = pickle.dumps(exc)
        pickle.loads(blob)
    except Exception:
        blob = None
    return blob, f"{head}: {type(exc).__name__}: {exc}\n--- worker traceback ---\n{tb}"


def _worker_loop(worker_id, dataset, collate_fn, tasks, results, main_pid, tune_malloc=False):
    """Body of a worker process: batches in, results out, until told to stop. ``tune_malloc``:
    keep freed large blocks for reuse as the main process does (``lucid._malloc``): each
    decode's 0.75 MB image would otherwise be a fresh mmap, faulted in page by page."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when to stop
    if tune_malloc:
        _malloc.tune()
    slots: dict[str, shared_memory.SharedMemory] = {}
    try:
        while True:
            if not tasks.poll(0.5):
                if not _main_alive(main_pid):
                    return
                continue
            task = tasks.recv()
            if task is None:
                return
            batch_id, indices, seed, epoch, slot = task
            try:
                if slot is not None and slot not in slots:
                    slots[slot] = shared_memory.SharedMemory(name=slot)
                buffer = slots[slot].buf if slot is not None else None
                batch, in_buffer, records = fetch_held(dataset, indices, seed, epoch, collate_fn, buffer)
                if in_buffer:
                    images = batch[0] if isinstance(batch, tuple) else batch
                    marker = ("slot", images.shape, images.dtype.str)
                    batch = (marker, *batch[1:]) if isinstance(batch, tuple) else marker
                    del images
                results.send(("ok", batch_id, batch, in_buffer, records))
                del batch
            except Exception as exc:  # reported to the main process, which re-raises it
                results.send(("error", batch_id, *_error_message(worker_id, indices, exc)))
    finally:
        for shm in slots.values():
            try:
                shm.close()
            except BufferError:
                pass


class _Worker:
    def __init__(self, ctx, worker_id, dataset, collate_fn):
        task_r, self.tasks = ctx.Pipe(duplex=False)
        self.results, res_w = ctx.Pipe(duplex=False)
        self.process = ctx.Process(
            target=_worker_loop,
            args=(worker_id, dataset, collate_fn, task_r, res_w, os.getpid(), _malloc.tuned()),
            name=f"lucid-data-{worker_id}",
            daemon=True,
        )
        self.process.start()
        task_r.close()
        res_w.close()
        self.free: list[str] = []  # shared-memory slots not in use


class ProcessBackend:
    """Worker processes; batch ``b`` goes to worker ``b % num_workers``. Images come back
    through per-worker shared-memory slots (created once the batch size is known) and are
    handed out without a copy: the batch's array maps its slot, which goes back to the
    worker when the last view of that array is gone (a slot is created when none is free)."""

    def __init__(self, dataset, collate_fn, num_workers: int, prefetch: int, kept: bool = False):
        """``kept``: the workers serve several iterations (persistent_workers), so ``stale`` is asked."""
        self.dataset, self.collate_fn, self.prefetch = dataset, collate_fn, prefetch
        ctx = _context()
        self._workers: list[_Worker] = []
        self._shms: dict[str, shared_memory.SharedMemory] = {}
        self._slot_bytes = 0  # known after the first image batch
        self._closed = False
        self._inflight: dict[int, tuple[int, str | None]] = {}
        self._done: dict[int, object] = {}
        self.broken = False
        try:
            for w in range(num_workers):
                self._workers.append(_Worker(ctx, w, dataset, collate_fn))
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            self.close()
            raise TypeError(
                f"DataLoader(worker_mode='process') sends the dataset and collate_fn to its workers, "
                f"which needs them picklable (no lambdas or local classes): {exc}; worker_mode='thread' does not"
            ) from exc
        except BaseException:
            self.close()
            raise
        # what the workers received, for workers kept between iterations only (it costs a pickling)
        self._digest = payload_digest(dataset, collate_fn) if kept else None

    def stale(self, dataset, collate_fn) -> bool:
        """Whether ``dataset`` or ``collate_fn`` differ from what the workers received (``kept`` workers)."""
        if self._digest is None:
            raise RuntimeError("ProcessBackend.stale: only workers started with kept=True remember their dataset")
        return payload_digest(dataset, collate_fn) != self._digest

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers]

    def submit(self, batch_id: int, indices, seed: int, epoch: int) -> None:
        w = batch_id % len(self._workers)
        worker = self._workers[w]
        slot = worker.free.pop() if worker.free else self._new_slot()
        self._inflight[batch_id] = (w, slot)
        try:
            worker.tasks.send((batch_id, [int(i) for i in indices], seed, epoch, slot))
        except OSError:  # its end of the pipe is gone: the worker died
            self._died(worker)

    def result(self, batch_id: int):
        while batch_id not in self._done:
            self._poll()
        return self._done.pop(batch_id)

    def drain(self) -> None:
        """Wait for the batches in flight and drop them, their errors and skip records too: the
        workers are idle afterwards. A worker that died raises WorkerError."""
        while self._inflight:
            self._poll(discard=True)
        self._done.clear()

    def _poll(self, discard: bool = False) -> None:
        conns = {w.results: w for w in self._workers}
        sentinels = {w.process.sentinel: w for w in self._workers}
        ready = connection.wait([*conns, *sentinels], timeout=1.0)
        for r in ready:
            if r in conns:
                try:
                    msg = r.recv()
                except EOFError:
                    self._died(conns[r])
                self._handle(msg, discard)
        for r in ready:
            if r in sentinels and not sentinels[r].results.poll():
                self._died(sentinels[r])

    def _died(self, worker) -> None:
        self.broken = True  # persistent workers: the loader starts new ones next time
        p = worker.process
        p.join(1.0)
        raise WorkerError(
            f"DataLoader worker process {p.name} (pid {p.pid}) exited unexpectedly (exit code {p.exitcode}). "
            "Worker processes import the main module again: keep a script's work (and any MPI call) "
            "under `if __name__ == '__main__':`"
        )

    def _handle(self, msg, discard: bool = False) -> None:
        """Take one worker message: the batch into ``_done`` (or dropped with ``discard``), or its error raised."""
        kind, batch_id = msg[0], msg[1]
        w, slot = self._inflight.pop(batch_id)
        leased = False
        try:
            if discard:
                return
            if kind == "error":
                blob, text = msg[2], msg[3]
                exc = pickle.loads(blob) if blob is not None else WorkerError(text)
                if blob is not None:
                    exc.add_note(text)
                raise exc
            batch, in_buffer, records = msg[2], msg[3], msg[4]
            if in_buffer:
                batch, leased = self._lease(batch, w, slot), True
            else:
                self._make_slots(batch)
            if records:
                self.dataset.skip_log.merge(records)
            self._done[batch_id] = batch
        finally:
            if slot is not None and not leased:  # not handed out: the worker may write the next batch into it
                self._workers[w].free.append(slot)

    def _lease(self, batch, w: int, slot: str):
        """The batch with its images as an array over slot ``slot`` itself, through a mapping
        of its own: NumPy keeps the mapping while any view of the images lives, and its
        release gives the slot back to worker ``w``."""
        is_tuple = isinstance(batch, tuple)
        _, shape, dtype = batch[0] if is_tuple else batch
        dtype, count = np.dtype(dtype), math.prod(shape)
        mapping = mmap.mmap(self._shms[slot]._fd, max(1, count * dtype.itemsize), flags=mmap.MAP_SHARED | _POPULATE)
        images = np.frombuffer(mapping, dtype, count).reshape(shape)
        weakref.finalize(mapping, self._give_back, w, slot)
        return (images, *batch[1:]) if is_tuple else images

    def _give_back(self, w: int, slot: str) -> None:
        if not self._closed:
            self._workers[w].free.append(slot)

    def _new_slot(self) -> str | None:
        """A new slot of the image batch's size, or None before that size is known."""
        if not self._slot_bytes:
            return None
        shm = shared_memory.SharedMemory(create=True, size=self._slot_bytes)
        self._shms[shm.name] = shm
        return shm.name

    def _make_slots(self, batch) -> None:
        """After the first image batch, give every worker ``prefetch`` slots of its size."""
        images = batch[0] if isinstance(batch, tuple) else batch
        if self._shms or self.collate_fn is not None or not isinstance(images, np.ndarray):
            return
        self._slot_bytes = max(1, images.nbytes)
        for worker in self._workers:
            worker.free.extend(self._new_slot() for _ in range(self.prefetch))

    def close(self) -> None:
        """Stop the workers (politely, then by force) and free the shared memory (a batch still
        held keeps its own mapping of its slot until it is gone)."""
        self._closed = True
        for w in self._workers:
            try:
                w.tasks.send(None)
            except OSError:
                pass
        deadline = time.monotonic() + 2.0
        for w in self._workers:
            w.process.join(max(0.0, deadline - time.monotonic()))
        for w in self._workers:
            if w.process.is_alive():
                w.process.terminate()
                w.process.join(1.0)
            if w.process.is_alive():
                w.process.kill()
                w.process.join()
            w.tasks.close()
            w.results.close()
        self._workers = []
        for shm in self._shms.values():
            shm.close()
            shm.unlink()
        self._shms = {}


