"""Shape tracing: one forward pass with hooks on every module, recording what each saw.

Runs in eval mode (BatchNorm uses its running statistics and does not update them;
training flags are restored afterwards), so tracing never changes the model. Lazy
modules are materialised by this forward, as by any first forward.

``trace`` runs under ``no_grad`` and returns one ModuleRecord per module.
``trace_graph`` also records the autograd graph (the input requires grad) and every
module call in order, with its input and output tensors and the op-sequence marks
around it: what ``dataflow`` needs to draw which output feeds which input.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Sequence

import lucid
from lucid.autograd.function import sequence_mark
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


@dataclass
class Call:
    """One call of a module: its tensor inputs and output, between two op-sequence marks."""

    module: Any
    index: int  # 0 for the module's first call, 1 for its second, ...
    inputs: tuple = ()
    output: Any = None
    start: int = 0  # ops recorded during the call have start < seq < end
    end: int = 0


@dataclass
class Trace:
    """``records`` by qualified name, and for a graph trace the calls as ("pre"|"post", Call) events."""

    records: dict[str, ModuleRecord]
    events: list[tuple[str, Call]] = field(default_factory=list)
    input: Any = None
    output: Any = None


def shape_of(value: Any) -> tuple[int, ...] | None:
    """The shape of a tensor as a tuple of ints, None for anything without one."""
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
    return _run(model, input_shape, graph=False).records


def trace_graph(model, input_shape: Sequence[int]) -> Trace:
    """Like ``trace``, with the autograd graph recorded and every module call logged in order."""
    return _run(model, input_shape, graph=True)


def _run(model, input_shape: Sequence[int], graph: bool) -> Trace:
    input_shape = positive_tuple("trace", "input_shape", input_shape)
    result = Trace({name: ModuleRecord(name, m) for name, m in model.named_modules()})
    counter = itertools.count()
    handles = []

    def attach(record: ModuleRecord) -> None:
        open_calls: list[Call] = []

        def before(module, args):
            if record.order is None:
                record.order = next(counter)
                record.in_shape = shape_of(args[0]) if args else None
            if graph:
                call = Call(module, record.calls, tuple(a for a in args if isinstance(a, lucid.Tensor)),
                            start=sequence_mark())
                open_calls.append(call)
                result.events.append(("pre", call))

        def after(module, args, output):
            record.calls += 1
            record.out_shape = shape_of(output)
            record.out_elements += 0 if record.out_shape is None else _numel(record.out_shape)
            if graph and open_calls:
                call = open_calls.pop()
                call.output, call.end = output, sequence_mark()
                result.events.append(("post", call))

        handles.append(record.module.register_forward_pre_hook(before))
        handles.append(record.module.register_forward_hook(after))

    for record in result.records.values():
        attach(record)
    training = {name: m.training for name, m in model.named_modules()}
    try:
        model.eval()
        with lucid.enable_grad() if graph else lucid.no_grad():
            result.input = lucid.zeros(*input_shape, device=_input_device(model), requires_grad=graph)
            result.output = model(result.input)
    finally:
        for handle in handles:
            handle.remove()
        for name, m in model.named_modules():
            m.training = training.get(name, m.training)
    return result


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n
