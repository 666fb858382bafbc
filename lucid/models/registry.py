"""Model registry: factories registered by name, ``list_models`` and ``create_model``."""
from __future__ import annotations

from typing import Any, Callable

from lucid.registry import Registry

MODELS = Registry("model")


def register_model(factory: Callable[..., Any]) -> Callable[..., Any]:
    """Register ``factory`` under its ``__name__`` (a decorator); names must be unique."""
    try:
        return MODELS.register(factory.__name__, factory)
    except ValueError as exc:
        raise ValueError(f"register_model: {exc}") from None


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted names of the registered models, optionally filtered by a glob like "resnext_*"."""
    return MODELS.names(pattern)


def create_model(name: str, **overrides: Any):
    """Build the registered model ``name``; ``overrides`` go to its factory (e.g. num_classes)."""
    if name not in MODELS:
        raise ValueError(f"create_model: unknown model {name!r}; valid names: {', '.join(list_models())}")
    return MODELS.build(name, **overrides)
