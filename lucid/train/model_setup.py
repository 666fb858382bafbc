"""The model of a run, built from the config on every rank."""
from __future__ import annotations

import lucid.distributed as dist
from lucid.models import create_model
from lucid.train.config import TrainConfig


def build_model(cfg: TrainConfig, device: str, world: int, sync_bn: bool | None = None):
    """The registered model ``cfg.model.name`` on ``device`` in ``cfg.run.dtype``; its
    BatchNorms become SyncBatchNorm when ``sync_bn`` (default ``cfg.run.sync_bn``) and
    more than one rank runs."""
    model = create_model(cfg.model.name, num_classes=cfg.model.num_classes, **cfg.model.overrides)
    model = model.to(device).to(cfg.run.dtype)
    if (cfg.run.sync_bn if sync_bn is None else sync_bn) and world > 1:
        model = dist.SyncBatchNorm.convert_sync_batchnorm(model)
    return model
