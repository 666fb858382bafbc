"""Converters of the layer ops: convolution, batch norm, pooling, linear, activations."""
from __future__ import annotations

import numpy as np

from lucid.onnx.registry import converter


def _window_attrs(window) -> dict:
    (ph, pw) = window.padding
    return {"kernel_shape": list(window.kernel), "strides": list(window.stride), "pads": [ph, pw, ph, pw]}


def _ceil_mode(g, window, in_hw, out_hw) -> int:
    """1 when the traced output size needs ceil_mode (the window does not record it)."""
    floor = window.output_shape(tuple(in_hw), ceil_mode=False)
    if tuple(out_hw) == tuple(floor):
        return 0
    if tuple(out_hw) == tuple(window.output_shape(tuple(in_hw), ceil_mode=True)):
        return 1
    raise g.fail(f"output size {tuple(out_hw)} is neither the floor nor the ceil size of the window")


def _same_axis(g, op) -> int | None:
    return g.axis(op.args[0])


@converter("Conv2d")
def conv2d(g, op):
    window = op.kwargs["window"]
    inputs = [g.value(a) for a in op.args]
    out = g.node("Conv", inputs, group=int(op.kwargs["groups"]), dilations=list(window.dilation), **_window_attrs(window))
    g.bind(op.out.data, out[0], _same_axis(g, op))


@converter("BatchNorm")
def batch_norm(g, op):
    x, weight, bias = (list(op.args) + [None, None])[:3]
    kw = op.kwargs
    if kw["training"] or kw["running_mean"] is None:
        raise g.fail("batch norm uses batch statistics in eval mode (track_running_stats=False)")
    channels = x.shape[1]
    dtype = x.data.dtype
    scale = g.value(weight) if weight is not None else g.constant(np.ones(channels, dtype), "bn_scale")
    shift = g.value(bias) if bias is not None else g.constant(np.zeros(channels, dtype), "bn_bias")
    inputs = [g.value(x), scale, shift, g.value(kw["running_mean"]), g.value(kw["running_var"])]
    out = g.node("BatchNormalization", inputs, epsilon=float(kw["eps"]))
    if kw.get("relu"):
        out = g.node("Relu", out)
    g.bind(op.out.data, out[0], _same_axis(g, op))


@converter("MaxPool2d")
def max_pool2d(g, op):
    x, window = op.args[0], op.kwargs["window"]
    ceil = _ceil_mode(g, window, x.shape[2:], op.kwargs["out_hw"])
    out = g.node("MaxPool", [g.value(x)], ceil_mode=ceil, dilations=list(window.dilation), **_window_attrs(window))
    g.bind(op.out.data, out[0], _same_axis(g, op))


@converter("AvgPool2d")
def avg_pool2d(g, op):
    from lucid.ops.pool import _avg_scale  # imported here: the divisor rule of avg_pool2d itself

    x, window, out_hw, scale = op.args[0], op.kwargs["window"], op.kwargs["out_hw"], op.kwargs["scale"]
    ceil = _ceil_mode(g, window, x.shape[2:], out_hw)
    include = None
    for candidate in (True, False):  # which count_include_pad gives the traced divisors
        expected = _avg_scale(window, x.shape[2:], out_hw, candidate, None, np.float64)
        if np.allclose(np.asarray(expected, np.float64), np.asarray(_as_host(scale), np.float64)):
            include = candidate
            break
    if include is None:
        raise g.fail("its divisor is neither count_include_pad=True nor False (divisor_override has no ONNX form)")
    if include and ceil and not _ceil_windows_inside(window, x.shape[2:], out_hw):
        raise g.fail("count_include_pad=True with ceil_mode windows past the padding has no ONNX form")
    out = g.node("AveragePool", [g.value(x)], ceil_mode=ceil, count_include_pad=int(include), **_window_attrs(window))
    g.bind(op.out.data, out[0], _same_axis(g, op))


def _as_host(value):
    from lucid import _backend

    return value if isinstance(value, float) else _backend.asnumpy(value)


def _ceil_windows_inside(window, in_hw, out_hw) -> bool:
    """Whether every window of a ceil_mode pool ends inside input + padding (where ONNX and PyTorch agree)."""
    return all((o - 1) * s + k <= n + 2 * p for o, s, k, n, p in zip(out_hw, window.stride, window.kernel, in_hw, window.padding))


@converter("AdaptiveAvgPool2d")
def adaptive_avg_pool2d(g, op):
    x, out_hw = op.args[0], tuple(op.kwargs["out_hw"])
    in_hw = tuple(x.shape[2:])
    if out_hw == (1, 1):
        out = g.node("GlobalAveragePool", [g.value(x)])
    elif all(n % o == 0 for n, o in zip(in_hw, out_hw)):
        kernel = [n // o for n, o in zip(in_hw, out_hw)]
        out = g.node("AveragePool", [g.value(x)], kernel_shape=kernel, strides=kernel)
    else:
        raise g.fail(f"adaptive pooling from {in_hw} to {out_hw} has uneven windows (no ONNX form)")
    g.bind(op.out.data, out[0], _same_axis(g, op))


@converter("Linear")
def linear(g, op):
    x, weight = op.args[0], op.args[1]
    inputs = [g.value(x), g.value(weight)] + ([g.value(op.args[2])] if len(op.args) > 2 else [])
    if x.ndim == 2:
        out = g.node("Gemm", inputs, transB=1)
    else:
        transposed = g.node("Transpose", [inputs[1]], perm=[1, 0])
        out = g.node("MatMul", [inputs[0], transposed[0]])
        if len(inputs) > 2:
            out = g.node("Add", [out[0], inputs[2]])
    g.bind(op.out.data, out[0], _same_axis(g, op))


def _unary(onnx_op: str):
    def convert(g, op):
        out = g.node(onnx_op, [g.value(op.args[0])])
        g.bind(op.out.data, out[0], _same_axis(g, op))

    return convert


for _name, _onnx in (("ReLU", "Relu"), ("Sigmoid", "Sigmoid"), ("Neg", "Neg"), ("Exp", "Exp"), ("Log", "Log"),
                     ("Sqrt", "Sqrt"), ("Abs", "Abs"), ("Tanh", "Tanh"), ("Clone", "Identity"),
                     ("ToDevice", "Identity")):
    converter(_name)(_unary(_onnx))


@converter("AddReLU")
def add_relu(g, op):
    a, b = op.args
    total = g.node("Add", [g.value(a), g.value(b)])
    out = g.node("Relu", total)
    g.bind(op.out.data, out[0], _broadcast_axis(g, op))


def _broadcast_axis(g, op) -> int | None:
    """The batch axis of a broadcasting op's output: the first operand's, right-aligned."""
    ndim = op.out.ndim
    for a in op.args:
        if hasattr(a, "shape") and not isinstance(a, (int, float)):
            axis = g.axis(a)
            if axis is not None:
                return axis + ndim - len(a.shape)
    return None


@converter("Softmax", "LogSoftmax")
def softmax(g, op):
    onnx_op = "Softmax" if op.name == "Softmax" else "LogSoftmax"
    out = g.node(onnx_op, [g.value(op.args[0])], axis=int(op.args[1]))
    g.bind(op.out.data, out[0], _same_axis(g, op))
