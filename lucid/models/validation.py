"""Argument checks shared by the model configs and blocks: one clear message each."""
from __future__ import annotations

from typing import Any, Sequence


def check_positive(owner: str, **values: Any) -> None:
    """Raise ValueError naming ``owner`` and the argument unless each value is an int >= 1."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")


def positive_tuple(owner: str, name: str, values: Sequence[Any]) -> tuple[int, ...]:
    """``values`` as a non-empty tuple of positive ints (ValueError naming the bad entry)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise TypeError(f"{owner}: {name} must be a sequence of positive integers, got {values!r}")
    values = tuple(values)
    if not values:
        raise ValueError(f"{owner}: {name} must not be empty")
    for i, value in enumerate(values):
        check_positive(owner, **{f"{name}[{i}]": value})
    return values
