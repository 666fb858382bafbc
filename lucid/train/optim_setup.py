"""Optimizer and per-step learning-rate schedule built from the run config.

The learning rate in the config is per 256 images; with ``scale_lr`` it is multiplied
by global_batch / 256 (Goyal et al.'s linear scaling rule). Weight decay skips
BatchNorm parameters and biases (every parameter with fewer than 2 dimensions) unless
``decay_bn_and_bias``. The optimizer and the schedule are registered by name
(``lucid.optim.OPTIMIZERS``, ``lucid.train.schedules.SCHEDULES``) and get the config's
``args``. The schedule advances once per optimizer step: linear warmup over
``warmup_epochs``, then the named schedule (cosine, multistep, constant, ...).
``backbone_lr_scale`` multiplies the rate of every parameter outside the classifier
(fine-tuning; see ``lucid.train.finetune``).
"""
from __future__ import annotations

from lucid.optim import create_optimizer, lr_scheduler
from lucid.train.config import OptimConfig, ScheduleConfig
from lucid.train.finetune import split_backbone
from lucid.train.schedules import SCHEDULES


def param_groups(model, cfg: OptimConfig) -> list[dict]:
    """Two groups: weights with decay, BN parameters and biases without (when configured)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.decay_bn_and_bias:
        return [{"params": params, "weight_decay": cfg.weight_decay}]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    return [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def scaled_lr(cfg: OptimConfig, global_batch: int) -> float:
    return cfg.lr * global_batch / 256 if cfg.scale_lr else cfg.lr


def build_optimizer(model, cfg: OptimConfig, global_batch: int):
    """The registered optimizer ``cfg.name`` with ``cfg.args``; weight decay per parameter group."""
    groups = param_groups(model, cfg)
    lr = scaled_lr(cfg, global_batch)
    if cfg.backbone_lr_scale != 1:
        groups = split_backbone(groups, model, lr * cfg.backbone_lr_scale)
    return create_optimizer(cfg.name, groups, lr=lr, weight_decay=cfg.weight_decay, **cfg.args)


def build_scheduler(optimizer, cfg: ScheduleConfig, steps_per_epoch: int, epochs: int):
    """A per-step scheduler: [LinearLR warmup ->] the registered schedule ``cfg.name``."""
    total = max(1, steps_per_epoch * epochs)
    warmup = min(total, round(cfg.warmup_epochs * steps_per_epoch))
    main = SCHEDULES.build(cfg.name, optimizer, steps_per_epoch, total, warmup, **cfg.args)
    if warmup == 0:
        return main
    ramp = lr_scheduler.LinearLR(optimizer, start_factor=cfg.warmup_start_factor, end_factor=1.0, total_iters=warmup)
    return lr_scheduler.SequentialLR(optimizer, [ramp, main], milestones=[warmup])
