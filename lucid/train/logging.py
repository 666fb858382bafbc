"""What a run reports: ``metrics.jsonl`` (one JSON object per log step and per
evaluation), optionally TensorBoard event files, and a tqdm progress bar, all on rank 0 only."""
from __future__ import annotations

import json
import os
import sys
import time

from tqdm import tqdm

from lucid.train.tensorboard import TensorBoardLog, require_tensorboardx


class MetricsLog:
    """Appends one JSON object per line to ``<run_dir>/metrics.jsonl`` (rank 0 writes).

    With ``tensorboard`` the same records also go to ``<run_dir>/tensorboard/`` as event
    files; a missing tensorboardX is an ImportError on every rank, before training starts.
    """

    def __init__(self, run_dir: str, enabled: bool, tensorboard: bool = False):
        self.enabled = enabled
        self.path = os.path.join(run_dir, "metrics.jsonl")
        self.tensorboard = None
        if tensorboard:
            require_tensorboardx()
        if enabled:
            os.makedirs(run_dir, exist_ok=True)
            if tensorboard:
                self.tensorboard = TensorBoardLog(os.path.join(run_dir, "tensorboard"))

    def write(self, kind: str, **values) -> None:
        if not self.enabled:
            return
        record = {"kind": kind, "time": round(time.time(), 3), **values}
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.tensorboard is not None:
            self.tensorboard.write(kind, record)


class Progress:
    """A tqdm bar over the steps of an epoch with loss, lr, img/s and ETA (rank 0 only)."""

    def __init__(self, main: bool, show_bar: bool):
        self.main = main
        self.show_bar = main and show_bar and sys.stderr is not None
        self.bar = None

    def start(self, epoch: int, epochs: int, total: int, done: int) -> None:
        if not self.show_bar:
            return
        self.bar = tqdm(total=total, initial=done, desc=f"epoch {epoch + 1}/{epochs}", unit="step", dynamic_ncols=True, leave=True)

    def step(self) -> None:
        """One more step done."""
        if self.bar is not None:
            self.bar.update(1)

    def show(self, **postfix) -> None:
        """Replace the figures shown after the bar (loss, lr, img/s)."""
        if self.bar is not None:
            self.bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def write(self, text: str) -> None:
        """Print a line without breaking the bar (rank 0 only)."""
        if not self.main:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)
