"""Collectives on lucid Tensors, NumPy/CuPy arrays and Python numbers.

Arrays and tensors are updated in place (PyTorch's semantics) and returned; Python
numbers come back as new values. CuPy arrays go to MPI directly when the library is
CUDA-aware, else through a host copy. Every wait runs under the watchdog. Each
takes ``group`` (a ``ProcessGroup``; None: the world) and runs over its ranks only.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import numpy as np

from lucid._backend import get_array_module
from lucid.distributed import comm as _comm
from lucid.distributed import gpu
from lucid.distributed.group import ProcessGroup
from lucid.distributed.watchdog import watch


class ReduceOp:
    """Reduction names (``dist.ReduceOp.SUM`` or the string "sum")."""

    SUM = "sum"
    MEAN = "mean"
    MAX = "max"
    MIN = "min"


REDUCE_OPS = (ReduceOp.SUM, ReduceOp.MEAN, ReduceOp.MAX, ReduceOp.MIN)


def _mpi_op(op: str):
    from mpi4py import MPI

    if op not in REDUCE_OPS:
        raise ValueError(f"reduce op must be one of {REDUCE_OPS}, got {op!r}")
    return {"sum": MPI.SUM, "mean": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]


def _array(x: Any):
    """(array, is_tensor, is_number) for a Tensor, an ndarray/CuPy array or a number."""
    from lucid.tensor import Tensor

    if isinstance(x, Tensor):
        return x.data, True, False
    if hasattr(x, "__array_interface__") or gpu.is_device_array(x):
        return x, False, False
    if isinstance(x, (int, float, bool, np.generic)):
        return np.array([x]), False, True
    raise TypeError(f"collectives take Tensors, arrays or numbers, not {type(x).__name__}")


@contextmanager
def _mpi_buffer(array, writeback: bool = True):
    """A contiguous buffer MPI can use for ``array``; written back into it on exit."""
    if gpu.is_device_array(array):
        buf = gpu.to_mpi_buffer(array if array.flags.c_contiguous else array.copy())
    else:
        buf = np.ascontiguousarray(array)
    yield buf
    if writeback and buf is not array:
        array[...] = _device_copy(buf, array) if gpu.is_device_array(array) else buf


def _device_copy(buf, array):
    """``buf`` (host or device) as an array on ``array``'s device."""

    return get_array_module(array).asarray(buf)


def _check_mean_dtype(array, op: str) -> None:
    if op == ReduceOp.MEAN and not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"all_reduce(op='mean') needs a floating-point array, got {array.dtype}")


def _group(group: ProcessGroup | None, what: str):
    """(group, its communicator) for a collective named ``what``."""
    g = _comm.resolve(group)
    return g, g.member_comm(what)


def all_reduce(x: Any, op: str = ReduceOp.SUM, group: ProcessGroup | None = None) -> Any:
    """Reduce ``x`` over all ranks with sum, mean, max or min; every rank gets the result."""
    from mpi4py import MPI

    mpi_op = _mpi_op(op)
    array, _, number = _array(x)
    if number and op == ReduceOp.MEAN:
        array = array.astype(np.float64)
    _check_mean_dtype(array, op)
    g, comm = _group(group, "all_reduce")
    with _mpi_buffer(array) as buf:
        with watch(f"all_reduce({op})"):
            comm.Allreduce(MPI.IN_PLACE, buf, op=mpi_op)
        if op == ReduceOp.MEAN:
            buf /= g.size
    return array[0].item() if number else x


def broadcast(x: Any, src: int = 0, group: ProcessGroup | None = None) -> Any:
    """Give every rank rank ``src``'s values of ``x`` (``src`` counts within ``group``)."""
    array, _, number = _array(x)
    _, comm = _group(group, "broadcast")
    with _mpi_buffer(array) as buf:
        with watch(f"broadcast(src={src})"):
            comm.Bcast(buf, root=src)
    return array[0].item() if number else x


def all_gather(x: Any, group: ProcessGroup | None = None) -> list:
    """Every rank's ``x``, in rank order; sizes may differ along the first axis."""
    array, is_tensor, number = _array(x)
    _, comm = _group(group, "all_gather")
    metas = all_gather_object((tuple(array.shape), str(array.dtype)), group)
    _check_gather_metas(metas)
    counts = [int(np.prod(shape)) for shape, _ in metas]
    with _mpi_buffer(array, writeback=False) as buf:
        out = _empty_like_on(buf, sum(counts))
        with watch("all_gather"):
            comm.Allgatherv(buf, [out, counts])
    parts = np.split(out, np.cumsum(counts)[:-1]) if not gpu.is_device_array(out) else _split_device(out, counts)
    parts = [p.reshape(shape) for p, (shape, _) in zip(parts, metas)]
    if gpu.is_device_array(array) and not gpu.is_device_array(out):
        parts = [_device_copy(p, array) for p in parts]
    if number:
        return [p[0].item() for p in parts]
    return [_wrap_like(x, p) for p in parts] if is_tensor else parts


def _check_gather_metas(metas) -> None:
    shape0, dtype0 = metas[0]
    for r, (shape, dtype) in enumerate(metas):
        if dtype != dtype0 or len(shape) != len(shape0) or tuple(shape[1:]) != tuple(shape0[1:]):
            raise ValueError(
                f"all_gather: rank {r} holds {dtype}{list(shape)} but rank 0 holds {dtype0}{list(shape0)}; "
                "arrays may differ only in their first dimension"
            )


def _empty_like_on(buf, size: int):

    return get_array_module(buf).empty(size, dtype=buf.dtype)


def _split_device(out, counts):
    bounds = np.cumsum([0] + counts)
    return [out[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _wrap_like(x, array):
    from lucid.tensor import Tensor

    return Tensor._wrap(array, x.device)


def reduce_scatter(x: Any, op: str = ReduceOp.SUM, group: ProcessGroup | None = None) -> Any:
    """Reduce ``x`` over ranks and give rank r the r-th of ``world_size`` slices along axis 0.

    The slices follow ``numpy.array_split``: the first ``len % world`` ranks get one
    row more. Returns a new array (or Tensor) holding this rank's slice.
    """
    mpi_op = _mpi_op(op)
    array, is_tensor, number = _array(x)
    if number or array.ndim == 0:
        raise ValueError("reduce_scatter needs an array with a first dimension to split")
    _check_mean_dtype(array, op)
    g, comm = _group(group, "reduce_scatter")
    rank = comm.Get_rank()
    rows = [len(r) for r in np.array_split(np.arange(array.shape[0]), g.size)]
    row = int(np.prod(array.shape[1:]))
    with _mpi_buffer(array, writeback=False) as buf:
        out = _empty_like_on(buf, rows[rank] * row)
        with watch(f"reduce_scatter({op})"):
            comm.Reduce_scatter(buf, out, [r * row for r in rows], op=mpi_op)
    if op == ReduceOp.MEAN:
        out /= g.size
    out = out.reshape((rows[rank],) + tuple(array.shape[1:]))
    if gpu.is_device_array(array) and not gpu.is_device_array(out):
        out = _device_copy(out, array)
    return _wrap_like(x, out) if is_tensor else out


def broadcast_object(obj: Any, src: int = 0, group: ProcessGroup | None = None) -> Any:
    """Rank ``src``'s picklable Python object, on every rank (for small values)."""
    _, comm = _group(group, "broadcast_object")
    with watch(f"broadcast_object(src={src})"):
        return comm.bcast(obj, root=src)


def all_gather_object(obj: Any, group: ProcessGroup | None = None) -> list:
    """Every rank's picklable Python object, in rank order (for small values)."""
    _, comm = _group(group, "all_gather_object")
    with watch("all_gather_object"):
        return comm.allgather(obj)
