"""Registries: the choices a run config makes by name (models, optimizers, LR schedules,
data sources, transform presets), each a table of name -> constructor.

A config names an entry and gives its keyword arguments as a table; ``check`` validates
those arguments against the constructor's signature (unknown keys, types taken from
the defaults) and, when the registry has a ``probe``, by building the entry once on a
throw-away input so that the constructor's own range checks run before anything real
is built. Adding a choice is one file: the constructor plus ``register(name)``.
See docs/design.md ("Registries").
"""
from __future__ import annotations

import fnmatch
import inspect
from typing import Any, Callable


class Registry:
    """Name -> constructor for one kind of choice.

    Args:
        kind: what the entries are, for messages ("optimizer", "transform preset", ...).
        supplied: parameter names the framework passes itself (never config keys).
        probe: optional ``probe(constructor, kwargs)`` that builds the entry on a
            throw-away input; its ValueError/TypeError become the check's error.
    """

    def __init__(self, kind: str, supplied: tuple[str, ...] = (), probe: Callable[[Callable, dict], Any] | None = None):
        self.kind = kind
        self.supplied = frozenset(supplied)
        self.probe = probe
        self._entries: dict[str, Callable[..., Any]] = {}

    def register(self, name: str, constructor: Callable[..., Any] | None = None):
        """Register ``constructor`` under ``name``; without it, a decorator. Names are unique."""

        def add(obj: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"a {self.kind} named {name!r} is already registered")
            self._entries[name] = obj
            return obj

        return add if constructor is None else add(constructor)

    def names(self, pattern: str | None = None) -> list[str]:
        """Sorted registered names, optionally filtered by a glob like "resnext_*"."""
        names = sorted(self._entries)
        return names if pattern is None else [n for n in names if fnmatch.fnmatch(n, pattern)]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}")
        return self._entries[name]

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.get(name)(*args, **kwargs)

    def keywords(self, name: str) -> dict[str, inspect.Parameter] | None:
        """The config-settable parameters of ``name``; None when it takes ``**kwargs`` (anything goes)."""
        params = inspect.signature(self.get(name)).parameters.values()
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return None
        return {
            p.name: p for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in self.supplied
        }

    def check(self, name: str, kwargs: dict, where: str) -> None:
        """Validate ``kwargs`` for entry ``name``; errors name ``where.<key>`` and the valid keys."""
        self.get(name)
        params = self.keywords(name)
        if params is not None:
            for key, value in kwargs.items():
                if key not in params:
                    raise ValueError(
                        f"unknown key {where}.{key} for {self.kind} {name!r} "
                        f"(valid keys in [{where}]: {', '.join(sorted(params)) or 'none'})"
                    )
                expected = _expected_type(params[key].default)
                if expected is not None and not _fits(value, expected):
                    raise ValueError(f"{where}.{key} must be of type {expected.__name__}, got {value!r}")
            missing = [k for k, p in params.items() if p.default is p.empty and k not in kwargs]
            if missing:
                raise ValueError(f"{where}.{missing[0]} is required by {self.kind} {name!r}")
        if self.probe is not None:
            try:
                self.probe(self.get(name), dict(kwargs))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{where} = {_show(kwargs)} rejected by {self.kind} {name!r}: {exc}") from None


def _expected_type(default: Any) -> type | None:
    if default is inspect.Parameter.empty or default is None:
        return None
    if isinstance(default, tuple):
        return list  # TOML has arrays only
    return type(default)


def _fits(value: Any, expected: type) -> bool:
    if isinstance(value, bool) or expected is bool:
        return isinstance(value, bool) and expected is bool
    if expected is float:
        return isinstance(value, (int, float))
    if expected is list:
        return isinstance(value, (list, tuple))
    return isinstance(value, expected)


def _show(kwargs: dict) -> str:
    return "{" + ", ".join(f"{k} = {v!r}" for k, v in kwargs.items()) + "}"
