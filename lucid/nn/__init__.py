"""Layers and models: Module, Parameter, containers and the layers ResNets are made of.

Names and semantics follow ``torch.nn``. Stateless functions live in
``lucid.nn.functional``; weight initialisers in ``lucid.nn.init``.
"""
from lucid.nn import functional, init
from lucid.nn.activation import LogSoftmax, ReLU, Sigmoid, Softmax
from lucid.nn.containers import ModuleDict, ModuleList, Sequential
from lucid.nn.conv import Conv2d
from lucid.nn.dropout import Dropout
from lucid.nn.flatten import Flatten
from lucid.nn.frozen_batchnorm import FrozenBatchNorm2d
from lucid.nn.lazy import LazyBatchNorm2d, LazyConv2d, LazyLinear, LazyModuleMixin
from lucid.nn.linear import Identity, Linear
from lucid.nn.loss import CrossEntropyLoss
from lucid.nn.module import Module, RemovableHandle
from lucid.nn.normalization import BatchNorm2d
from lucid.nn.parameter import Parameter, UninitializedBuffer, UninitializedParameter
from lucid.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

__all__ = [
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BatchNorm2d",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Flatten",
    "FrozenBatchNorm2d",
    "Identity",
    "LazyBatchNorm2d",
    "LazyConv2d",
    "LazyLinear",
    "LazyModuleMixin",
    "Linear",
    "LogSoftmax",
    "MaxPool2d",
    "Module",
    "ModuleDict",
    "ModuleList",
    "Parameter",
    "ReLU",
    "RemovableHandle",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "UninitializedBuffer",
    "UninitializedParameter",
    "functional",
    "init",
]


def __getattr__(name: str):
    """``lucid.nn.SyncBatchNorm`` names where it lives: lucid.distributed (which builds on
    nn, so nn never imports it; docs/design.md, "Layers")."""
    if name == "SyncBatchNorm":
        raise AttributeError(
            "lucid.nn has no SyncBatchNorm: it lives in lucid.distributed "
            "(from lucid.distributed import SyncBatchNorm), next to the communicator it needs"
        )
    raise AttributeError(f"module 'lucid.nn' has no attribute {name!r}")
