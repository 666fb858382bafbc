"""The transport interface: how one flat gradient bucket is summed over a group's ranks.

``start(buffer) -> handle`` begins an in-place sum all-reduce without blocking;
``test(handle) -> bool`` drives it and says whether it is done; ``wait(handle)``
blocks until it is. Whichever of the two sees the request complete, the same
``_land`` step puts the reduced values into ``buffer`` (e.g. the staged transport's
copy from host back to device), exactly once: there is one completion path.
Subclasses implement ``_start``, ``_test``, ``_wait`` and, where needed, ``_land``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Handle:
    """One all-reduce in flight: the transport's request and whether it has landed."""

    request: Any
    done: bool = False


class Transport:
    """Base of every transport; ``name`` is its registry name."""

    name = "?"

    def start(self, buffer) -> Handle:
        return Handle(self._start(buffer))

    def test(self, handle: Handle) -> bool:
        if not handle.done and self._test(handle.request):
            self._complete(handle)
        return handle.done

    def wait(self, handle: Handle) -> None:
        if not handle.done:
            self._wait(handle.request)
            self._complete(handle)

    def _complete(self, handle: Handle) -> None:
        self._land(handle.request)
        handle.done = True

    def wire_route(self, dtype) -> str:
        """How a buffer of ``dtype`` is summed (ranks compare this before the first bucket)."""
        return "native"

    # -- per transport ------------------------------------------------------------
    def _start(self, buffer) -> Any:
        raise NotImplementedError

    def _test(self, request) -> bool:
        raise NotImplementedError

    def _wait(self, request) -> None:
        raise NotImplementedError

    def _land(self, request) -> None:
        """Make the reduced values visible in the buffer (nothing to do for in-place MPI)."""
