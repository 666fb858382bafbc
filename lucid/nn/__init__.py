"""Layers and models: Module, Parameter, containers and the layers ResNets are made of.

Names and semantics follow ``torch.nn``. Stateless functions live in
``lucid.nn.functional``; weight initialisers in ``lucid.nn.init``.
"""
from lucid.nn import functional, init
from lucid.nn.activation import LogSoftmax, ReLU, Sigmoid, SiLU, Softmax
from lucid.nn.containers import ModuleDict, ModuleList, Sequential
from lucid.nn.conv import Conv2d
from lucid.nn.dropout import Dropout
from lucid.nn.flatten import Flatten
from lucid.nn.frozen_batchnorm import FrozenBatchNorm2d, FrozenBatchNormAct2d
from lucid.nn.layer_registry import ACT_LAYERS, NORM_LAYERS, get_norm_act_layer, register_norm_layer, resolve_layer
from lucid.nn.lazy import LazyBatchNorm2d, LazyBatchNormAct2d, LazyConv2d, LazyLinear, LazyModuleMixin
from lucid.nn.linear import Identity, Linear
from lucid.nn.loss import CrossEntropyLoss
from lucid.nn.module import Module, RemovableHandle
from lucid.nn.norm_act import BatchNormAct2d, NormActMixin, fuses_relu
from lucid.nn.normalization import BatchNorm2d
from lucid.nn.parameter import Parameter, UninitializedBuffer, UninitializedParameter
from lucid.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

__all__ = [
    "ACT_LAYERS",
    "NORM_LAYERS",
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BatchNorm2d",
    "BatchNormAct2d",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Flatten",
    "FrozenBatchNorm2d",
    "FrozenBatchNormAct2d",
    "Identity",
    "LazyBatchNorm2d",
    "LazyBatchNormAct2d",
    "LazyConv2d",
    "LazyLinear",
    "LazyModuleMixin",
    "Linear",
    "LogSoftmax",
    "MaxPool2d",
    "Module",
    "ModuleDict",
    "ModuleList",
    "NormActMixin",
    "Parameter",
    "ReLU",
    "RemovableHandle",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "UninitializedBuffer",
    "UninitializedParameter",
    "fuses_relu",
    "functional",
    "get_norm_act_layer",
    "init",
    "register_norm_layer",
    "resolve_layer",
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
