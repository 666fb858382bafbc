"""The model of a run, ready for DistributedDataParallel.

Order matters and is the same on every rank: build the registered model, move it to
the run's device and dtype, load pretrained weights (``[model] pretrained``), give lazy
modules their shapes with a dry forward, convert BatchNorm to SyncBatchNorm, then
freeze the ``[model] freeze`` prefixes. DDP compares parameter shapes across ranks and
the optimizer lists parameters, so both need a model without placeholders: d2l's
ResNet (LazyConv2d / LazyBatchNorm2d / LazyLinear) has none only after a first forward.
"""
from __future__ import annotations

from typing import Any, Callable

import lucid
from lucid.models import create_model
from lucid.models.registry import MODELS
from lucid.nn.module import Module
from lucid.nn.parameter import is_uninitialized
from lucid.train import finetune
from lucid.train.config import TrainConfig


def has_uninitialized(model: Module) -> bool:
    """Whether any parameter or buffer is still a lazy placeholder."""
    return any(is_uninitialized(t) for t in [*model.parameters(), *model.buffers()])


def materialize_lazy(model: Module, input_shape: tuple[int, ...], device: Any, dtype: Any) -> None:
    """One forward of a zero batch of ``input_shape`` in eval mode without gradients, when
    the model has lazy placeholders: shapes get inferred, BatchNorm statistics stay as they are."""
    if not has_uninitialized(model):
        return
    was_training = model.training
    model.eval()
    with lucid.no_grad():
        model(lucid.zeros(*input_shape, device=device, dtype=dtype))
    model.train(was_training)
    if has_uninitialized(model):
        raise RuntimeError(f"{type(model).__name__}: a dry forward of shape {input_shape} left lazy parameters unset")


def model_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    """The factory's keyword arguments: ``model.overrides`` plus ``model.norm_layer`` /
    ``model.act_layer`` when set (a model whose factory takes no such argument is an error)."""
    kwargs = dict(cfg.model.overrides)
    for key in ("norm_layer", "act_layer"):
        value = getattr(cfg.model, key)
        if not value:
            continue
        params = MODELS.keywords(cfg.model.name)
        if params is not None and key not in params:
            raise ValueError(f"model.{key} = {value!r}: model {cfg.model.name!r} takes no {key} "
                             f"(its arguments: {', '.join(sorted(params))})")
        kwargs[key] = value
    return kwargs


def build_model(cfg: TrainConfig, device: Any, world: int, sync_bn: bool | None = None,
                on_pretrained: Callable[[finetune.PretrainedLoad], None] | None = None) -> Module:
    """The model of ``cfg`` on ``device`` in ``cfg.run.dtype``; its BatchNorms become
    SyncBatchNorm when ``sync_bn`` (default ``cfg.run.sync_bn``) and more than one rank
    runs. ``on_pretrained`` receives what the ``model.pretrained`` load did."""
    model = create_model(cfg.model.name, num_classes=cfg.model.num_classes, **model_kwargs(cfg))
    model = model.to(device).to(cfg.run.dtype)
    if cfg.model.pretrained:
        loaded = finetune.load_weights(model, cfg.model.pretrained, cfg.model.pretrained_source)
        if on_pretrained is not None:
            on_pretrained(loaded)
    d = cfg.data
    materialize_lazy(model, (1, d.channels, d.image_size, d.image_size), device, cfg.run.dtype)
    if (cfg.run.sync_bn if sync_bn is None else sync_bn) and world > 1:
        from lucid.distributed import SyncBatchNorm

        model = SyncBatchNorm.convert_sync_batchnorm(model)
    if cfg.model.freeze:
        model = finetune.freeze(model, cfg.model.freeze)
    return model
