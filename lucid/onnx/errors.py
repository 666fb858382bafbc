"""The error of a model that cannot be written as ONNX (an op, an option or an opset)."""
from __future__ import annotations


class UnsupportedOperatorError(RuntimeError):
    """A traced lucid op has no ONNX form at the requested opset (PyTorch's name)."""
