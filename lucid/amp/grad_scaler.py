"""GradScaler: dynamic loss scaling for float16 training (PyTorch's ``torch.amp.GradScaler``).

Float16 gradients of small magnitude flush to zero. Multiplying the loss by a large
``scale`` before backward lifts them into float16's range; ``unscale_`` divides the
(float32) parameter gradients by it again before the optimizer uses them. When a
step's gradients hold an Inf/NaN (the scale was too large) the step is skipped and
the scale is multiplied by ``backoff_factor``; after ``growth_interval`` clean steps
in a row it is multiplied by ``growth_factor``.

Data parallel: the skip must be the same on every rank.
``unscale_(optimizer, found_inf=not ddp.finish())`` takes the all-rank verdict of the
gradient all-reduce (a NaN/Inf seen on any rank before the reduction), so every rank
skips together and keeps the same scale, without a second host read.
"""
from __future__ import annotations

from typing import Any

from lucid import _backend
from lucid.tensor import Tensor

READY, UNSCALED, STEPPED = "ready", "unscaled", "stepped"


def _unscale_and_check(grad, inv_scale: float):
    """grad *= inv_scale in place; a 0-d array, true when grad holds a NaN/Inf.

    The sum is non-finite whenever a value is (only sums past float max, values near
    1e38, raise a false alarm); it stays on the device until ``unscale_`` reads all flags.
    """
    xp = _backend.get_array_module(grad)
    grad *= inv_scale
    return ~xp.isfinite(grad.sum(dtype=xp.float32 if grad.dtype.itemsize < 4 else None))


class GradScaler:
    """Scale the loss, unscale the gradients, skip non-finite steps, adapt the scale.

    Args:
        init_scale: the first scale (2**16).
        growth_factor: scale multiplier after ``growth_interval`` clean steps in a row (> 1).
        backoff_factor: scale multiplier after a step with Inf/NaN gradients (in (0, 1)).
        growth_interval: clean steps in a row before the scale grows.
        enabled: False makes every method a pass-through (``scale`` returns its input,
            ``step`` just steps), so one training loop serves with and without amp.

    Per iteration: ``scale(loss).backward()``, optionally ``unscale_(optimizer)`` (e.g.
    to clip gradients), ``step(optimizer)``, ``update()``.
    """

    def __init__(
        self,
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
        enabled: bool = True,
    ):
        if not init_scale > 0:
            raise ValueError(f"GradScaler: init_scale must be > 0, got {init_scale}")
        if not growth_factor > 1.0:
            raise ValueError(f"GradScaler: growth_factor must be > 1, got {growth_factor}")
        if not 0.0 < backoff_factor < 1.0:
            raise ValueError(f"GradScaler: backoff_factor must be in (0, 1), got {backoff_factor}")
        if not (isinstance(growth_interval, int) and growth_interval >= 1):
            raise ValueError(f"GradScaler: growth_interval must be an int >= 1, got {growth_interval!r}")
        self._enabled = bool(enabled)
        self._scale = float(init_scale)
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = growth_interval
        self._growth_tracker = 0
        self._per_optimizer: dict[int, dict] = {}  # id(optimizer) -> {"stage", "found_inf"} this iteration

    def is_enabled(self) -> bool:
        return self._enabled

    def get_scale(self) -> float:
        """The current scale (1.0 when disabled)."""
        return self._scale if self._enabled else 1.0

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def scale(self, outputs: Any) -> Any:
        """``outputs`` times the scale: a Tensor, or a list/tuple of them (nested)."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, Tensor):
            return outputs * self._scale
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        raise TypeError(f"GradScaler.scale: outputs must be a Tensor or a list/tuple of Tensors, got {type(outputs).__name__}")

    def _state(self, optimizer) -> dict:
        return self._per_optimizer.setdefault(id(optimizer), {"stage": READY, "found_inf": False})

    def unscale_(self, optimizer, found_inf: bool | None = None) -> bool:
        """Divide ``optimizer``'s gradients by the scale in place; True when the step will be taken.

        ``found_inf=None`` (PyTorch's behaviour) checks the gradients for Inf/NaN: one
        host read for all of them. lucid addition: a bool is the verdict of whoever
        already checked these gradients, taken as is with no host read; under DDP pass
        ``not ddp.finish()``, the all-rank flag of the gradient all-reduce (every rank
        checked its gradients before the reduction, and a pre-divided sum cannot
        overflow), so every rank decides alike. At most once per optimizer between
        ``update()`` calls.
        """
        if not self._enabled:
            return not found_inf
        state = self._state(optimizer)
        if state["stage"] == UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        if state["stage"] == STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        inv = 1.0 / self._scale
        grads = [p.grad.data for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if found_inf is None:
            flags = [_unscale_and_check(grad, inv) for grad in grads]
            bad = bool(flags) and bool(_backend.asnumpy(_backend.get_array_module(flags[0]).stack(flags).any()))
        else:
            for grad in grads:
                grad *= inv
            bad = bool(found_inf)
        state["stage"], state["found_inf"] = UNSCALED, bad
        return not bad

    def step(self, optimizer, *args: Any, **kwargs: Any):
        """``optimizer.step(*args, **kwargs)`` unless the gradients held Inf/NaN (then None).

        Unscales first if ``unscale_`` was not called this iteration.
        """
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        state = self._state(optimizer)
        if state["stage"] == STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] == READY:
            self.unscale_(optimizer)
        state["stage"] = STEPPED
        if state["found_inf"]:
            return None
        return optimizer.step(*args, **kwargs)

    def update(self, new_scale: float | None = None) -> None:
        """End of iteration: back the scale off if any optimizer's gradients were non-finite,
        grow it after ``growth_interval`` clean iterations; or set ``new_scale``."""
        if not self._enabled:
            return
        if new_scale is not None:
            value = float(new_scale.item() if isinstance(new_scale, Tensor) else new_scale)
            if not value > 0:
                raise ValueError(f"GradScaler.update: new_scale must be > 0, got {value}")
            self._scale = value
        else:
            if not self._per_optimizer:
                raise RuntimeError("No inf checks were recorded prior to update().")
            if any(s["found_inf"] for s in self._per_optimizer.values()):
                self._scale *= self._backoff_factor
                self._growth_tracker = 0
            else:
                self._growth_tracker += 1
                if self._growth_tracker == self._growth_interval:
                    self._scale *= self._growth_factor
                    self._growth_tracker = 0
        self._per_optimizer = {}

    def state_dict(self) -> dict:
        """The scale and growth state (PyTorch's keys); empty when disabled."""
        if not self._enabled:
            return {}
        return {
            "scale": self._scale,
            "growth_factor": self._growth_factor,
            "backoff_factor": self._backoff_factor,
            "growth_interval": self._growth_interval,
            "_growth_tracker": self._growth_tracker,
        }

    def load_state_dict(self, state_dict: dict) -> None:
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError(
                "The source state dict is empty, possibly because it was saved from a disabled instance of GradScaler."
            )
        self._scale = float(state_dict["scale"])
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._growth_tracker = int(state_dict["_growth_tracker"])
