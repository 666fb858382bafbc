"""Function: one differentiable op, a node of the define-by-run graph.

A subclass writes ``forward(*arrays, **options) -> array`` and
``backward(grad) -> grad per input`` once against the array module ``xp`` of its
inputs. ``apply`` wraps the arrays of Tensor arguments, runs forward and, when a
gradient is needed, links the output to the nodes that made the inputs.

Graph edges point at the producing *nodes* (or at leaf tensors), never at
intermediate tensors, so an activation that no backward needs is freed as soon
as the user drops it (PyTorch's ``next_functions``).
"""
from __future__ import annotations

import itertools
import threading
from typing import Any, Callable

import numpy as np

from lucid import _backend
from lucid.autograd.grad_mode import is_grad_enabled
from lucid.autograd.observe import current_observer
from lucid.dtypes import is_floating

_sequence = itertools.count()
_dispatch = threading.local()  # per-thread input hook: lucid.amp.autocast installs its casts here


def set_autocast_hook(hook: Callable | None) -> Callable | None:
    """Install ``hook(cls, args) -> args`` on this thread's op dispatch; returns the previous one.

    Every ``Function.apply`` passes its positional arguments through the hook first
    (lucid.amp.autocast casts them to its policy's dtypes); None removes it.
    """
    previous = getattr(_dispatch, "autocast", None)
    _dispatch.autocast = hook
    return previous


class Function:
    """Base class of differentiable ops (micrograd's ``_backward`` as an object)."""

    # Set by apply() before forward so forward can skip saving what no grad needs.
    needs_input_grad: tuple[bool, ...] = ()

    def forward(self, *args: Any, **kwargs: Any):
        raise NotImplementedError

    def backward(self, grad):
        """Gradient of the loss w.r.t. each positional input of forward (None = no grad).

        ``grad`` may be shared with other nodes: read it, never write into it.
        """
        raise NotImplementedError

    # -- saved state ---------------------------------------------------------------
    def save_for_backward(self, *arrays) -> None:
        """Keep arrays for backward; they are released after backward unless retained."""
        self.saved = arrays

    def release(self) -> None:
        """Drop saved arrays: the graph can no longer be back-propagated."""
        self.saved = None
        self.released = True

    # -- graph construction --------------------------------------------------------
    @classmethod
    def apply(cls, *args: Any, **kwargs: Any):
        from lucid.tensor import Tensor  # imported here: tensor imports ops at load

        fn = cls()
        hook = getattr(_dispatch, "autocast", None)
        if hook is not None:
            args = hook(cls, args)
        tensors = [a for a in args if isinstance(a, Tensor)]
        _check_inputs(cls, tensors)
        record = is_grad_enabled() and any(t.requires_grad for t in tensors)
        fn.needs_input_grad = tuple(
            record and isinstance(a, Tensor) and a.requires_grad for a in args
        )
        arrays = [a.data if isinstance(a, Tensor) else a for a in args]
        if tensors and tensors[0].device != "cpu":
            with _backend.on_device(tensors[0].device):
                out = fn.forward(*arrays, **kwargs)
        else:
            out = fn.forward(*arrays, **kwargs)
        if isinstance(out, np.generic):  # NumPy turns 0-d results into scalars
            out = np.asarray(out)
        out = Tensor._wrap(out, _backend.device_of(out))
        if record and is_floating(out.data.dtype):
            fn.edges = tuple(
                (a._node if a._node is not None else a)
                if isinstance(a, Tensor) and a.requires_grad
                else None
                for a in args
            )
            fn.seq = next(_sequence)
            fn.hooks = None
            fn.released = False
            out._node = fn
            out._requires_grad = True
        observer = current_observer()
        if observer is not None:
            observer(cls, args, kwargs, out)
        return out

    @property
    def name(self) -> str:
        return type(self).__name__


def _check_inputs(cls, tensors) -> None:
    """All tensor inputs on one device and of one floating dtype."""
    if not tensors:
        return
    device = tensors[0].device
    floats = set()
    for t in tensors:
        if t.device != device:
            raise RuntimeError(
                f"{cls.__name__}: tensors on different devices ({device} and {t.device}); "
                "move them with .to(device) first"
            )
        if is_floating(t.data.dtype):
            floats.add(t.data.dtype)
    if len(floats) > 1:
        names = " and ".join(sorted(str(d) for d in floats))
        raise TypeError(
            f"{cls.__name__}: tensors of different dtypes ({names}); convert with .to(dtype) first"
        )


def sequence_mark() -> int:
    """A point in op-recording order: ops recorded after this call get a larger ``seq``.

    Lets a tracer tell which module call an op was recorded in (lucid.visual's dataflow).
    """
    return next(_sequence)
