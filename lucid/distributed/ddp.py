"""DistributedDataParallel: one model replica per rank, gradients averaged in buckets.

Wrapping checks that every rank of the process group holds the same parameter and
buffer names, shapes and dtypes (a mismatch raises on every rank, naming the first
difference, rather than hanging), then copies the group's rank 0 values to all. Each
forward installs the gradient bucket views (``buckets.Reducer``); backward's
post-accumulate hooks start each bucket's all-reduce as soon as it is complete, and
an end-of-backward callback waits for the rest, so ``loss.backward()`` returns with
every gradient averaged (PyTorch's semantics). ``finish()`` reports whether the
optimizer may step (no second wait):

    loss = criterion(ddp(x), y)
    loss.backward()
    if ddp.finish():          # False: some rank saw NaN/Inf -> every rank skips
        optimizer.step()      # (stepping anyway is harmless: the gradients are None)
    optimizer.zero_grad()
"""
from __future__ import annotations

import hashlib
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

from lucid.autograd import is_grad_enabled
from lucid.distributed import comm as _comm
from lucid.distributed.backends import choose_transport
from lucid.distributed.buckets import Reducer
from lucid.distributed.collectives import all_gather_object, broadcast
from lucid.distributed.compression import get_compression
from lucid.distributed.group import ProcessGroup
from lucid.nn.module import Module


def _signature(module: Module) -> list[tuple[str, str, tuple, str]]:
    """(kind, name, shape, dtype) of every parameter then buffer, in registration order."""
    rows = [("parameter", n, tuple(p.shape), str(p.dtype)) for n, p in module.named_parameters()]
    rows += [("buffer", n, tuple(b.shape), str(b.dtype)) for n, b in module.named_buffers()]
    return rows


def _describe(row) -> str:
    kind, name, shape, dtype = row
    return f"{kind} '{name}' {dtype}{list(shape)}"


def check_same_model(module: Module, group: ProcessGroup | None = None) -> None:
    """Raise the same ValueError on every rank unless all ranks hold the same structure.

    One all-gather of a digest; only when digests differ are the full lists gathered
    to name the first differing parameter or buffer.
    """
    rows = _signature(module)
    digest = hashlib.sha256(repr(rows).encode()).hexdigest()
    digests = all_gather_object(digest, group)
    if len(set(digests)) == 1:
        return
    everyone = all_gather_object(rows, group)
    ref = everyone[0]
    for r, other in enumerate(everyone):
        if other == ref:
            continue
        for i in range(max(len(ref), len(other))):
            a = _describe(ref[i]) if i < len(ref) else "no entry there"
            b = _describe(other[i]) if i < len(other) else "no entry there"
            if a != b:
                raise ValueError(
                    f"DistributedDataParallel: the model differs across ranks at entry {i}: "
                    f"rank 0 has {a}, rank {r} has {b}. Every rank must build the same model."
                )


def broadcast_coalesced(tensors: list, src: int = 0, group: ProcessGroup | None = None) -> None:
    """Give every rank rank ``src``'s values of ``tensors``: one broadcast per dtype."""
    from lucid._backend import get_array_module

    by_dtype: dict = {}
    for t in tensors:
        by_dtype.setdefault((str(t.dtype), t.device), []).append(t)
    for same in by_dtype.values():
        xp = get_array_module(same[0].data)
        flat = xp.concatenate([t.data.reshape(-1) for t in same])
        broadcast(flat, src=src, group=group)
        offset = 0
        for t in same:
            t.data[...] = flat[offset : offset + t.data.size].reshape(t.shape)
            offset += t.data.size


class DistributedDataParallel(Module):
    """Data parallelism: each rank runs ``module`` on its share of the batch; gradients are averaged.

    Args:
        module: the model (the same architecture on every rank).
        bucket_cap_mb: size of a gradient bucket, MiB.
        first_bucket_mb: size of the first bucket (the last layers' gradients), kept
            small so communication starts early in backward.
        compression: None, "fp16" (all-reduce gradients as float16: half the bytes) or a
            ``lucid.distributed.compression.Compression`` strategy.
        gradient_predivide: divide gradients by the world size before summing
            (needed with fp16 so sums stay in range) instead of after.
        backend: "auto" or a registered transport ("mpi", "cuda_aware", "staged", "nccl";
            see ``lucid.distributed.backends``); every rank ends up with the same one.
        broadcast_buffers: before each training forward, copy rank 0's buffers (BN
            running statistics of non-synchronised BatchNorm) to every rank.
        process_group: the ranks that hold replicas of this model (None: the world).
        votes: number of per-step vote slots summed over ranks in the gradient
            all-reduce: set ``ddp.reducer.votes`` before a synchronised backward, read
            ``ddp.reducer.vote_totals`` after ``finish()`` (how the Trainer agrees to stop).

    Attributes:
        module: the wrapped model (as in PyTorch, the wrapper's own ``state_dict``
            keys start with "module."; save ``ddp.module.state_dict()`` for a bare model).
        reducer: the bucket reducer (``reducer.buckets`` shows the layout).
        skipped_steps: steps every rank skipped because some rank saw NaN/Inf.
    """

    def __init__(
        self,
        module: Module,
        bucket_cap_mb: float = 25,
        first_bucket_mb: float = 1,
        compression: str | None = None,
        gradient_predivide: bool = True,
        backend: str = "auto",
        broadcast_buffers: bool = True,
        process_group: ProcessGroup | None = None,
        votes: int = 0,
    ):
        super().__init__()
        self.module = module
        group = _comm.resolve(process_group)
        group.member_comm("DistributedDataParallel")
        self.process_group = process_group
        named = list(module.named_parameters())
        check_same_model(module, group)
        broadcast_coalesced([p for _, p in named] + list(module.buffers()), group=group)
        devices = {p.device for _, p in named}
        if len(devices) > 1:
            raise ValueError(f"DistributedDataParallel: parameters on several devices {sorted(devices)}; use one")
        device = devices.pop() if devices else "cpu"
        compression = get_compression(compression)
        if compression.wire_dtype is not None and device == "cpu" and group.size > 1:
            warnings.warn(
                "DistributedDataParallel(compression='fp16') on CPU: NumPy and MPI add float16 values in "
                "software (~10 ns each), which costs more than the halved transfer saves on shared memory "
                "or fast networks; it pays off on GPUs (NCCL) or slow links",
                stacklevel=2,
            )
        self._group = group.dup()  # bucket traffic never interleaves with other collectives
        wire = {p.dtype for _, p in named} if compression.wire_dtype is None else {compression.wire_dtype}
        transport = choose_transport(backend, device, self._group.comm, wire_dtypes=sorted(map(str, wire)))
        self.reducer = Reducer(
            [p for _, p in named],
            [n for n, _ in named],
            transport,
            group.size,
            bucket_cap_mb=bucket_cap_mb,
            first_bucket_mb=first_bucket_mb,
            compression=compression,
            predivide=gradient_predivide,
            votes=votes,
        )
        self.broadcast_buffers = broadcast_buffers
        self._require_sync = True

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if is_grad_enabled():
            # The backward of this forward synchronises unless it ran under no_sync().
            self.reducer.sync = self._require_sync
            self.reducer.attach_grads()
        if self.broadcast_buffers and self.training and self._group.size > 1:
            buffers = list(self.module.buffers())
            if buffers:
                broadcast_coalesced(buffers, group=self.process_group)
        return self.module(*args, **kwargs)

    @contextmanager
    def no_sync(self) -> Iterator[None]:
        """Backward passes of forwards run inside accumulate gradients locally, without communicating.

        The first forward+backward after the block synchronises the accumulated sum.
        """
        previous = self._require_sync
        self._require_sync = False
        try:
            yield
        finally:
            self._require_sync = previous

    def backward(self, loss) -> None:
        """``loss.backward()``, flagging a non-finite local loss so every rank skips the step."""
        if not np.isfinite(float(loss.item())):
            self.reducer.report_nonfinite()
        loss.backward()

    def finish(self) -> bool:
        """True when the optimizer may step; the same answer on every rank.

        ``loss.backward()`` already reduced every bucket; this reports the decision
        (no second wait). False means some rank saw a NaN/Inf gradient (or reported a
        non-finite loss): every rank got False, the gradients were set to None (so an
        ``optimizer.step()`` changes nothing) and ``skipped_steps`` went up by one.
        A rank whose synchronised forward was followed by no backward must call it:
        it then takes part in the reduction here. After a no_sync() backward it
        returns True without communicating.
        """
        return self.reducer.finish()

    def step(self, optimizer) -> bool:
        """``finish()``, then ``optimizer.step()`` unless the step is skipped; returns finish()'s answer."""
        ok = self.finish()
        if ok:
            optimizer.step()
        return ok

    @property
    def skipped_steps(self) -> int:
        return self.reducer.skipped_steps

    def extra_repr(self) -> str:
        sizes = ", ".join(f"{b.numel * b.buffer.itemsize / 2**20:.2f}" for b in self.reducer.buckets)
        return f"world_size={self._group.size}, buckets (MiB)=[{sizes}], compression={self.reducer.compression}"
