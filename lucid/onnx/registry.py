"""Converters by lucid op: ``CONVERTERS[Function class name] = convert(graph, op)``."""
from __future__ import annotations

from typing import Callable

CONVERTERS: dict[str, Callable] = {}


def converter(*names: str) -> Callable:
    """Register the decorated function as the ONNX converter of the named lucid ops."""

    def register(fn: Callable) -> Callable:
        for name in names:
            CONVERTERS[name] = fn
        return fn

    return register
