"""Failure semantics: one rank's error ends the whole job; non-finite steps are skipped.

MPI has no notion of a half-dead job: a rank that dies with an exception leaves the
others waiting forever in their next collective. ``install_excepthook`` turns any
uncaught exception (main thread or other threads) into a rank-tagged traceback on
stderr followed by ``MPI_Abort``, which the launcher propagates to every rank within
seconds. ``nonfinite`` is the local half of the non-finite-step rule: each rank
writes it into the flag slot that rides in the gradient all-reduce, so every rank
reaches the same skip decision.

This module asks mpi4py directly for the rank and world (it never imports
``comm``, which installs these hooks): the import order is comm -> failure and
watchdog -> failure, with no cycle.
"""
from __future__ import annotations

import contextlib
import sys
import threading
import time
import traceback

import numpy as np

_installed = False
ABORT_GRACE_SECONDS = 0.5  # see abort()


def _world_comm():
    """MPI.COMM_WORLD while MPI runs (started by mpi4py, not finalized), else None."""
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None or not mpi.Is_initialized() or mpi.Is_finalized():
        return None
    return mpi.COMM_WORLD


def _tag(text: str) -> str:
    world = _world_comm()
    prefix = f"[rank {world.Get_rank()}] " if world is not None else "[rank ?] "
    return "".join(prefix + line + "\n" for line in text.rstrip("\n").split("\n"))


def abort(message: str, code: int = 1) -> None:
    """Print ``message`` tagged with this rank and abort every rank of the job."""
    sys.stderr.write(_tag(message))
    sys.stderr.flush()
    sys.stdout.flush()
    world = _world_comm()
    if world is not None and world.Get_size() > 1:
        # The launcher forwards output and the abort request on separate channels; without
        # a pause it could tear the job down before this rank's message reaches the user.
        time.sleep(ABORT_GRACE_SECONDS)
        world.Abort(code)
    # A world of one has nobody to wait for: leave without running atexit handlers
    # that could block (e.g. a thread joining in MPI_Finalize).
    import os

    os._exit(code)


def _alone() -> bool:
    world = _world_comm()
    return world is None or world.Get_size() == 1


def _excepthook(exc_type, exc, tb) -> None:
    if _alone():  # nobody to unblock: Python's usual report and exit
        sys.__excepthook__(exc_type, exc, tb)
        return
    text = "".join(traceback.format_exception(exc_type, exc, tb))
    abort(text + "aborting all ranks (uncaught exception)")


def _thread_excepthook(args) -> None:
    if args.exc_type is SystemExit:
        return
    if _alone():
        threading.__excepthook__(args)
        return
    text = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
    name = args.thread.name if args.thread is not None else "?"
    abort(f"in thread {name}:\n{text}aborting all ranks (uncaught exception)")


class abort_on_exit(contextlib.ContextDecorator):
    """Wrap a program's main: ``sys.exit(code)`` with code != 0 on one rank aborts every rank.

    Python calls no hook for SystemExit, and a rank that exits normally waits in
    MPI_Finalize for ranks that may be waiting for it in a collective: a deadlock.
    Other exceptions pass through to the excepthook, which aborts the job too.
    """

    def __enter__(self) -> "abort_on_exit":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is SystemExit and exc.code not in (0, None) and not _alone():
            abort(f"sys.exit({exc.code!r}) on this rank; aborting all ranks", code=exc.code if isinstance(exc.code, int) else 1)
        return False


def install_excepthook() -> None:
    """Make uncaught exceptions abort the job (idempotent)."""
    global _installed
    if _installed:
        return
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook
    _installed = True


def scale_and_check(src, scale: float = 1.0, out=None, limit: float | None = None, chunk: int = 1 << 16):
    """Scale ``src`` in place, optionally cast a copy into ``out``, and report non-finite values.

    With ``limit`` (e.g. 65504 for a float16 ``out``), values beyond it count as
    non-finite too: they would overflow in ``out``. Returns a Python bool on NumPy and a
    0-d device array on CuPy (no host sync). NumPy works chunk by chunk so the check
    and the cast read cache-hot data: a chunk's sum (a BLAS dot with ones) is
    non-finite whenever one of its values is, so every NaN/Inf is found; only sums
    past float max (values near 1e38) raise a false alarm. With a limit, the sum of
    squares bounds every |value| and only chunks it cannot clear get an exact max.
    """
    from lucid._backend import get_array_module

    xp = get_array_module(src)
    if xp is not np:
        if scale != 1.0:
            src *= scale
        bad = ~xp.isfinite(src.sum(dtype=xp.float32 if src.dtype == xp.float16 else src.dtype))
        if limit is not None:
            bad = bad | (xp.abs(src).max() > limit)
        if out is not None:
            out[...] = src
        return bad
    blas = src.dtype in (np.float32, np.float64)
    ones = _ones(chunk, src.dtype) if blas else None
    bad = False
    for start in range(0, src.size, chunk):
        s = src[start : start + chunk]
        if scale != 1.0:
            np.multiply(s, scale, out=s)
        if not bad:
            bad = _chunk_bad(s, ones, limit) if blas else not np.isfinite(s.sum(dtype=np.float32))
        if out is not None:
            with np.errstate(over="ignore"):  # an overflow here is already flagged
                np.copyto(out[start : start + chunk], s, casting="unsafe")
    return bad


def _chunk_bad(s: np.ndarray, ones: np.ndarray, limit: float | None) -> bool:
    if limit is None:
        return bool(not np.isfinite(np.dot(s, ones[: s.size])))
    squares = np.dot(s, s)  # >= max |value|**2; non-finite for any NaN/Inf (or |value| > 1e19)
    return bool(not np.isfinite(squares) or (squares > limit * limit and float(np.abs(s).max()) > limit))


_ONES: dict = {}


def _ones(n: int, dtype) -> np.ndarray:
    key = (n, np.dtype(dtype))
    if key not in _ONES:
        _ONES[key] = np.ones(n, dtype)
    return _ONES[key]


def nonfinite(array) -> bool:
    """True when ``array`` holds a NaN or an infinity (a read-only check)."""
    return bool(scale_and_check(array.reshape(-1)))
