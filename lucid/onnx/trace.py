"""Record the ops one forward pass runs (class, arguments, options, output), in order."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lucid
from lucid.autograd.observe import observe_ops


@dataclass
class TracedOp:
    """One ``Function.apply``: its class name, positional arguments (Tensors, arrays or
    Python values), keyword options and output Tensor."""

    name: str
    args: tuple
    kwargs: dict
    out: Any


def trace_ops(model, inputs: tuple) -> tuple[list[TracedOp], Any]:
    """(ops, output) of ``model(*inputs)`` in eval mode without gradients; the training
    flags are restored afterwards. Each record keeps its tensors alive, so array
    identities stay unique while the trace is in use."""
    ops: list[TracedOp] = []

    def record(cls, args, kwargs, out):
        ops.append(TracedOp(cls.__name__, tuple(args), dict(kwargs), out))

    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with lucid.no_grad(), observe_ops(record):
            output = model(*inputs)
    finally:
        for m, training in modes:
            m.training = training
    return ops, output
