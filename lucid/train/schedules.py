"""Learning-rate schedules by name, for configs: per-step schedulers counted in epochs.

Each entry is ``schedule(optimizer, steps_per_epoch, total_steps, warmup_steps, **args)``
and returns the scheduler that runs after the linear warmup (``build_scheduler`` adds
the warmup); the four leading arguments come from the run, ``args`` from the config's
``[schedule.args]``. Add one with ``@SCHEDULES.register("name")``.
"""
from __future__ import annotations

from typing import Callable, Sequence

from lucid.creation import zeros
from lucid.optim import SGD, lr_scheduler
from lucid.registry import Registry


def _probe(schedule: Callable, kwargs: dict) -> None:
    optimizer = SGD([zeros(1, requires_grad=True)], lr=1.0)
    schedule(optimizer, steps_per_epoch=1, total_steps=1, warmup_steps=0, **kwargs)


SCHEDULES = Registry("LR schedule", supplied=("optimizer", "steps_per_epoch", "total_steps", "warmup_steps"), probe=_probe)


@SCHEDULES.register("cosine")
def cosine(optimizer, steps_per_epoch: int, total_steps: int, warmup_steps: int, min_lr: float = 0.0):
    """Cosine from the base rate to ``min_lr`` over the steps after the warmup."""
    if min_lr < 0:
        raise ValueError(f"min_lr must be >= 0, got {min_lr}")
    return lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps - warmup_steps), eta_min=min_lr)


@SCHEDULES.register("multistep")
def multistep(
    optimizer, steps_per_epoch: int, total_steps: int, warmup_steps: int, milestones: Sequence[int] = (30, 60, 80), gamma: float = 0.1
):
    """Multiply the rate by ``gamma`` at each epoch in ``milestones`` (counted from the run's start)."""
    milestones = list(milestones)
    if any(not isinstance(m, int) or isinstance(m, bool) or m <= 0 for m in milestones) or milestones != sorted(milestones):
        raise ValueError(f"milestones must be increasing positive epochs, got {milestones!r}")
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    steps = [m * steps_per_epoch - warmup_steps for m in milestones if m * steps_per_epoch > warmup_steps]
    return lr_scheduler.MultiStepLR(optimizer, milestones=steps, gamma=gamma)


@SCHEDULES.register("constant")
def constant(optimizer, steps_per_epoch: int, total_steps: int, warmup_steps: int):
    """The base rate throughout."""
    return lr_scheduler.MultiStepLR(optimizer, milestones=[], gamma=1.0)
