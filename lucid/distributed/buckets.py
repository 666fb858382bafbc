"""Gradient buckets: flat buffers all-reduced while backward is still running.

Parameters are packed, in reverse registration order (roughly the order backward
finishes their gradients), into flat buckets of about ``bucket_cap_mb``; the first
bucket is kept small (``first_bucket_mb``) so communication starts early. Each
parameter's ``.grad`` is a view into its bucket, so backward accumulates straight
into the buffer that goes on the wire: no copy.

The post-accumulate hook of every parameter counts down its bucket. When a bucket's
last gradient lands, the bucket is prepared at once (pre-divided, checked for
NaN/Inf, flags filled) and its non-blocking sum all-reduce starts; buckets always
start in index order, one in flight at a time (a bucket that is ready early waits
for its predecessors), so every rank issues the same collectives in the same order.
Later hooks drive the request in flight forward. The first hook of a synchronised
backward queues an end-of-backward callback with the autograd engine
(``queue_callback``): it starts what is left and waits for everything, so
``loss.backward()`` returns with every gradient reduced (PyTorch's semantics) and
``finish()`` only reports the all-rank decision it took. A rank that ran no backward
still takes part: its ``finish()`` does the reduction itself. When some rank saw a
non-finite value, every gradient is set to None on every rank, so an optimizer
stepped without asking ``finish()`` leaves the parameters unchanged.

Each bucket buffer ends with bookkeeping slots that ride in the same all-reduce:

    [ gradients (numel) | used flag per parameter | votes (last bucket) | non-finite flag ]

- used: 1 when the parameter got a gradient on this rank since the last finish (or
  already had one). A parameter no rank used ends with ``.grad = None``, exactly as
  in single-process training; one used anywhere gets the average with zeros from
  the ranks that did not use it.
- non-finite: 1 when this rank saw a NaN/Inf in the bucket (or a non-finite loss was
  reported); the sum is > 0 on every rank alike, so every rank skips the step.
- votes: ``votes`` numbers the caller sets (``Reducer.votes``) before backward, summed
  over ranks into ``vote_totals``: a per-step agreement (e.g. "stop now") at no extra
  collective. Small integers stay exact also on an fp16 wire.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from lucid.autograd.engine import queue_callback
from lucid.distributed.compression import Compression, get_compression
from lucid.distributed.failure import scale_and_check
from lucid.distributed.watchdog import watch

MB = 1 << 20


def plan_buckets(params: Sequence, cap_bytes: int, first_cap_bytes: int) -> list[list[int]]:
    """Parameter indices per bucket: reverse order, one dtype/device per bucket.

    A bucket closes once it holds at least its cap (the first bucket's cap is
    ``first_cap_bytes``), so one large parameter makes a bucket of its own.
    """
    buckets: list[list[int]] = []
    current: list[int] = []
    size, key = 0, None
    for idx in reversed(range(len(params))):
        p = params[idx]
        pkey = (p.dtype, p.device)
        if current and pkey != key:
            buckets.append(current)
            current, size = [], 0
        current.append(idx)
        size += p.data.nbytes
        key = pkey
        if size >= (first_cap_bytes if not buckets else cap_bytes):
            buckets.append(current)
            current, size = [], 0
    if current:
        buckets.append(current)
    return buckets


@dataclass
class Bucket:
    """One flat buffer and the parameters whose gradients are views into it."""

    index: int
    params: list
    names: list[str]
    buffer: Any  # gradients, then one used slot per parameter, then the non-finite flag
    views: list  # per parameter: its gradient-shaped view into buffer
    grads: list  # per parameter: the Tensor wrapping that view (installed as .grad)
    numel: int
    wire: Any = None  # compressed copy all-reduced instead of buffer (e.g. float16)
    ready: list[bool] = field(default_factory=list)  # gradient final in this pass
    used: list[bool] = field(default_factory=list)  # got (or had) a gradient since last finish
    pending: int = 0
    votes: int = 0  # vote slots before the non-finite flag (the last bucket only)
    prepared: bool = False  # scaled, checked and flagged: ready to go on the wire
    handle: Any = None

    @property
    def flag_slot(self) -> int:
        return self.numel + len(self.params) + self.votes


def _make_bucket(index: int, params: list, names: list[str], votes: int = 0) -> Bucket:
    from lucid._backend import get_array_module
    from lucid.tensor import Tensor

    xp = get_array_module(params[0].data)
    numel = sum(int(p.data.size) for p in params)
    buffer = xp.zeros(numel + len(params) + votes + 1, dtype=params[0].dtype)
    views, grads, offset = [], [], 0
    for p in params:
        view = buffer[offset : offset + p.data.size].reshape(p.shape)
        views.append(view)
        grads.append(Tensor._wrap(view, p.device))
        offset += p.data.size
    k = len(params)
    return Bucket(index, params, names, buffer, views, grads, numel, ready=[False] * k, used=[False] * k, pending=k, votes=votes)


class Reducer:
    """Owns the buckets of a list of leaf parameters and all-reduces their gradients.

    Args:
        params: leaf tensors in registration order (those without requires_grad are
            left out).
        names: one name per parameter (for error messages).
        transport: a ``lucid.distributed.backends.Transport``.
        world: number of ranks; gradients are averaged over it.
        bucket_cap_mb, first_bucket_mb: bucket sizes.
        compression: None, "fp16" or a ``compression.Compression`` (what goes on the wire).
        predivide: divide by ``world`` before summing (no overflow in fp16) rather
            than after.
        max_in_flight: requests allowed in flight at once (more than one makes them
            compete for the same cores and memory bandwidth).
        votes: number of per-step vote slots (see the module docstring).
    """

    def __init__(
        self,
        params: Sequence,
        names: Sequence[str],
        transport,
        world: int,
        bucket_cap_mb: float = 25,
        first_bucket_mb: float = 1,
        compression: str | Compression | None = None,
        predivide: bool = True,
        max_in_flight: int = 1,
        votes: int = 0,
    ):
        compression = get_compression(compression)
        if bucket_cap_mb <= 0 or first_bucket_mb <= 0:
            raise ValueError(f"bucket sizes must be positive, got {bucket_cap_mb} and {first_bucket_mb} MB")
        chosen = [(p, n) for p, n in zip(params, names) if p.requires_grad]
        for p, n in chosen:
            if not p.is_leaf:
                raise ValueError(f"parameter {n!r} is not a leaf tensor; DDP needs leaf parameters")
        self.transport, self.world = transport, int(world)
        self.compression, self.predivide, self.max_in_flight = compression, predivide, max_in_flight
        plan = plan_buckets([p for p, _ in chosen], int(bucket_cap_mb * MB), int(first_bucket_mb * MB))
        self.buckets = [
            _make_bucket(i, [chosen[j][0] for j in idx], [chosen[j][1] for j in idx], votes if i == len(plan) - 1 else 0)
            for i, idx in enumerate(plan)
        ]
        self.votes = np.zeros(votes)  # this rank's votes for the next synchronised backward
        self.vote_totals = np.zeros(votes)  # their sums over all ranks, after finish()
        self._where: dict[int, tuple[Bucket, int]] = {}
        self._hooks = []
        for b in self.buckets:
            if compression.wire_dtype is not None:
                b.wire = b.buffer.astype(compression.wire_dtype)
            for i, p in enumerate(b.params):
                self._where[id(p)] = (b, i)
                self._hooks.append(p.register_post_accumulate_grad_hook(self._on_grad))
        self.sync = True  # False inside no_sync(): gradients only accumulate locally
        self.loss_nonfinite = False  # set by report_nonfinite(); rides in every bucket's flag
        self.steps = 0
        self.skipped_steps = 0
        self.overlapped = 0  # buckets already started when the last reduction began waiting
        self.last_ok = True  # the all-rank decision of the last synchronised pass
        self._open = False  # a synchronised pass began (attach_grads or a hook) and is not reduced yet
        self._queued = False  # the end-of-backward callback of this pass is queued
        self._next = 0  # next bucket to start (index order)
        self._in_flight: deque[Bucket] = deque()

    # -- gradients as views ---------------------------------------------------------
    def attach_grads(self) -> None:
        """Make every parameter's ``.grad`` its bucket view (zeroed where it was None).

        With ``sync`` on, this opens a synchronised pass: ``finish()`` reduces even
        when no backward runs on this rank.
        """
        self._open = self._open or self.sync
        self._queued = False  # a backward that failed half-way left its callback unrun
        for b in self.buckets:
            for i in range(len(b.params)):
                self._adopt(b, i)

    def _adopt(self, b: Bucket, i: int) -> None:
        """Install the bucket view as ``.grad``: zeroed if there was none, else holding it."""
        p, view = b.params[i], b.views[i]
        g = p.grad
        if g is None:
            view[...] = 0
            b.used[i] = False
        elif g is b.grads[i] and g.data is view:
            return
        else:
            view[...] = g.data  # the grad was replaced (e.g. by a new tensor): one copy
            b.used[i] = True
        p.grad = b.grads[i]

    # -- backward hooks ---------------------------------------------------------------
    def _on_grad(self, p) -> None:
        b, i = self._where[id(p)]
        self._adopt(b, i)
        b.used[i] = True
        if not self.sync:
            return
        self._open = True
        if not self._queued:
            queue_callback(self._reduce)
            self._queued = True
        b.ready[i] = True
        b.pending -= 1
        if b.pending == 0:
            self._prepare(b)
            self._start_ready()
        self._progress()

    def _start_ready(self) -> None:
        """Start buckets in index order while they are prepared and the in-flight limit allows."""
        while (
            self._next < len(self.buckets)
            and self.buckets[self._next].prepared
            and len(self._in_flight) < self.max_in_flight
        ):
            b = self.buckets[self._next]
            b.handle = self.transport.start(b.buffer if b.wire is None else b.wire)
            self._in_flight.append(b)
            self._next += 1

    def _prepare(self, b: Bucket) -> None:
        """Scale (and cast) the gradients, fill the flag slots: done as soon as the bucket is
        complete, so a bucket waiting for its turn costs nothing after backward."""
        from lucid._backend import get_array_module

        xp = get_array_module(b.buffer)
        n, k = b.numel, len(b.params)
        target = b.buffer if b.wire is None else b.wire
        scale = 1.0 / self.world if self.predivide else 1.0
        bad = self.compression.compress(b.buffer[:n], scale, out=None if b.wire is None else b.wire[:n])
        target[n : n + k] = xp.asarray(b.used, dtype=target.dtype)
        if b.votes:
            target[n + k : n + k + b.votes] = xp.asarray(self.votes, dtype=target.dtype)
        target[b.flag_slot] = bad | self.loss_nonfinite
        b.prepared = True

    def _progress(self) -> None:
        """Let MPI advance the requests in flight; finish those done and start the next."""
        while self._in_flight and self.transport.test(self._in_flight[0].handle):
            self._complete(self._in_flight.popleft())
            self._start_ready()

    def _complete(self, b: Bucket) -> None:
        n = b.numel
        if b.wire is not None:
            self.compression.decompress(b.wire, b.buffer)  # e.g. float16 -> float32/64, flags included
            if not self.predivide:
                # the sum itself may have overflowed float16: same values everywhere, same verdict
                if scale_and_check(b.buffer[:n], 1.0 / self.world):
                    b.buffer[-1] = 1
        elif not self.predivide and self.world > 1:
            b.buffer[:n] *= 1.0 / self.world
        b.handle = None

    # -- end of step ------------------------------------------------------------------
    def report_nonfinite(self) -> None:
        """Mark this step non-finite on this rank (e.g. its loss); call before backward."""
        self.loss_nonfinite = True

    def finish(self) -> bool:
        """True when the step may be taken: the all-rank decision of the last synchronised pass.

        After a backward that reached the buckets, the reduction already happened at
        its end and this only reports it. On a rank whose pass ran no backward (its
        buckets hold zeros) it reduces now, so that rank still takes part. Outside a
        synchronised pass (e.g. after a ``no_sync`` backward) it returns True.
        """
        if self._open:
            self._reduce()
        elif not self.sync:
            return True
        return self.last_ok

    def _reduce(self) -> None:
        """Start what is left, wait for every bucket, apply the flags (end of a synchronised pass)."""
        if not self._open:
            return
        self.overlapped = self._next
        for b in self.buckets:
            if b.pending:  # parameters that got no gradient this pass
                for i in range(len(b.params)):
                    if not b.ready[i]:
                        self._adopt(b, i)
                b.pending = 0
                self._prepare(b)
        self._start_ready()
        self._progress()  # requests done by now complete through test(), the rest through wait()
        while self._in_flight:
            b = self._in_flight.popleft()
            with watch(f"DDP gradient all-reduce (bucket {b.index + 1} of {len(self.buckets)})"):
                self.transport.wait(b.handle)
            self._complete(b)
            self._start_ready()
        ok = self._read_flags()
        self._reset()
        self.steps += 1
        if not ok:
            self.skipped_steps += 1
            for b in self.buckets:  # stepping anyway leaves every parameter as it is
                for p in b.params:
                    p.grad = None
        self.last_ok = ok

    def _read_flags(self) -> bool:
        """Apply the reduced used flags; True when no rank saw a non-finite value."""
        from lucid import _backend

        tails = [b.buffer[b.numel :] for b in self.buckets]
        if len(tails) > 1 and _backend.device_of(tails[0]) != "cpu":  # one device->host wait, not one per bucket
            xp = _backend.get_array_module(tails[0])
            joined = _backend.asnumpy(xp.concatenate(tails))  # flags and votes: small integers, exact in any dtype
            tails = np.split(joined, np.cumsum([t.size for t in tails])[:-1])
        else:
            tails = [_backend.asnumpy(t) for t in tails]
        ok = True
        for b, tail in zip(self.buckets, tails):
            for i, p in enumerate(b.params):
                if tail[i] == 0:  # no rank gave it a gradient: as in one process, none
                    p.grad = None
            if b.votes:
                k = len(b.params)
                self.vote_totals = np.array(tail[k : k + b.votes], dtype=np.float64)
            ok = ok and tail[-1] == 0
        return bool(ok)

    def _reset(self) -> None:
        for b in self.buckets:
            k = len(b.params)
            b.ready = [False] * k
            b.prepared = False
            b.used = [p.grad is not None for p in b.params]  # a kept .grad counts as given
            b.pending = k
        self._next = 0
        self.loss_nonfinite = False
        self._open = self._queued = False

    def remove_hooks(self) -> None:
        for remove in self._hooks:
            remove()
        self._hooks = []
