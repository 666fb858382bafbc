"""Model registry: factories registered by name, ``list_models`` and ``create_model``."""
from __future__ import annotations

import fnmatch
from typing import Any, Callable

_FACTORIES: dict[str, Callable[..., Any]] = {}


def register_model(factory: Callable[..., Any]) -> Callable[..., Any]:
    """Register ``factory`` under its ``__name__`` (a decorator); names must be unique."""
    name = factory.__name__
    if name in _FACTORIES and _FACTORIES[name] is not factory:
        raise ValueError(f"register_model: a model named {name!r} is already registered")
    _FACTORIES[name] = factory
    return factory


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted names of the registered models, optionally filtered by a glob like "resnext_*"."""
    names = sorted(_FACTORIES)
    return names if pattern is None else [n for n in names if fnmatch.fnmatch(n, pattern)]


def create_model(name: str, **overrides: Any):
    """Build the registered model ``name``; ``overrides`` go to its factory (e.g. num_classes)."""
    if name not in _FACTORIES:
        raise ValueError(f"create_model: unknown model {name!r}; valid names: {', '.join(list_models())}")
    return _FACTORIES[name](**overrides)
