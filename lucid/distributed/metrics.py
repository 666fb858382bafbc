"""Exact distributed evaluation: sum counts over ranks, divide once.

Averaging per-rank accuracies is wrong whenever ranks see different numbers of
samples. Each rank instead keeps sums (correct@k, loss sum, sample count); one
float64 all-reduce adds them up (exact for counts below 2**53) and the ratios are
taken last, so the result is the whole-set figure for any world size. (The
evaluation sampler must visit each sample once: no padding duplicates.)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from lucid.distributed.collectives import all_reduce
from lucid.distributed.group import ProcessGroup


def reduce_sums(sums: dict[str, float], group: ProcessGroup | None = None) -> dict[str, float]:
    """Sum each value over all ranks (of ``group``; None: the world) in one all-reduce.

    Every rank must pass the same keys in the same order (they define the layout
    of the reduced vector).
    """
    values = np.array([float(v) for v in sums.values()], dtype=np.float64)
    all_reduce(values, "sum", group=group)
    return dict(zip(sums.keys(), values.tolist()))


class ClassificationMeter:
    """Accumulates top-k correct counts, loss sum and sample count; ``compute()`` reduces them.

    Args:
        topk: the k's to count (top-1 and top-5 by default).
        ignore_index: rows with this target are left out (PyTorch's ``ignore_index``;
            e.g. images that could not be read, see ``lucid.data.LeaveOutUnreadable``).
        group: the ranks ``compute()`` sums over (None: the world).

    Example::

        meter = ClassificationMeter()
        for images, labels in val_loader:
            logits = model(images)
            meter.update(logits, labels, loss_sum=float(F.cross_entropy(logits, labels, reduction="sum")))
        stats = meter.compute()   # {"top1": 76.1, "top5": 92.9, "loss": 0.97, "count": 50000}
    """

    def __init__(self, topk: Sequence[int] = (1, 5), ignore_index: int = -100, group: ProcessGroup | None = None):
        self.topk = tuple(int(k) for k in topk)
        self.ignore_index = ignore_index
        self.group = group
        self.reset()

    def reset(self) -> None:
        self.sums = {f"correct{k}": 0.0 for k in self.topk} | {"loss_sum": 0.0, "count": 0.0}

    def update(self, logits, target, loss_sum: float | None = None) -> None:
        """Add one local batch: logits (N, C), integer targets (N,), optional summed loss."""
        from lucid.ops.loss import topk_correct
        from lucid.tensor import Tensor

        logits = logits.data if isinstance(logits, Tensor) else logits
        target = target.data if isinstance(target, Tensor) else target
        if len(logits) != len(target):
            raise ValueError(f"ClassificationMeter.update: {len(logits)} rows of logits but {len(target)} targets")
        keep = target != self.ignore_index
        if not bool(keep.all()):
            logits, target = logits[keep], target[keep]
        if len(target):
            ks = [min(k, logits.shape[1]) for k in self.topk]
            for k, c in zip(self.topk, topk_correct(logits, target, ks)):
                self.sums[f"correct{k}"] += c
        self.sums["count"] += len(target)
        if loss_sum is not None:
            self.sums["loss_sum"] += float(loss_sum)

    def compute(self) -> dict[str, float]:
        """Whole-set figures: ``top<k>`` in percent, mean ``loss``, total ``count`` (collective)."""
        total = reduce_sums(self.sums, self.group)
        n = total["count"]
        out = {f"top{k}": 100.0 * total[f"correct{k}"] / n if n else 0.0 for k in self.topk}
        out["loss"] = total["loss_sum"] / n if n else 0.0
        out["count"] = int(n)
        return out
