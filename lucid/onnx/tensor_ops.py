"""Converters of the tensor ops: arithmetic, shapes, indexing, reductions."""
from __future__ import annotations

import numpy as np
from onnx import helper

from lucid.onnx.nn_ops import _broadcast_axis
from lucid.onnx.registry import converter


def _dtype(op):
    return op.out.data.dtype


def _binary(onnx_op: str):
    def convert(g, op):
        inputs = [g.value(a, dtype=_dtype(op)) for a in op.args]
        out = g.node(onnx_op, inputs)
        g.bind(op.out.data, out[0], _broadcast_axis(g, op))

    return convert


for _name, _onnx in (("Add", "Add"), ("Sub", "Sub"), ("Mul", "Mul"), ("Div", "Div"), ("Pow", "Pow"),
                     ("Maximum", "Max"), ("Minimum", "Min"), ("MatMul", "MatMul")):
    converter(_name)(_binary(_onnx))


@converter("Reshape")
def reshape(g, op):
    x, shape = op.args[0], tuple(op.out.shape)
    axis = g.axis(x)
    target = list(shape)
    if axis is not None:
        if len(shape) <= axis or tuple(x.shape[: axis + 1]) != shape[: axis + 1]:
            raise g.fail(
                f"reshape {tuple(x.shape)} -> {shape} changes the dimensions up to the batch axis {axis}; "
                "export with dynamic_batch=False for a fixed batch size"
            )
        target[axis] = 0  # ONNX Reshape: 0 copies the input's dimension (the dynamic batch)
    out = g.node("Reshape", [g.value(x), g.ints(target)])
    g.bind(op.out.data, out[0], axis)


@converter("Permute")
def permute(g, op):
    x, dims = op.args[0], [d % op.out.ndim for d in op.args[1]]
    axis = g.axis(x)
    out = g.node("Transpose", [g.value(x)], perm=dims)
    g.bind(op.out.data, out[0], None if axis is None else dims.index(axis))


@converter("GetItem")
def getitem(g, op):
    """Basic indexing (slices with steps > 0, ints, Ellipsis) as Slice then Squeeze."""
    x, index = op.args
    index = index if isinstance(index, tuple) else (index,)
    if any(i is None or hasattr(i, "shape") or isinstance(i, (list, tuple, bool)) for i in index):
        raise g.fail(f"advanced indexing {index!r} (only slices, ints and ... are exported)")
    if sum(i is Ellipsis for i in index) > 1:
        raise g.fail("more than one Ellipsis in an index")
    if Ellipsis in index:
        at = index.index(Ellipsis)
        index = index[:at] + (slice(None),) * (x.ndim - len(index) + 1) + index[at + 1 :]
    batch = g.axis(x)
    starts, ends, axes, steps, squeeze = [], [], [], [], []
    for dim, item in enumerate(index):
        n = x.shape[dim]
        if isinstance(item, int):
            item = item % n
            start, stop, step = item, item + 1, 1
            squeeze.append(dim)
        else:
            start, stop, step = item.indices(n)
            if step <= 0:
                raise g.fail(f"slice {item!r} with a negative step")
        if (start, stop, step) == (0, n, 1):
            continue
        if dim == batch:
            raise g.fail(f"index {item!r} on the batch axis; export with dynamic_batch=False")
        starts.append(start), ends.append(stop), axes.append(dim), steps.append(step)
    name = g.value(x)
    if axes:
        name = g.node("Slice", [name, g.ints(starts), g.ints(ends), g.ints(axes), g.ints(steps)])[0]
    if squeeze:
        name = g.node("Squeeze", [name, g.ints(squeeze)])[0]
    if name == g.value(x):
        name = g.node("Identity", [name])[0]
    g.bind(op.out.data, name, None if batch is None else batch - sum(d < batch for d in squeeze))


@converter("Cat", "Stack")
def concat(g, op):
    axis = op.kwargs["axis"] % op.out.ndim
    batch = next((g.axis(t) for t in op.args if g.axis(t) is not None), None)
    if batch is not None and axis == batch:
        raise g.fail(f"{op.name.lower()} along the batch axis; export with dynamic_batch=False")
    inputs = [g.value(t) for t in op.args]
    if op.name == "Stack":
        inputs = [g.node("Unsqueeze", [v, g.ints([axis])])[0] for v in inputs]
        batch = None if batch is None else batch + (axis <= batch)
    out = g.node("Concat", inputs, axis=axis)
    g.bind(op.out.data, out[0], batch)


@converter("Expand")
def expand(g, op):
    x = op.args[0]
    axis = _broadcast_axis(g, op)
    shape = list(op.out.shape)
    if axis is not None:
        shape[axis] = 1  # Expand broadcasts: 1 keeps the input's (dynamic) batch size
    out = g.node("Expand", [g.value(x), g.ints(shape)])
    g.bind(op.out.data, out[0], axis)


@converter("Pad")
def pad(g, op):
    x, widths, value = op.args
    before, after = [0] * x.ndim, [0] * x.ndim
    for i in range(len(widths) // 2):
        before[x.ndim - 1 - i], after[x.ndim - 1 - i] = widths[2 * i], widths[2 * i + 1]
    if g.axis(x) is not None and (before[g.axis(x)] or after[g.axis(x)]):
        raise g.fail("padding along the batch axis; export with dynamic_batch=False")
    fill = g.constant(np.asarray(value, dtype=_dtype(op)), "pad_value")
    out = g.node("Pad", [g.value(x), g.ints(before + after), fill], mode="constant")
    g.bind(op.out.data, out[0], g.axis(x))


@converter("Sum", "Mean")
def reduce(g, op):
    x, axes, keepdims = (list(op.args) + [None, False])[:3]
    axes = list(range(x.ndim)) if axes is None else [a % x.ndim for a in (axes if isinstance(axes, (tuple, list)) else [axes])]
    onnx_op = "ReduceSum" if op.name == "Sum" else "ReduceMean"
    if onnx_op == "ReduceSum" or g.opset >= 18:  # axes became an input: ReduceSum at 13, the others at 18
        out = g.node(onnx_op, [g.value(x), g.ints(axes)], keepdims=int(bool(keepdims)))
    else:
        out = g.node(onnx_op, [g.value(x)], axes=axes, keepdims=int(bool(keepdims)))
    batch = g.axis(x)
    if batch is not None:
        batch = None if batch in axes else (batch if keepdims else batch - sum(a < batch for a in axes))
    g.bind(op.out.data, out[0], batch)


@converter("Clip")
def clip(g, op):
    x, lo, hi = op.args
    bounds = [g.constant(np.asarray(b, dtype=_dtype(op)), "clip") if b is not None else "" for b in (lo, hi)]
    out = g.node("Clip", [g.value(x), *bounds])
    g.bind(op.out.data, out[0], g.axis(x))


@converter("Cast")
def cast(g, op):
    to = helper.np_dtype_to_tensor_dtype(np.dtype(op.out.data.dtype))
    out = g.node("Cast", [g.value(op.args[0])], to=to)
    g.bind(op.out.data, out[0], g.axis(op.args[0]))
