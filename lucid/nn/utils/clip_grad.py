"""Gradient clipping by the global norm of all gradients (``torch.nn.utils.clip_grad_norm_``)."""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from lucid import _backend
from lucid.tensor import Tensor


def _total_norm(grads: list, norm_type: float) -> float:
    """The ``norm_type``-norm of all gradients together (one host read per device)."""
    by_device: dict[str, list] = {}
    for g in grads:
        by_device.setdefault(_backend.device_of(g), []).append(g)
    parts = []
    for arrays in by_device.values():
        xp = _backend.get_array_module(arrays[0])
        flat = [a.reshape(-1) for a in arrays if a.size]
        if not flat:
            continue
        if norm_type == math.inf:
            parts.append(float(xp.stack([xp.abs(a).max() for a in flat]).max()))
        elif norm_type == 2.0:
            parts.append(float(xp.stack([xp.dot(a, a) for a in flat]).astype("float64").sum()))
        else:
            parts.append(float(xp.stack([(xp.abs(a) ** norm_type).sum() for a in flat]).astype("float64").sum()))
    if norm_type == math.inf:
        return max(parts, default=0.0)
    return sum(parts) ** (1.0 / norm_type)


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale the gradients of ``parameters`` in place so that their global norm is at most ``max_norm``.

    As in PyTorch: the norm is taken over all gradients together (parameters without a
    gradient are skipped), every gradient is multiplied by
    ``min(1, max_norm / (total_norm + 1e-6))``, and the total norm *before* clipping is
    returned as a 0-d tensor of the gradients' dtype (0 when no parameter has a gradient).
    ``norm_type`` may be ``math.inf`` (largest absolute value). A non-finite norm scales
    the gradients into NaN, or raises RuntimeError with ``error_if_nonfinite=True``.
    """
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad.data for p in params if p.grad is not None]
    norm_type = float(norm_type)
    if norm_type <= 0:
        raise ValueError(f"clip_grad_norm_: norm_type must be > 0 or inf, got {norm_type}")
    if not grads:
        return Tensor(np.asarray(0.0, dtype=np.float32))
    device, dtype = _backend.device_of(grads[0]), grads[0].dtype
    total = _total_norm(grads, norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so it cannot be "
            "clipped. To disable this error and scale the gradients by the non-finite norm anyway, set "
            "`error_if_nonfinite=False`"
        )
    coef = min(1.0, float(max_norm) / (total + 1e-6)) if math.isfinite(total) else float(max_norm) / (total + 1e-6)
    if coef != 1.0:
        with np.errstate(invalid="ignore"):  # a non-finite norm turns gradients into NaN, as in PyTorch
            for g in grads:
                g *= g.dtype.type(coef)
    return Tensor(_backend.get_array_module(grads[0]).asarray(total, dtype=dtype), device=device)
