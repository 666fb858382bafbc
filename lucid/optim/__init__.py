"""Optimizers and learning-rate schedules with PyTorch's names and update formulas."""
from lucid.optim import lr_scheduler
from lucid.optim.adamw import AdamW
from lucid.optim.optimizer import Optimizer
from lucid.optim.registry import OPTIMIZERS, create_optimizer, register_optimizer
from lucid.optim.sgd import SGD

__all__ = ["AdamW", "OPTIMIZERS", "Optimizer", "SGD", "create_optimizer", "lr_scheduler", "register_optimizer"]
