"""NCCL: ``ncclAllReduce`` on a side stream; completion orders the compute stream after it.

The communicator is bootstrapped by broadcasting NCCL's unique id over MPI. The
all-reduce call, the stream and the ordering step are arguments (defaults: CuPy's),
so the transport's logic runs with stand-ins on machines without a GPU.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from lucid.distributed.backends.base import Transport


def _cupy():
    from lucid import _backend

    return _backend.cupy_module()


class NCCLTransport(Transport):
    """Args:
    comm: MPI communicator (bootstraps NCCL over the same ranks).
    all_reduce: ``(buffer, stream) -> None`` issuing the in-place sum on ``stream``
        (default: ``ncclAllReduce`` through ``cupy.cuda.nccl``).
    stream: the side stream (default: a new non-blocking CuPy stream).
    follow_compute: ``(stream) -> None`` makes ``stream`` wait for the compute stream's
        work so far (the gradients).
    order_after: ``(event) -> None`` makes the compute stream wait for ``event``.
    """

    name = "nccl"

    def __init__(
        self,
        comm,
        all_reduce: Callable[[Any, Any], None] | None = None,
        stream: Any = None,
        follow_compute: Callable[[Any], None] | None = None,
        order_after: Callable[[Any], None] | None = None,
    ):
        self.stream = stream if stream is not None else _cupy().cuda.Stream(non_blocking=True)
        self.all_reduce = all_reduce if all_reduce is not None else self._nccl_all_reduce(comm)
        self.follow_compute = follow_compute if follow_compute is not None else self._follow_compute_stream
        self.order_after = order_after if order_after is not None else self._order_compute_stream

    @staticmethod
    def _nccl_all_reduce(comm) -> Callable[[Any, Any], None]:
        from cupy.cuda import nccl

        uid = nccl.get_unique_id() if comm.Get_rank() == 0 else None
        uid = comm.bcast(uid, root=0)
        communicator = nccl.NcclCommunicator(comm.Get_size(), uid, comm.Get_rank())
        types = {
            np.dtype(np.float16): nccl.NCCL_FLOAT16,
            np.dtype(np.float32): nccl.NCCL_FLOAT32,
            np.dtype(np.float64): nccl.NCCL_FLOAT64,
        }

        def all_reduce(buffer, stream) -> None:
            ptr = buffer.data.ptr
            communicator.allReduce(ptr, ptr, buffer.size, types[np.dtype(buffer.dtype)], nccl.NCCL_SUM, stream.ptr)

        return all_reduce

    @staticmethod
    def _follow_compute_stream(stream) -> None:
        stream.wait_event(_cupy().cuda.get_current_stream().record())

    @staticmethod
    def _order_compute_stream(event) -> None:
        _cupy().cuda.get_current_stream().wait_event(event)

    def _start(self, buffer) -> Any:
        self.follow_compute(self.stream)
        self.all_reduce(buffer, self.stream)
        return self.stream.record()

    def _test(self, event) -> bool:
        return bool(event.done)

    def _wait(self, event) -> None:
        """Nothing to block on: landing orders the compute stream after the all-reduce."""

    def _land(self, event) -> None:
        self.order_after(event)
