"""Watchdog: abort the job when one collective waits longer than a timeout.

A rank that stops participating (stuck reading data, deadlocked, a different code
path) leaves the others blocked in a collective with no error. Every blocking wait
in lucid.distributed runs inside ``watch(name)``; a daemon thread checks the wait in
progress and, past the timeout, aborts every rank with a message naming it. MPI
calls release the GIL, so the thread runs while the main thread is blocked.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Watchdog:
    """Checks, every ``timeout / 4`` seconds at most 1 s apart, how long the current wait has run."""

    def __init__(self, timeout: float, on_timeout: Callable[[str], None]):
        if timeout <= 0:
            raise ValueError(f"watchdog timeout must be positive, got {timeout}")
        self.timeout = float(timeout)
        self.on_timeout = on_timeout
        self.current: tuple[str, float] | None = None  # (collective, start time)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lucid-watchdog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        period = min(1.0, self.timeout / 4)
        while not self._stop.wait(period):
            current = self.current
            if current is not None and time.monotonic() - current[1] > self.timeout:
                waited = time.monotonic() - current[1]
                self.on_timeout(
                    f"watchdog: collective '{current[0]}' has waited {waited:.1f} s "
                    f"(timeout {self.timeout:g} s); another rank is not taking part. "
                    "Aborting all ranks."
                )

    def stop(self) -> None:
        self._stop.set()


_active: Watchdog | None = None


def start(timeout: float, on_timeout: Callable[[str], None]) -> Watchdog:
    """Start (or re-arm with a new timeout) the process's watchdog; ``on_timeout(message)`` ends the job."""
    global _active
    if _active is not None:
        _active.stop()
    _active = Watchdog(timeout, on_timeout)
    return _active


def stop() -> None:
    global _active
    if _active is not None:
        _active.stop()
        _active = None


class watch:
    """``with watch("all_reduce"):`` marks a blocking wait the watchdog may time out.

    Nested watches keep the outermost name and start time.
    """

    __slots__ = ("name", "owner")

    def __init__(self, name: str):
        self.name = name
        self.owner = False

    def __enter__(self) -> "watch":
        dog = _active
        if dog is not None and dog.current is None:
            dog.current = (self.name, time.monotonic())
            self.owner = True
        return self

    def __exit__(self, *exc) -> bool:
        dog = _active
        if self.owner and dog is not None:
            dog.current = None
        return False
