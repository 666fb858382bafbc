"""Failure semantics: one rank's error ends the whole job; non-finite steps are skipped.

MPI has no notion of a half-dead job: a rank that dies with an exception leaves the
others waiting forever in their next collective. ``install_excepthook`` turns any
uncaught exception (main thread or other threads) into a rank-tagged traceback on
stderr followed by ``MPI_Abort``, which the launcher propagates to every rank within
seconds. ``nonfinite`` is the local half of the non-finite-step rule: each rank
writes it into the flag slot that rides in the gradient all-reduce, so every rank
reaches the same skip decision.
"""
from __future__ import annotations

import contextlib
import sys
import threading
import traceback

import numpy as np

_installed = False


def _tag(text: str) -> str:
    from lucid.distributed import comm  # noqa: PLC0415

    prefix = f"[rank {comm.rank()}] " if comm.is_initialized() else "[rank ?] "
    return "".join(prefix + line + "\n" for line in text.rstrip("\n").split("\n"))


def abort(message: str, code: int = 1) -> None:
    """Print ``message`` tagged with this rank and abort every rank of the job."""
    from lucid.distributed import comm  # noqa: PLC0415

    sys.stderr.write(_tag(message))
    sys.stderr.flush()
    sys.stdout.flush()
    if comm.is_initialized() and comm.world_size() > 1:
        comm.world().comm.Abort(code)
    # A world of one has nobody to wait for: leave without running atexit handlers
    # that could block (e.g. a thread joining in MPI_Finalize).
    import os  # noqa: PLC0415

    os._exit(code)


def _alone() -> bool:
    from lucid.distributed import comm  # noqa: PLC0415

    return not comm.is_initialized() or comm.world_size() == 1


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


def scale_and_check(src, scale: float = 1.0, out=None, chunk: int = 1 << 16):
    """``out[...] = src * scale`` (in place when ``out`` is None) and report non-finite values.

    Returns a Python bool on NumPy and a 0-d device array on CuPy (no host sync).
    Scaling and checking run chunk by chunk so the check reads cache-hot data: a
    chunk's sum is non-finite whenever one of its values is, so every NaN/Inf is
    found; only sums past float max (gradients near 1e38) raise a false alarm.
    NumPy sums float32/64 chunks as a BLAS dot with ones (faster than ``sum``).
    """
    from lucid.autograd.function import xp_of  # noqa: PLC0415

    xp = xp_of(src)
    inplace = out is None or out is src
    out = src if inplace else out
    acc = np.float32 if out.dtype == np.float16 else out.dtype  # fp16 sums overflow at 65504
    if xp is not np:
        if scale != 1.0 or not inplace:
            xp.multiply(src, scale, out=out, casting="unsafe")
        return ~xp.isfinite(out.sum(dtype=acc))
    ones = _ones(chunk, out.dtype) if out.dtype in (np.float32, np.float64) else None
    bad = False
    for start in range(0, src.size, chunk):
        s, o = src[start : start + chunk], out[start : start + chunk]
        if scale != 1.0 or not inplace:
            np.multiply(s, scale, out=o, casting="unsafe")
        if not bad:
            total = o.sum(dtype=acc) if ones is None else np.dot(o, ones[: o.size])
            bad = not np.isfinite(total)
    return bad


_ONES: dict = {}


def _ones(n: int, dtype) -> np.ndarray:
    key = (n, np.dtype(dtype))
    if key not in _ONES:
        _ONES[key] = np.ones(n, dtype)
    return _ONES[key]


def nonfinite(array) -> bool:
    """True when ``array`` holds a NaN or an infinity (a read-only check)."""
    return bool(scale_and_check(array.reshape(-1)))
