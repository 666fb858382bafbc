"""Shape tracing: one forward pass with hooks on every module, recording what each saw.

Runs under ``no_grad`` in eval mode (BatchNorm uses its running statistics and does
not update them; training flags are restored afterwards), so tracing never changes
the model. Lazy modules are materialised by this forward, as by any first forward.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Sequence

import lucid
from lucid.models.validation import positive_tuple


@dataclass
class ModuleRecord:
    """What one module saw during the traced forward (None/0 if it never ran)."""

    name: str  # qualified name, "" for the model itself
    module: Any
    order: int | None = None  # position of its first call among all module calls
    calls: int = 0
    in_shape: tuple[int, ...] | None = None  # of the first positional input, first call
    out_shape: tuple[int, ...] | None = None  # of the output, last call
    out_elements: int = 0  # output elements summed over calls (for MAC counts)


def _shape(value: Any) -> tuple[int, ...] | None:
    shape = getattr(value, "shape", None)
    return None if shape is None else tuple(int(s) for s in shape)


def format_shape(shape: Sequence[int] | None) -> str:
    """(1,3,224,224): the compact form charts and summaries print ("-" when unknown)."""
    return "-" if shape is None else "(" + ",".join(str(s) for s in shape) + ")"


def _input_device(model) -> str:
    for p in model.parameters():
        return getattr(p, "device", "cpu")
    return "cpu"


def trace(model, input_shape: Sequence[int]) -> dict[str, ModuleRecord]:
    """Run ``model`` on zeros of ``input_shape``; return a record per module, by qualified name."""
    input_shape = positive_tuple("trace", "input_shape", input_shape)
    records = {name: ModuleRecord(name, m) for name, m in model.named_modules()}
    counter = itertools.count()
    handles = []

    def attach(record: ModuleRecord) -> None:
        def before(module, args):
            if record.order is None:
                record.order = next(counter)
                record.in_shape = _shape(args[0]) if args else None

        def after(module, args, output):
            record.calls += 1
            record.out_shape = _shape(output)
            record.out_elements += 0 if record.out_shape is None else _numel(record.out_shape)

        handles.append(record.module.register_forward_pre_hook(before))
        handles.append(record.module.register_forward_hook(after))

    for record in records.values():
        attach(record)
    training = {name: m.training for name, m in model.named_modules()}
    try:
        model.eval()
        with lucid.no_grad():
            model(lucid.zeros(*input_shape, device=_input_device(model)))
    finally:
        for handle in handles:
            handle.remove()
        for name, m in model.named_modules():
            m.training = training.get(name, m.training)
    return records


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n
