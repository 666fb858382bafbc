"""Stateless neural-network functions (PyTorch's ``torch.nn.functional``).

Everything here is implemented in ``lucid.ops``; this module gathers the NN-facing
names in one place so that ``import lucid.nn.functional as F`` reads as in PyTorch.
"""
from lucid.ops import (
    accuracy,
    adaptive_avg_pool2d,
    avg_pool2d,
    batch_norm,
    conv2d,
    cross_entropy,
    dropout,
    linear,
    log_softmax,
    max_pool2d,
    pad,
    relu,
    sigmoid,
    softmax,
)

__all__ = [
    "accuracy",
    "adaptive_avg_pool2d",
    "avg_pool2d",
    "batch_norm",
    "conv2d",
    "cross_entropy",
    "dropout",
    "linear",
    "log_softmax",
    "max_pool2d",
    "pad",
    "relu",
    "sigmoid",
    "softmax",
]
