"""Cross-entropy (fused log-softmax + NLL, with label smoothing) and top-k correctness."""
from __future__ import annotations

import numpy as np

from lucid._backend import get_array_module
from lucid.autograd.function import Function
from lucid.dtypes import is_floating
from lucid.ops import device_asserts
from lucid.ops.activation import log_softmax_array

REDUCTIONS = ("mean", "sum", "none")


class CrossEntropy(Function):
    """Loss_i = -sum_c q_ic log softmax(x_i)_c with q = (1-eps) onehot(t_i) + eps/C.

    ``target`` holds class indices (N,) or class probabilities (N, C). Samples whose
    index equals ``ignore_index`` contribute nothing and are left out of the mean.
    """

    def forward(self, logits, target, reduction="mean", label_smoothing=0.0, ignore_index=-100):
        xp = get_array_module(logits)
        if reduction not in REDUCTIONS:
            raise ValueError(f"cross_entropy: reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
        if logits.ndim != 2:
            raise ValueError(f"cross_entropy: expected logits of shape (N, C), got {tuple(logits.shape)}")
        n, c = logits.shape
        logp = log_softmax_array(logits, 1)
        if is_floating(target.dtype):
            if target.shape != logits.shape:
                raise ValueError(
                    f"cross_entropy: probability target of shape {tuple(target.shape)} must match logits {tuple(logits.shape)}"
                )
            q = target.astype(logits.dtype, copy=False)
            if label_smoothing:
                q = q * (1 - label_smoothing) + label_smoothing / c
            valid = None
        else:
            if target.shape != (n,):
                raise ValueError(
                    f"cross_entropy: target of shape {tuple(target.shape)} does not match logits {tuple(logits.shape)}"
                )
            valid = target != ignore_index
            bad = valid & ((target < 0) | (target >= c))
            message = f"cross_entropy: target class out of range [0, {c})"
            if xp is np:
                if bad.any():
                    raise IndexError(message)
            else:  # checked when the host next reads; bad rows make the loss NaN meanwhile
                device_asserts.defer(xp.count_nonzero(bad), IndexError, message)
            t = xp.where(valid & ~bad, target, 0)
            q = xp.full((n, c), label_smoothing / c, dtype=logits.dtype)
            q[xp.arange(n), t] += 1 - label_smoothing
            q *= valid[:, None] if xp is np else xp.where(bad, xp.nan, valid)[:, None].astype(q.dtype)
        losses = -(q * logp).sum(axis=1)
        # rows that count: a host int, or a device scalar (reading it would make the host wait)
        count = n if valid is None else xp.maximum(valid.sum(), 1).astype(logits.dtype)
        self.reduction, self.count = reduction, count
        self.save_for_backward(logp, q, valid)
        if reduction == "none":
            return losses
        total = losses.sum()
        return total / (max(count, 1) if valid is None else count) if reduction == "mean" else total

    def backward(self, g):
        logp, q, valid = self.saved
        xp = get_array_module(logp)
        qsum = q.sum(axis=1, keepdims=True)  # 1 for a valid row, 0 for an ignored one
        grad = xp.exp(logp) * qsum - q
        if self.reduction == "none":
            grad *= g[:, None]
        else:
            grad *= g / (max(self.count, 1) if isinstance(self.count, int) else self.count) if self.reduction == "mean" else g
        return grad, None, None, None, None


def topk_correct(logits, target, topk=(1,)) -> list[int]:
    """How many rows have their target among the k highest logits, for each k."""
    xp = get_array_module(logits)
    target_score = xp.take_along_axis(logits, target[:, None], axis=1)
    # rank = number of classes scoring strictly higher than the target's class
    rank = (logits > target_score).sum(axis=1)
    return [int((rank < k).sum()) for k in topk]


def cross_entropy(input, target, reduction: str = "mean", label_smoothing: float = 0.0, ignore_index: int = -100):
    """Cross-entropy of logits (N, C) against class indices (N,) or probabilities (N, C)."""
    return CrossEntropy.apply(input, target, reduction, label_smoothing, ignore_index)


def accuracy(output, target, topk=(1,)) -> list[float]:
    """Top-k accuracy in percent for each k (the classic ImageNet-example helper)."""
    from lucid.tensor import Tensor

    logits = output.data if isinstance(output, Tensor) else output
    labels = target.data if isinstance(target, Tensor) else target
    n = max(len(labels), 1)
    return [100.0 * c / n for c in topk_correct(logits, labels, topk)]
