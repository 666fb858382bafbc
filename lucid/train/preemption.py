"""Stopping on preemption signals and time-based checkpoints, agreed by every rank.

Schedulers announce the end of a job with a signal: Slurm (``--signal``, also on
``scancel`` and at the time limit), Kubernetes and preemptible cloud VMs send SIGTERM,
Slurm setups often SIGUSR1, a terminal SIGINT. ``StopSignals`` turns the first of
them into a request; the Trainer puts its vote into the gradient all-reduce of the next
step (a free ride: no extra collective), so every rank learns in the same step that
some rank was asked to stop, writes the same committed checkpoint and exits with
``EXIT_PREEMPTED``. Time-based checkpoints (``run.ckpt_minutes``) vote the same way, so
ranks whose clocks differ still save at the same step.

A second signal, or a job that does not reach the next step boundary and commit within
``grace`` seconds (a stuck rank), exits at once with 128 + the signal number: the
checkpoint being written is never committed, so the previous one stays intact.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from typing import Callable

import numpy as np

EXIT_PREEMPTED = 75  # sysexits.h EX_TEMPFAIL: "try again later": a checkpoint was committed
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


class Preempted(Exception):
    """Raised by ``Trainer.fit`` on every rank after the stop checkpoint was committed."""

    def __init__(self, step: int, path: str, reason: str):
        super().__init__(f"stopped at step {step} ({reason}); checkpoint {path} committed")
        self.step, self.path, self.reason = step, path, reason


class StopSignals:
    """Catches SIGTERM, SIGUSR1 and SIGINT while active (a context manager; main thread only).

    A watcher thread reads the signal numbers from ``signal.set_wakeup_fd``, so a second
    signal and the grace deadline act even while the main thread is blocked in MPI.

    Args:
        grace: seconds from the first signal until the process gives up waiting for
            the stop checkpoint and exits with 128 + signal number.
        exit_fn: how to leave in that case, ``exit_fn(message, code)`` (default: abort
            every rank, ``lucid.distributed.abort``).
    """

    def __init__(self, grace: float = 60.0, exit_fn: Callable[[str, int], None] | None = None):
        self.grace = float(grace)
        self.exit_fn = exit_fn
        self.signum: int | None = None  # the first signal received
        self.committed = threading.Event()  # the stop checkpoint is on disk
        self._previous: dict = {}
        self._pipe: tuple[int, int] | None = None
        self._old_wakeup = -1

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> "StopSignals":
        r, w = os.pipe()
        os.set_blocking(w, False)
        self._pipe = (r, w)
        self._old_wakeup = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        for s in STOP_SIGNALS:
            self._previous[s] = signal.signal(s, _ignore)  # the watcher thread does the work
        threading.Thread(target=self._watch, name="lucid-stop-signals", daemon=True).start()
        return self

    def __exit__(self, *exc) -> bool:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        signal.set_wakeup_fd(self._old_wakeup)
        if self._pipe is not None:
            os.close(self._pipe[1])  # ends the watcher's read
        return False

    def _watch(self) -> None:
        r = self._pipe[0]
        try:
            while True:
                data = os.read(r, 64)
                if not data:
                    return
                for signum in data:
                    if signum in STOP_SIGNALS:
                        self._on_signal(signum)
        finally:
            os.close(r)

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.signum is None:
            self.signum = signum
            threading.Thread(target=self._deadline, name="lucid-stop-grace", daemon=True).start()
            return
        self._leave(f"second stop signal ({name}): exiting without a checkpoint; the previous one is kept", signum)

    def _deadline(self) -> None:
        if self.committed.wait(self.grace):
            return
        self._leave(
            f"{signal.Signals(self.signum).name}: no checkpoint committed within the grace period of "
            f"{self.grace:g} s (a rank did not reach the step boundary); exiting, the previous checkpoint is kept",
            self.signum,
        )

    def _leave(self, message: str, signum: int) -> None:
        code = EXIT_PREEMPTED if self.committed.is_set() else 128 + signum
        if self.exit_fn is not None:
            self.exit_fn(message, code)
            return
        from lucid.distributed.failure import abort

        abort(message, code)


def _ignore(signum, frame) -> None:
    """Python-level handler: needed for the wakeup fd to be written; the watcher acts."""


class StepVotes:
    """This rank's votes for the step boundary: [stop requested, checkpoint due].

    ``votes()`` goes into the gradient all-reduce; ``decide(totals)`` reads the sums,
    identical on every rank, so every rank takes the same decision.

    Args:
        stop: the process's StopSignals (None: never asked to stop).
        ckpt_minutes: minutes between time-based checkpoints (0: off).
        clock: seconds, monotonic (replaceable for tests).
    """

    def __init__(self, stop: StopSignals | None, ckpt_minutes: float = 0.0, clock: Callable[[], float] = time.monotonic):
        self.stop = stop
        self.period = 60.0 * ckpt_minutes
        self.clock = clock
        self.last_checkpoint = clock()

    def votes(self) -> np.ndarray:
        due = bool(self.period) and self.clock() - self.last_checkpoint >= self.period
        return np.array([float(self.stop is not None and self.stop.requested), float(due)])

    def decide(self, totals) -> tuple[int, bool]:
        """(number of ranks asked to stop, whether a time-based checkpoint is due)."""
        return int(round(float(totals[0]))), bool(totals[1] > 0)

    def checkpointed(self) -> None:
        """A checkpoint was committed: the time-based interval starts again."""
        self.last_checkpoint = self.clock()
