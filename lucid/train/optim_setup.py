"""Optimizer and per-step learning-rate schedule built from the run config.

The learning rate in the config is per 256 images; with ``scale_lr`` it is multiplied
by global_batch / 256 (Goyal et al.'s linear scaling rule). Weight decay skips
BatchNorm parameters and biases (every parameter with fewer than 2 dimensions) unless
``decay_bn_and_bias``. The schedule advances once per optimizer step: linear warmup
over ``warmup_epochs``, then cosine to ``min_lr``, multistep decay at epoch
milestones, or a constant rate. ``backbone_lr_scale`` multiplies the rate of every
parameter outside the classifier (fine-tuning; see ``lucid.train.finetune``).
"""
from __future__ import annotations

from lucid import optim
from lucid.optim import lr_scheduler
from lucid.train.config import OptimConfig, ScheduleConfig
from lucid.train.finetune import split_backbone


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
    groups = param_groups(model, cfg)
    lr = scaled_lr(cfg, global_batch)
    if cfg.backbone_lr_scale != 1:
        groups = split_backbone(groups, model, lr * cfg.backbone_lr_scale)
    if cfg.name == "sgd":
        return optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    return optim.AdamW(groups, lr=lr, betas=tuple(cfg.betas), eps=cfg.eps)


def build_scheduler(optimizer, cfg: ScheduleConfig, steps_per_epoch: int, epochs: int):
    """A per-step scheduler: [LinearLR warmup ->] cosine | multistep | constant."""
    total = max(1, steps_per_epoch * epochs)
    warmup = min(total, round(cfg.warmup_epochs * steps_per_epoch))
    if cfg.name == "cosine":
        main = lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total - warmup), eta_min=cfg.min_lr)
    elif cfg.name == "multistep":
        milestones = [m * steps_per_epoch - warmup for m in cfg.milestones if m * steps_per_epoch > warmup]
        main = lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=cfg.gamma)
    else:
        main = lr_scheduler.MultiStepLR(optimizer, milestones=[], gamma=1.0)
    if warmup == 0:
        return main
    ramp = lr_scheduler.LinearLR(optimizer, start_factor=cfg.warmup_start_factor, end_factor=1.0, total_iters=warmup)
    return lr_scheduler.SequentialLR(optimizer, [ramp, main], milestones=[warmup])
