"""Loss modules: CrossEntropyLoss."""
from __future__ import annotations

from typing import Any

from lucid.nn import functional as F
from lucid.nn.module import Module
from lucid.tensor import Tensor


class CrossEntropyLoss(Module):
    """Cross-entropy between logits (N, C) and class indices (N,) or class probabilities (N, C).

    loss_i = -sum_c q_ic log softmax(x_i)_c, q = (1 - label_smoothing) * target + label_smoothing / C.
    Rows whose index equals ``ignore_index`` count for nothing (also not in the mean).
    Per-class ``weight`` is not supported (must be None).
    """

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__()
        if weight is not None:
            raise NotImplementedError("CrossEntropyLoss: per-class weight is not supported; pass weight=None")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"CrossEntropyLoss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing}")
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(input, target, self.reduction, self.label_smoothing, self.ignore_index)
