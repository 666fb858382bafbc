"""Weights of the reference libraries (torchvision, timm) onto lucid models, offline.

lucid's module names were chosen so that reference keys map almost one to one: the
only change is that the stem lives under ``stem.`` (torchvision's top-level
``conv1.*`` / ``bn1.*`` become ``stem.conv1.*`` / ``stem.bn1.*``; timm's deep stem
``conv1.0`` .. ``conv1.6`` likewise). Blocks (``layer3.5.conv2.weight``), shortcuts
(``downsample.0`` / ``.1``, or ``.1`` / ``.2`` after ResNet-D's pool), split-attention
convs (``conv2.conv``, ``conv2.bn0``, ``conv2.fc1``, ``conv2.bn1``, ``conv2.fc2``) and
the classifier (``fc``) keep their names. BatchNorm's ``num_batches_tracked`` counter is
loaded when the model has it and otherwise ignored. ``source="lucid"`` reads lucid's own
names (a file written by ``launch.export``); ``source="auto"`` picks the naming from the
keys (``detect_source``).
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from lucid import _backend
from lucid.nn.parameter import is_uninitialized

SOURCES = ("torchvision", "timm", "lucid")
_STEM_PREFIXES = ("conv1.", "bn1.")  # top-level reference names that moved under stem.
_OPTIONAL_SUFFIX = "num_batches_tracked"
_MAX_LISTED = 20


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"unknown weight source {source!r}; valid: {', '.join(SOURCES)}")


def detect_source(keys) -> str:
    """The naming of a state dict's keys: "lucid" (``stem.*``), "timm" (deep stem ``conv1.0.*``),
    "torchvision" (``conv1.*`` / ``bn1.*`` at the top), else "lucid" (models without a stem
    rename, such as d2l's ``net.*``)."""
    keys = list(keys)
    if any(k.startswith("stem.") for k in keys):
        return "lucid"
    if any(k.startswith("conv1.0.") for k in keys):
        return "timm"
    if any(k.startswith(_STEM_PREFIXES) for k in keys):
        return "torchvision"
    return "lucid"


def reference_to_lucid(key: str, source: str = "torchvision") -> str:
    """The lucid state-dict key for a reference key (the same rule for torchvision and timm)."""
    _check_source(source)
    if source == "lucid":
        return key
    return "stem." + key if key.startswith(_STEM_PREFIXES) else key


def lucid_to_reference(key: str, source: str = "torchvision") -> str:
    """The reference key for a lucid state-dict key (inverse of ``reference_to_lucid``)."""
    _check_source(source)
    if source == "lucid":
        return key
    return key[len("stem."):] if key.startswith("stem.") else key


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Arrays of a .safetensors or .npz file, by key (no pickle, no network)."""
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file  # imported here: only needed here

        return dict(load_file(path))
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    raise ValueError(f"read_state_dict: {path!r} is neither a .safetensors nor a .npz file")


def _model_tensors(model) -> dict[str, Any]:
    tensors = dict(model.named_parameters())
    tensors.update(model.named_buffers())
    return tensors


def _listing(title: str, items: list[str]) -> str:
    shown = items[:_MAX_LISTED]
    more = f" ... and {len(items) - len(shown)} more" if len(items) > len(shown) else ""
    return f"{title} ({len(items)}): {', '.join(shown)}{more}"


def _excluded(key: str, exclude: Sequence[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in exclude)


def load_pretrained(model, path: str | os.PathLike | Mapping[str, np.ndarray], source: str = "torchvision",
                    strict: bool = True, exclude: Sequence[str] = ()):
    """Copy a reference state dict (torchvision, timm or lucid key names) into ``model``.

    Args:
        model: a lucid model (e.g. ``resnet_50()``) with the reference architecture.
        path: a ``.safetensors`` or ``.npz`` file of arrays keyed by the reference names
            (or such arrays, already read with ``read_state_dict``).
        source: "torchvision", "timm", "lucid" or "auto" (``detect_source`` of the keys).
        strict: raise unless every file key maps onto a model tensor of the same shape
            and every model parameter/buffer is provided (``num_batches_tracked`` may be
            absent on either side).
        exclude: lucid module names (e.g. ``["fc"]``) whose tensors are neither loaded
            nor required: they keep the model's values (a new classifier when fine-tuning).
    Returns the model. Raises ValueError listing unmapped, missing and mismatched keys.
    """
    if source != "auto":
        _check_source(source)
    state = read_state_dict(path) if isinstance(path, (str, os.PathLike)) else dict(path)
    where = os.fspath(path) if isinstance(path, (str, os.PathLike)) else "<state dict>"
    if source == "auto":
        source = detect_source(state)
    arrays = {reference_to_lucid(k, source): (k, v) for k, v in state.items()}
    arrays = {k: v for k, v in arrays.items() if not _excluded(k, exclude)}
    targets = {k: t for k, t in _model_tensors(model).items() if not _excluded(k, exclude)}
    unmapped = [ref for key, (ref, _) in arrays.items() if key not in targets and not key.endswith(_OPTIONAL_SUFFIX)]
    missing = [key for key in targets if key not in arrays and not key.endswith(_OPTIONAL_SUFFIX)]
    mismatched = [f"{ref} {tuple(v.shape)} -> {key} {tuple(targets[key].shape)}"
                  for key, (ref, v) in arrays.items()
                  if key in targets and not is_uninitialized(targets[key]) and tuple(v.shape) != tuple(targets[key].shape)]
    problems = [_listing(t, i) for t, i in (("keys that map to no model tensor", unmapped),
                                            ("model keys the file lacks", missing),
                                            ("shape mismatches", mismatched)) if i]
    if problems and (strict or mismatched):
        raise ValueError(f"load_pretrained({where!r}, source={source!r}) into "
                         f"{type(model).__name__}:\n  " + "\n  ".join(problems))
    # load_state_dict copies in place (casting to each tensor's dtype and device) and
    # materialises a lazy module's placeholders with the file's shapes, as PyTorch's does
    model.load_state_dict({key: np.asarray(value) for key, (_, value) in arrays.items() if key in targets}, strict=False)
    return model


def reference_state_dict(model, source: str = "torchvision") -> dict[str, np.ndarray]:
    """The model's parameters and buffers as NumPy arrays under the reference key names."""
    _check_source(source)
    return {lucid_to_reference(k, source): _backend.asnumpy(t.data).copy() for k, t in _model_tensors(model).items()}
