"""Fine-tuning: pretrained weights with a new classifier, frozen prefixes, a slower backbone.

``[model] pretrained`` loads a state dict through ``lucid.models.load_pretrained``; when
the file's classifier has another number of classes than ``model.num_classes`` (or the
file has none), the classifier keeps its fresh initialisation and the load says so;
every other missing, unexpected or mis-shaped key is an error that lists them.
``[model] freeze`` turns off gradients under module-name prefixes and swaps their
BatchNorm layers for ``FrozenBatchNorm2d`` (running statistics stay as loaded).
``[optim] backbone_lr_scale`` multiplies the learning rate of every parameter outside
the classifier (timm and Keras fine-tuning recipes: a new head learns at the full rate).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

from lucid.models.pretrained import detect_source, load_pretrained, lucid_to_reference, read_state_dict
from lucid.nn.frozen_batchnorm import FrozenBatchNorm2d
from lucid.nn.linear import Linear
from lucid.nn.module import Module
from lucid.nn.normalization import BatchNorm2d


@dataclass
class PretrainedLoad:
    """What ``load_weights`` did."""

    path: str
    source: str  # the key naming used (the detected one for "auto")
    detected: bool  # source was "auto"
    tensors: int  # tensors copied from the file
    head: str  # the classifier's module name
    head_reset: str | None  # why the classifier was not loaded, or None when it was


def classifier_name(model: Module) -> str:
    """The module name of the classifier: the model's last Linear layer (``fc`` in the ResNets)."""
    names = [name for name, m in model.named_modules() if isinstance(m, Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no Linear layer to serve as its classifier")
    return names[-1]


def load_weights(model: Module, path: str, source: str = "auto") -> PretrainedLoad:
    """Load ``path`` into ``model``, keeping a fresh classifier when the file's does not fit."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model.pretrained: no weights file {path!r}")
    state = read_state_dict(path)
    used = detect_source(state) if source == "auto" else source
    head = classifier_name(model)
    classes = model.get_submodule(head).out_features
    key = lucid_to_reference(head + ".weight", used)
    reason = None
    if key not in state:
        reason = f"the file has no {key}"
    elif state[key].ndim != 2 or state[key].shape[0] != classes:
        reason = f"the file's {key} has {state[key].shape[0]} classes, model.num_classes = {classes}"
    exclude = [head] if reason else []
    try:
        load_pretrained(model, state, source=used, strict=True, exclude=exclude)
    except ValueError as exc:
        details = str(exc).split(":\n", 1)[-1]  # the lists of keys, without load_pretrained's own header
        raise ValueError(
            f"model.pretrained = {path!r} ({used} names) does not fit {type(model).__name__}:\n{details}"
        ) from None
    prefix = lucid_to_reference(head + ".", used)
    tensors = sum(1 for k in state if not (reason and k.startswith(prefix)))
    return PretrainedLoad(path, used, source == "auto", tensors, head, reason)


def describe_load(load: PretrainedLoad) -> str:
    naming = f"{load.source} names" + (", detected" if load.detected else "")
    text = f"pretrained: {load.tensors} tensors from {load.path} ({naming})"
    if load.head_reset:
        text += f"; classifier '{load.head}' re-initialised: {load.head_reset}"
    return text


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def freeze(model: Module, prefixes: Sequence[str]) -> Module:
    """Stop training every parameter under the module-name ``prefixes`` (e.g. ``["stem", "layer1"]``),
    BatchNorm statistics included; a prefix that names no parameter is a ValueError."""
    params = [name for name, _ in model.named_parameters()]
    for prefix in prefixes:
        if not any(_under(name, prefix) for name in params):
            top = ", ".join(name for name, _ in model.named_children())
            raise ValueError(
                f"model.freeze: {prefix!r} matches no parameter of {type(model).__name__} (top-level modules: {top})"
            )
    for name, p in model.named_parameters():
        if any(_under(name, prefix) for prefix in prefixes):
            p.requires_grad = False
    norms = [name for name, m in model.named_modules() if isinstance(m, BatchNorm2d) and name]
    for name in norms:
        if any(_under(name, prefix) for prefix in prefixes):
            parent, _, child = name.rpartition(".")
            owner = model.get_submodule(parent) if parent else model
            owner.add_module(child, FrozenBatchNorm2d.from_batchnorm(owner.get_submodule(child)))
    return model


def split_backbone(groups: list[dict], model: Module, backbone_lr: float) -> list[dict]:
    """Each parameter group split in two: the classifier's parameters keep the group's rate
    (their groups come first, so ``param_groups[0]`` shows the configured rate), every
    other parameter gets ``backbone_lr``; empty groups are dropped."""
    head = classifier_name(model)
    in_head = {id(p) for name, p in model.named_parameters() if _under(name, head)}
    out = []
    for group in groups:
        backbone = [p for p in group["params"] if id(p) not in in_head]
        head_params = [p for p in group["params"] if id(p) in in_head]
        if head_params:
            out.append({**group, "params": head_params})
        if backbone:
            out.append({**group, "params": backbone, "lr": backbone_lr})
    return out
