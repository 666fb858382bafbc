"""GraphBuilder: names, initializers and nodes of the ONNX graph being written.

Every traced array gets a value name: the model inputs, parameters and buffers (by
their state_dict name), constants, and op outputs. Each value also carries its batch
axis (the axis that follows the input's first dimension, or None), so that shapes
written into the graph keep that axis dynamic.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from onnx import helper, numpy_helper

from lucid import _backend
from lucid.onnx.errors import UnsupportedOperatorError

#: the lowest opset at which each emitted op has the form and semantics written here
MIN_OPSET = {
    "AveragePool": 10,  # ceil_mode
    "MaxPool": 10,  # ceil_mode, dilations
    "BatchNormalization": 9,  # no "spatial" attribute
    "Slice": 10,  # starts/ends/axes/steps as inputs
    "Pad": 11,  # pads as an input
    "Clip": 11,  # min/max as inputs
    "Softmax": 13,  # one axis, not "flatten from axis"
    "LogSoftmax": 13,
    "ReduceSum": 13,  # axes as an input
    "Squeeze": 13,  # axes as an input
    "Unsqueeze": 13,
    "Expand": 8,
    "Reshape": 5,
    "Gemm": 7,
    "Concat": 4,
}


def _array(x):
    """The array of a Tensor; arrays pass through (NumPy arrays have a ``.data`` buffer of their own)."""
    from lucid.tensor import Tensor

    return x.data if isinstance(x, Tensor) else x


def _host(array) -> np.ndarray:
    return np.ascontiguousarray(_backend.asnumpy(array))


class GraphBuilder:
    """Collects the nodes of one export at ``opset``; ``params`` maps id(array) -> name."""

    def __init__(self, opset: int, params: dict[int, tuple[str, Any]], dynamic_batch: bool):
        self.opset = opset
        self.params = params
        self.dynamic_batch = dynamic_batch
        self.nodes: list = []
        self.initializers: list = []
        self.names: dict[int, str] = {}  # id(array) -> value name
        self.batch_axes: dict[str, int | None] = {}
        self.op = "<none>"  # the lucid op being converted, for error messages
        self._count = 0

    # -- values --------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def bind(self, array, name: str, batch_axis: int | None) -> str:
        """Name ``array`` (an op output or a graph input) and record its batch axis."""
        self.names[id(array)] = name
        self.batch_axes[name] = batch_axis if self.dynamic_batch else None
        return name

    def constant(self, value, hint: str = "const", dtype=None) -> str:
        """A new initializer holding ``value``."""
        array = np.asarray(_host(value) if not isinstance(value, (int, float, list, tuple)) else value)
        if dtype is not None:
            array = array.astype(dtype)
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        self.batch_axes[name] = None
        return name

    def value(self, x, dtype=None) -> str:
        """The value name of a traced Tensor/array, a parameter, or a new constant
        (Python numbers take ``dtype``, the dtype of the op's other operand)."""
        data = _array(x)
        if isinstance(x, (int, float)) and not isinstance(x, bool):
            return self.constant(np.asarray(x, dtype=dtype), "scalar")
        key = id(data)
        if key in self.names:
            return self.names[key]
        if key in self.params:
            name, array = self.params[key]
            self.initializers.append(numpy_helper.from_array(_host(array), name))
            self.names[key] = name
            self.batch_axes[name] = None
            return name
        name = self.constant(data)  # an array made outside lucid's ops: a constant, as torch.onnx's tracer does
        self.names[key] = name
        return name

    def axis(self, x) -> int | None:
        """The batch axis of a traced value (None for parameters and constants)."""
        return self.batch_axes.get(self.value(x))

    # -- nodes ---------------------------------------------------------------------
    def node(self, op_type: str, inputs: list[str], n_outputs: int = 1, **attrs) -> list[str]:
        """Append an ONNX node; returns its output names. Refuses an op newer than the opset."""
        need = MIN_OPSET.get(op_type, 1)
        if self.opset < need:
            raise UnsupportedOperatorError(
                f"ONNX export: lucid op {self.op} becomes ONNX {op_type}, which needs opset_version >= {need}; "
                f"got opset_version={self.opset}"
            )
        outputs = [self.fresh(op_type.lower()) for _ in range(n_outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, **attrs))
        return outputs

    def ints(self, values, hint: str = "shape") -> str:
        """An int64 1-D constant (shapes, axes, pads given as inputs)."""
        return self.constant(np.asarray(list(values), dtype=np.int64), hint)

    def fail(self, why: str) -> UnsupportedOperatorError:
        return UnsupportedOperatorError(f"ONNX export: lucid op {self.op} cannot be exported: {why}")
