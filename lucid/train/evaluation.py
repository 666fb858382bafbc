"""Exact top-1/top-k accuracy and mean loss of a model over a (sharded) validation loader."""
from __future__ import annotations

import lucid
import lucid.distributed as dist
import lucid.nn.functional as F
from lucid.data.device_prefetch import DevicePrefetcher


def evaluate_model(model, loader, device: str, dtype: str, num_classes: int, normalize: tuple | None = None) -> dict:
    """Every rank evaluates its share; the counts are summed over all ranks.

    Returns ``{"top1", "topk", "k", "loss", "count"}`` with k = min(5, num_classes). The
    model is left in eval mode; callers that train on switch it back. Batches go through
    a DevicePrefetcher (the next one copied during this one's forward on a GPU), which also
    normalises uint8 batches with ``normalize`` = (mean, std).
    """
    model.eval()
    k = min(5, num_classes)
    meter = dist.ClassificationMeter(topk=(1, k))
    with lucid.no_grad():
        for images, labels in DevicePrefetcher(loader, device, normalize):
            logits = model(images.to(dtype))  # the prefetcher put images and labels on ``device``
            meter.update(logits, labels, loss_sum=F.cross_entropy(logits, labels, reduction="sum").item())
    stats = meter.compute()
    return {"top1": stats["top1"], "topk": stats[f"top{k}"], "k": k, "loss": stats["loss"], "count": stats["count"]}
