"""What a run reports: ``metrics.jsonl`` (one JSON object per log step and per
evaluation) and a tqdm progress bar, both on rank 0 only."""
from __future__ import annotations

import json
import os
import sys
import time


class MetricsLog:
    """Appends one JSON object per line to ``<run_dir>/metrics.jsonl`` (rank 0 writes)."""

    def __init__(self, run_dir: str, enabled: bool):
        self.enabled = enabled
        self.path = os.path.join(run_dir, "metrics.jsonl")
        if enabled:
            os.makedirs(run_dir, exist_ok=True)

    def write(self, kind: str, **values) -> None:
        if not self.enabled:
            return
        record = {"kind": kind, "time": round(time.time(), 3), **values}
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record) + "\n")


class Progress:
    """A tqdm bar over the steps of an epoch with loss, lr, img/s and ETA (rank 0 only)."""

    def __init__(self, main: bool, show_bar: bool):
        self.main = main
        self.show_bar = main and show_bar and sys.stderr is not None
        self.bar = None

    def start(self, epoch: int, epochs: int, total: int, done: int) -> None:
        if not self.show_bar:
            return
        from tqdm import tqdm  # noqa: PLC0415

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
