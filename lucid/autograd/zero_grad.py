"""Clearing the gradients of parameters: the one implementation behind
``Module.zero_grad`` and ``Optimizer.zero_grad``."""
from __future__ import annotations

from typing import Iterable


def zero_grad(params: Iterable, set_to_none: bool = True) -> None:
    """Drop (default, PyTorch's behaviour) or zero in place the ``.grad`` of every tensor in ``params``."""
    for p in params:
        if p.grad is None:
            continue
        if set_to_none:
            p.grad = None
        else:
            p.grad.zero_()  # on the gradient's own device (gpu:N)
