"""Reverse-mode engine: run every node's backward once, in dependency order.

Dependencies are counted first, so a node runs as soon as all gradients flowing
into it have arrived, and a leaf's gradient is final the moment its last
contribution lands. That moment fires the leaf's post-accumulate hooks while the
rest of backward still runs: data parallelism starts all-reducing from there.
Ready nodes run newest first (by creation order), as PyTorch's engine does, so
parameters near the loss finish first.

``queue_callback(fn)``, called while a backward runs (from a hook or a node's
backward), runs ``fn()`` once after that backward's last node and before
``backward()`` returns (PyTorch's ``Variable._execution_engine.queue_callback``):
data parallelism waits for its last gradient buckets there, so ``backward()``
returns with every gradient reduced.
"""
from __future__ import annotations

import heapq
import sys
import threading
from typing import Callable

from lucid.autograd.function import Function
from lucid.ops import aligned


class _Pending:
    """Gradient summed so far for one node or leaf; ``owned`` = safe to add into in place."""

    __slots__ = ("grad", "owned")

    def __init__(self, grad, owned: bool):
        self.grad = grad
        self.owned = owned

    def add(self, grad, owned: bool) -> None:
        if self.owned:
            self.grad += grad
        elif owned:
            grad += self.grad
            self.grad, self.owned = grad, True
        else:
            self.grad = self.grad + grad
            self.owned = True


def _count_dependencies(root: Function) -> dict:
    """Number of incoming gradient edges per node and leaf reachable from root."""
    deps: dict = {}
    stack = [root]
    seen = {id(root)}
    while stack:
        node = stack.pop()
        for edge in node.edges:
            if edge is None:
                continue
            deps[edge] = deps.get(edge, 0) + 1
            if isinstance(edge, Function) and id(edge) not in seen:
                seen.add(id(edge))
                stack.append(edge)
    return deps


def _call_hooks(hooks, grad, wrap):
    """Tensor hooks see the gradient as a Tensor and may return a replacement."""
    for hook in hooks:
        result = hook(wrap(grad))
        if result is not None:
            grad = result.data
    return grad


class _Callbacks(threading.local):
    """Per thread: one list of queued callbacks per backward in progress (innermost last)."""

    def __init__(self):
        self.stack: list[list[Callable[[], None]]] = []


_callbacks = _Callbacks()


def queue_callback(callback: Callable[[], None]) -> None:
    """Run ``callback()`` when the backward in progress has run its last node.

    Callbacks run in the order queued, before ``backward()`` returns; one queued by a
    callback runs too. Raises RuntimeError outside a backward.
    """
    if not _callbacks.stack:
        raise RuntimeError("queue_callback() can only be called while a backward pass runs (from a hook)")
    _callbacks.stack[-1].append(callback)


def run_backward(root, grad, retain_graph: bool = False) -> None:
    """Back-propagate ``grad`` (an array shaped like root) through root's graph, then run
    the callbacks queued meanwhile (``queue_callback``)."""
    queued: list[Callable[[], None]] = []
    _callbacks.stack.append(queued)
    try:
        _run_graph(root, grad, retain_graph)
        while queued:  # a callback may queue another; one that calls backward() gets its own list
            queued.pop(0)()
    finally:
        _callbacks.stack.pop()


def _run_graph(root, grad, retain_graph: bool) -> None:
    from lucid.tensor import Tensor

    def wrap(g):
        return Tensor._wrap(g, root.device)

    if root._node is None:
        _accumulate_leaf(root, _Pending(grad, False), wrap)
        return
    start = root._node
    deps = _count_dependencies(start)
    pending = {start: _Pending(grad, False)}
    ready = [(-start.seq, id(start), start)]

    def settle(edge) -> None:
        """All gradients into ``edge`` have arrived: schedule it or finish the leaf."""
        slot = pending.get(edge)
        if isinstance(edge, Function):
            if slot is not None:
                heapq.heappush(ready, (-edge.seq, id(edge), edge))
                return
            # Every path into this node was cut (None grads): it passes none on.
            if not retain_graph:
                edge.release()
            for e in edge.edges:
                if e is not None:
                    deps[e] -= 1
                    if deps[e] == 0:
                        settle(e)
        elif slot is not None:
            del pending[edge]
            _accumulate_leaf(edge, slot, wrap)

    while ready:
        node = heapq.heappop(ready)[2]
        g = pending.pop(node).grad
        if node.hooks:
            g = _call_hooks(node.hooks, g, wrap)
        if node.released:
            raise RuntimeError(
                f"{node.name}: trying to backward through the graph a second time, "
                "but its saved buffers were freed; call backward(retain_graph=True) "
                "the first time if you need to backward twice"
            )
        grads = node.backward(g)
        if not isinstance(grads, tuple):
            grads = (grads,)
        if not retain_graph:
            node.release()
        for i, (edge, gi) in enumerate(zip(node.edges, grads)):
            if edge is None:
                continue
            if gi is not None:
                owned = _fresh(gi, g, grads[:i])
                slot = pending.get(edge)
                if slot is None:
                    pending[edge] = _Pending(gi, owned)
                else:
                    slot.add(gi, owned)
            deps[edge] -= 1
            if deps[edge] == 0:
                settle(edge)


def _fresh(gi, g, earlier) -> bool:
    """Whether the engine may add into ``gi`` in place: backward made it and nothing else sees it.

    Either ``gi`` owns its memory (backward returned a new array; it never returns
    arrays it keeps), or it is a writable view of ALL of an array's memory (e.g. the
    NCHW view of a kernel's new NHWC array, or a 64-byte aligned one, ``lucid.ops.aligned``:
    not a broadcast, not a slice) that no other object references.
    """
    if gi is g or any(gi is other for other in earlier):
        return False
    base = gi.base
    if base is None:
        return True
    # CuPy's flags have no 'writeable': device arrays always are
    if not getattr(gi.flags, "writeable", True):
        return False
    if (base.base is not None or gi.nbytes != base.nbytes) and not aligned.is_whole_buffer(gi, base):
        return False
    if not gi.transpose(sorted(range(gi.ndim), key=lambda a: -gi.strides[a])).flags.c_contiguous:
        return False  # overlapping or gapped strides
    # references to base: gi's .base, this local name and getrefcount's argument
    return sys.getrefcount(base) <= 3


def _accumulate_leaf(leaf, slot: _Pending, wrap) -> None:
    """Add this pass's gradient into ``leaf.grad``, then fire post-accumulate hooks."""
    g = slot.grad
    if leaf._hooks:
        g = _call_hooks(leaf._hooks, g, wrap)
        slot.owned = False
    if leaf.grad is None:
        leaf.grad = wrap(g if slot.owned else g.copy(order="K"))  # K: keep channels-last memory
    else:
        if leaf.grad.shape != g.shape:
            raise RuntimeError(
                f"gradient of shape {g.shape} does not match .grad of shape {leaf.grad.shape}"
            )
        leaf.grad.data += g
    for hook in leaf._post_accumulate_hooks:
        hook(leaf)
