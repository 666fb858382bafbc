"""Optimizers by name, for configs: ``register_optimizer("sgd", SGD)`` and ``create_optimizer``.

The framework passes ``params``, ``lr`` and ``weight_decay`` itself (lr scaled with the
batch, decay per parameter group); every other constructor argument is a config key.
Checking a config's arguments builds the optimizer once on one throw-away parameter, so
its own range checks (e.g. "Invalid momentum value") run before the run starts.
"""
from __future__ import annotations

from typing import Any, Callable

from lucid.creation import zeros
from lucid.registry import Registry


def _probe(constructor: Callable, kwargs: dict) -> None:
    constructor([zeros(1, requires_grad=True)], lr=1e-3, **kwargs)


OPTIMIZERS = Registry("optimizer", supplied=("params", "lr", "weight_decay"), probe=_probe)


def register_optimizer(name: str, constructor: Callable | None = None):
    """Register an Optimizer subclass (or factory) under ``name``; a decorator without ``constructor``."""
    return OPTIMIZERS.register(name, constructor)


def create_optimizer(name: str, params: Any, lr: float, weight_decay: float = 0.0, **kwargs: Any):
    """The registered optimizer ``name`` over ``params`` (an iterable of Parameters or groups)."""
    return OPTIMIZERS.build(name, params, lr=lr, weight_decay=weight_decay, **kwargs)
