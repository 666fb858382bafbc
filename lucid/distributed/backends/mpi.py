"""``MPI_Iallreduce`` in place on host (NumPy) buffers; the CPU transport.

float16 buckets (fp16 compression) are summed with MPI's half type where the library
has one (MPICH); where it has none (Open MPI 4) they travel as 16-bit words with a
user-defined MPI sum that adds them as float16 in NumPy. ``$LUCID_MPI_HALF`` =
native|op forces one route (tests use it to run the fallback on MPICH).
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from lucid.distributed.backends.base import Transport

_half_op = None


def _half_sum(inbuf, outbuf, datatype) -> None:
    """MPI user op: outbuf += inbuf, both float16 values carried as 16-bit words."""
    a = np.frombuffer(inbuf, dtype=np.float16)
    b = np.frombuffer(outbuf, dtype=np.float16)
    with np.errstate(over="ignore"):  # an overflow is a non-finite value, which the flags report
        np.add(b, a, out=b)


def half_route() -> str:
    """"native" when this MPI library sums float16 itself, else "op" (a user-defined sum)."""
    forced = os.environ.get("LUCID_MPI_HALF")
    if forced not in (None, "", "native", "op"):
        raise ValueError(f"LUCID_MPI_HALF={forced!r}: expected 'native' or 'op' (or unset it)")
    from mpi4py import MPI
    from mpi4py.util import dtlib

    try:
        native = dtlib.from_numpy_dtype(np.float16) != MPI.DATATYPE_NULL
    except (KeyError, ValueError, TypeError):
        native = False
    if forced == "native" and not native:
        library = MPI.Get_library_version().splitlines()[0].strip()
        raise RuntimeError(f"LUCID_MPI_HALF=native, but this MPI library ({library}) has no float16 "
                           "type; unset LUCID_MPI_HALF or set it to 'op' (a user-defined float16 sum)")
    return forced or ("native" if native else "op")


def sum_args(buffer) -> tuple[Any, Any]:
    """(buffer spec, op) for a sum all-reduce of ``buffer`` (host memory)."""
    from mpi4py import MPI

    if buffer.dtype == np.float16 and half_route() == "op":
        global _half_op
        if _half_op is None:
            _half_op = MPI.Op.Create(_half_sum, commute=True)
        return [buffer.view(np.uint16), MPI.UINT16_T], _half_op
    return buffer, MPI.SUM


class MPITransport(Transport):
    """``MPI_Iallreduce`` in place on a private communicator (DDP passes a duplicate)."""

    name = "mpi"

    def __init__(self, comm):
        self.comm = comm

    def iallreduce(self, buffer) -> Any:
        from mpi4py import MPI

        spec, op = sum_args(buffer)
        return self.comm.Iallreduce(MPI.IN_PLACE, spec, op=op)

    def wire_route(self, dtype) -> str:
        return f"MPI float16 {half_route()}" if np.dtype(dtype) == np.float16 else "native"

    def _start(self, buffer) -> Any:
        return self.iallreduce(buffer)

    def _test(self, request) -> bool:
        return request.Test()

    def _wait(self, request) -> None:
        request.Wait()
