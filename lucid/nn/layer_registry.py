"""Norm and activation layers by name: what ``[model] norm_layer`` / ``act_layer`` choose.

``NORM_LAYERS`` maps a name to a norm class called as ``norm(num_features)``, and knows
for each its norm+activation class (``norm_act(num_features, act_layer=...)``), which a
block uses where an activation follows the norm (``get_norm_act_layer``).
``ACT_LAYERS`` maps a name to an activation class called with no arguments.
Adding one is ``register_norm_layer(name, norm, norm_act)`` / ``ACT_LAYERS.register(name, cls)``.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

from lucid.nn.activation import ReLU, SiLU
from lucid.nn.norm_act import BatchNormAct2d
from lucid.nn.normalization import BatchNorm2d
from lucid.registry import Registry

NORM_LAYERS = Registry("norm layer")
ACT_LAYERS = Registry("activation layer")
_NORM_ACT: dict[Any, Callable[..., Any]] = {}  # norm class -> its norm+activation class


def register_norm_layer(name: str, norm_layer: Callable[..., Any], norm_act_layer: Callable[..., Any]) -> None:
    """Register ``norm_layer`` under ``name`` with the class that applies an activation after it
    (``norm_act_layer(num_features, act_layer=...)``; both build the same parameters and buffers)."""
    NORM_LAYERS.register(name, norm_layer)
    _NORM_ACT[norm_layer] = norm_act_layer


def resolve_layer(registry: Registry, layer: Any, owner: str, field: str) -> Any:
    """The class of a registered name, or ``layer`` itself when it is a class (or other callable)."""
    if isinstance(layer, str):
        try:
            return registry.get(layer)
        except ValueError as exc:
            raise ValueError(f"{owner}: {field}: {exc}") from None
    if not callable(layer):
        raise TypeError(f"{owner}: {field} must be a registered name ({', '.join(registry.names())}) "
                        f"or a layer class, got {layer!r}")
    return layer


def get_norm_act_layer(norm_layer: Any, act_layer: Any) -> Callable[[int], Any]:
    """``num_features -> norm followed by act_layer()``: the registered norm+activation class of
    ``norm_layer`` (BatchNormAct2d for BatchNorm2d, fused when the activation is a ReLU)."""
    if norm_layer in _NORM_ACT:
        return functools.partial(_NORM_ACT[norm_layer], act_layer=act_layer)
    known = ", ".join(f"{getattr(k, '__name__', k)} -> {getattr(v, '__name__', v)}" for k, v in _NORM_ACT.items())
    raise ValueError(
        f"norm_layer {getattr(norm_layer, '__name__', norm_layer)!r} has no norm+activation class; register one "
        f"with lucid.nn.register_norm_layer(name, norm, norm_act) (registered: {known})"
    )


register_norm_layer("batchnorm", BatchNorm2d, BatchNormAct2d)
ACT_LAYERS.register("relu", ReLU)
ACT_LAYERS.register("silu", SiLU)
