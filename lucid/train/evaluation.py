"""Exact top-1/top-k accuracy and mean loss of a model over a (sharded) validation loader."""
from __future__ import annotations

import lucid
import lucid.distributed as dist
import lucid.nn.functional as F


def evaluate_model(model, loader, device: str, dtype: str, num_classes: int) -> dict:
    """Every rank evaluates its share; the counts are summed over all ranks.

    Returns ``{"top1", "topk", "k", "loss", "count"}`` with k = min(5, num_classes). The
    model is left in eval mode; callers that train on switch it back.
    """
    model.eval()
    k = min(5, num_classes)
    meter = dist.ClassificationMeter(topk=(1, k))
    with lucid.no_grad():
        for images, labels in loader:
            logits = model(images.to(device).to(dtype))
            labels = labels.to(device)
            meter.update(logits, labels, loss_sum=F.cross_entropy(logits, labels, reduction="sum").item())
    stats = meter.compute()
    return {"top1": stats["top1"], "topk": stats[f"top{k}"], "k": k, "loss": stats["loss"], "count": stats["count"]}
