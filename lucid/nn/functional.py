"""Stateless neural-network functions (PyTorch's ``torch.nn.functional``).

Everything here is implemented in ``lucid.ops``; this module gathers the NN-facing
names in one place so that ``import lucid.nn.functional as F`` reads as in PyTorch.
"""
from lucid.ops import (
    accuracy,
    cross_entropy,
    dropout,
    linear,
    log_softmax,
    pad,
    relu,
    sigmoid,
    softmax,
)

__all__ = [
    "accuracy",
    "cross_entropy",
    "dropout",
    "linear",
    "log_softmax",
    "pad",
    "relu",
    "sigmoid",
    "softmax",
]
