"""Which checkpoint is the best so far: the evaluation with the highest validation top-1.

With ``[run] keep_best`` the Trainer reports every evaluation here; a checkpoint written
at the step of the current best carries the mark ``best`` in its manifest (see
``lucid.distributed.checkpoint_marks``), which pruning never removes while it is the
newest such mark. The record is part of the training state, so a resumed run
continues to compare against the best of the runs before it.
"""
from __future__ import annotations


class BestTracker:
    """The best validation top-1 seen and the step it was seen at (inactive when not ``enabled``)."""

    MARK = "best"

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.top1: float | None = None
        self.step: int | None = None

    def observe(self, step: int, top1: float) -> bool:
        """Record an evaluation; True when it is a new best (strictly higher top-1)."""
        if not self.enabled or (self.top1 is not None and top1 <= self.top1):
            return False
        self.top1, self.step = top1, step
        return True

    def marks(self, step: int) -> dict | None:
        """The manifest marks of a checkpoint written at ``step``."""
        if self.enabled and self.step == step:
            return {self.MARK: {"val_top1": self.top1, "step": step}}
        return None

    def state_dict(self) -> dict:
        return {"top1": self.top1, "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.top1, self.step = state["top1"], state["step"]
