"""Exponential moving average of a model's weights (timm's ``ModelEmaV3``).

After every optimizer step ``t`` (counted from 1) each floating-point entry of the
state dict (parameters and BatchNorm running statistics) moves as
``ema += (value - ema) * (1 - decay_t)``; integer entries (``num_batches_tracked``) are
copied. ``decay_1 = 0`` (the EMA starts as the weights after the first step); after that,
with warmup ``decay_t = min(decay, 1 - t^(-2/3))`` (timm's warmup_gamma 1 and
warmup_power 2/3), so early weights, still far from the final ones, fade out quickly;
without warmup ``decay_t = decay``. The update form ``ema += (v - ema) * w``
leaves an entry that does not change (a frozen layer) bit-identical.

Under DistributedDataParallel every rank holds the same weights, hence the same EMA:
it is saved as part of the replicated training state and resumes exactly.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from lucid.dtypes import is_floating
from lucid.nn.module import Module

WARMUP_POWER = 2 / 3


class ModelEma:
    """The moving average of ``model``'s state dict, starting from its current values.

    Args:
        model: the bare model (not its DDP wrapper).
        decay: the decay after warmup, in [0, 1).
        warmup: ramp the decay up as timm's ``use_warmup`` does.
    """

    def __init__(self, model: Module, decay: float, warmup: bool = True):
        if not 0 <= decay < 1:
            raise ValueError(f"ModelEma: decay must be in [0, 1), got {decay}")
        self.decay, self.warmup = decay, warmup
        self.weights = {k: t.clone() for k, t in model.state_dict().items()}

    def decay_at(self, step: int) -> float:
        """The decay applied by the update after optimizer step ``step`` (1-based)."""
        if step <= 1:
            return 0.0
        if self.warmup:
            return min(self.decay, 1 - step**-WARMUP_POWER)
        return self.decay

    def update(self, model: Module, step: int) -> None:
        """Fold ``model``'s current values in, after optimizer step ``step``."""
        weight = 1.0 - self.decay_at(step)
        for name, t in model.state_dict().items():
            ema = self.weights[name].data
            if weight == 1.0 or not is_floating(ema.dtype):
                ema[...] = t.data
            else:
                diff = t.data - ema
                diff *= ema.dtype.type(weight)
                ema += diff

    @contextmanager
    def applied_to(self, model: Module) -> Iterator[Module]:
        """Inside the block ``model`` holds the EMA values; its own values come back afterwards, bit for bit."""
        own = {name: t.data.copy() for name, t in model.state_dict().items()}
        try:
            model.load_state_dict(self.weights)
            yield model
        finally:
            model.load_state_dict(own)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "warmup": self.warmup, "weights": self.weights}

    def load_state_dict(self, state: dict) -> None:
        """Restore the averaged values (the decay settings come from the config, not the file)."""
        missing = sorted(set(self.weights) - set(state["weights"]))
        unexpected = sorted(set(state["weights"]) - set(self.weights))
        if missing or unexpected:
            raise ValueError(f"EMA weights do not fit the model: missing {missing[:10]}, unexpected {unexpected[:10]}")
        for name, t in state["weights"].items():
            self.weights[name].data[...] = t.data
