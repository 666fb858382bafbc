"""``lucid.onnx.export``: trace one forward pass and write it as an ONNX model."""
from __future__ import annotations

import os
from typing import IO, Any, Sequence

import numpy as np

from lucid.onnx.errors import UnsupportedOperatorError

#: the oldest opset this exporter writes (ops need more; see graph.MIN_OPSET)
MIN_SUPPORTED_OPSET = 9


def _as_inputs(args) -> tuple:
    from lucid.tensor import Tensor

    args = args if isinstance(args, tuple) else (args,)
    if not args:
        raise ValueError("lucid.onnx.export: args must hold at least one example input")
    for i, a in enumerate(args):
        if not isinstance(a, Tensor):
            raise TypeError(f"lucid.onnx.export: args[{i}] must be a lucid Tensor, got {type(a).__name__}")
    return args


def _check_opset(opset_version: int) -> None:
    import onnx.defs

    newest = onnx.defs.onnx_opset_version()
    if not isinstance(opset_version, int) or not MIN_SUPPORTED_OPSET <= opset_version <= newest:
        raise ValueError(
            f"lucid.onnx.export: opset_version must be an int in [{MIN_SUPPORTED_OPSET}, {newest}] "
            f"(the installed onnx package's newest), got {opset_version!r}"
        )


def _names(given: Sequence[str] | None, count: int, default: str, what: str) -> list[str]:
    if given is None:
        return [default] if count == 1 else [f"{default}_{i}" for i in range(count)]
    given = list(given)
    if len(given) != count or len(set(given)) != count:
        raise ValueError(f"lucid.onnx.export: {what} needs {count} distinct names, got {given}")
    return given


def _value_info(name: str, array, batch_axis: int | None):
    from onnx import helper

    dims: list[Any] = list(array.shape)
    if batch_axis is not None:
        dims[batch_axis] = "batch"
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(array.dtype)), dims)


def export(
    model,
    args,
    f: str | os.PathLike | IO[bytes],
    opset_version: int = 17,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    dynamic_batch: bool = True,
):
    """Write ``model`` as an ONNX model to ``f`` (a path or a binary file), PyTorch's argument order.

    ``args`` is an example input Tensor or a tuple of them; one eval-mode forward on it
    (no gradients, training flags restored) records the ops, which become ONNX nodes;
    parameters and buffers are stored under their state_dict names. With
    ``dynamic_batch`` the first axis of every input is the symbolic dimension "batch",
    followed through reshapes and transposes, so one file serves any batch size.
    An op, option or opset without an ONNX form raises ``UnsupportedOperatorError``
    naming both. Returns the ``onnx.ModelProto`` (also written to ``f``).
    """
    import onnx
    from onnx import helper

    import lucid.onnx.nn_ops  # imported for its side effect: registers the converters
    import lucid.onnx.tensor_ops  # noqa: F401 - likewise
    from lucid.onnx.graph import GraphBuilder
    from lucid.onnx.registry import CONVERTERS
    from lucid.onnx.trace import trace_ops
    from lucid.tensor import Tensor

    _check_opset(opset_version)
    inputs = _as_inputs(args)
    ops, output = trace_ops(model, inputs)
    outputs = output if isinstance(output, tuple) else (output,)
    if not all(isinstance(o, Tensor) for o in outputs):
        raise TypeError(f"lucid.onnx.export: the model must return a Tensor or a tuple of Tensors, got {type(output).__name__}")
    state = list(model.named_parameters()) + list(model.named_buffers())
    params = {id(t.data): (name, t.data) for name, t in state if t is not None}
    g = GraphBuilder(opset_version, params, dynamic_batch)
    in_names = _names(input_names, len(inputs), "input", "input_names")
    for name, t in zip(in_names, inputs):
        g.bind(t.data, name, 0 if t.ndim else None)
    for op in ops:
        if op.name not in CONVERTERS:
            raise UnsupportedOperatorError(
                f"ONNX export: lucid op {op.name} has no ONNX converter (supported: {', '.join(sorted(CONVERTERS))})"
            )
        g.op = op.name
        CONVERTERS[op.name](g, op)
    out_names = _names(output_names, len(outputs), "output", "output_names")
    for name, o in zip(out_names, outputs):  # rename each output's producer (or pass an input through)
        g.op = "<output>"
        g.nodes.append(helper.make_node("Identity", [g.value(o)], [name]))
    graph = helper.make_graph(
        g.nodes,
        type(model).__name__,
        [_value_info(n, t.data, g.batch_axes[n]) for n, t in zip(in_names, inputs)],
        [_value_info(n, o.data, g.batch_axes.get(g.value(o))) for n, o in zip(out_names, outputs)],
        initializer=g.initializers,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset_version)], producer_name="lucid")
    proto.ir_version = min(proto.ir_version, _max_ir_version(opset_version))
    onnx.checker.check_model(proto)
    onnx.save_model(proto, f)
    return proto


def _max_ir_version(opset: int) -> int:
    """The IR version of the first onnx release with ``opset``, so older runtimes accept the file."""
    from onnx import helper

    for row in helper.VERSION_TABLE:  # (release, ir_version, opset, ml opset, ...)
        if row[2] >= opset:
            return row[1]
    return helper.VERSION_TABLE[-1][1]
