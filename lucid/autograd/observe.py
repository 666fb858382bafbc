"""Op observers: a callback told about every Function application (per thread).

Exporters (``lucid.onnx``) trace a model by watching which ops one forward runs,
with which arrays and options, instead of re-implementing each model's forward.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

_state = threading.local()

#: ``callback(function_class, args, kwargs, output_tensor)``
OpObserver = Callable[[type, tuple, dict, Any], None]


def current_observer() -> OpObserver | None:
    """The callback installed by the innermost ``observe_ops`` of this thread, if any."""
    return getattr(_state, "observer", None)


@contextmanager
def observe_ops(callback: OpObserver) -> Iterator[None]:
    """Call ``callback`` after every ``Function.apply`` in this thread while inside the block."""
    previous = current_observer()
    _state.observer = callback
    try:
        yield
    finally:
        _state.observer = previous
