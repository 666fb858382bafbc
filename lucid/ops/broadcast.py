"""Broadcasting rules shared by the elementwise ops: shape checks and un-broadcasting."""
from __future__ import annotations

import numpy as np


def shape_of(x) -> tuple[int, ...]:
    """Shape of an array or a Python scalar (``()``)."""
    return tuple(getattr(x, "shape", ()))


def check_broadcast(op: str, a: tuple, b: tuple, target: tuple | None = None) -> tuple:
    """The broadcast shape of ``a`` and ``b``; a ValueError naming op and both shapes otherwise.

    With ``target``, the result must also equal it (in-place ops cannot grow their output).
    """
    try:
        out = np.broadcast_shapes(a, b)
    except ValueError:
        raise ValueError(f"{op}: shapes {tuple(a)} and {tuple(b)} cannot be broadcast together") from None
    if target is not None and tuple(out) != tuple(target):
        raise ValueError(f"{op}: shape {tuple(b)} cannot be broadcast to {tuple(target)}")
    return out


def unbroadcast(grad, shape: tuple):
    """Sum ``grad`` down to ``shape``: the adjoint of broadcasting an array of that shape."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1
    )
    out = grad.sum(axis=axes, keepdims=True) if axes else grad
    if extra:
        out = out.reshape(out.shape[extra:])
    return out.reshape(shape)
