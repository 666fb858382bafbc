"""ONNX export of lucid models (``lucid.onnx.export``), written with the ``onnx`` package.

    lucid.onnx.export(model, lucid.zeros(1, 3, 224, 224), "model.onnx", opset_version=17)

Needs the optional extra: ``pip install 'lucid[onnx]'``.
"""
from lucid.onnx.errors import UnsupportedOperatorError
from lucid.onnx.export import MIN_SUPPORTED_OPSET, export

__all__ = ["MIN_SUPPORTED_OPSET", "UnsupportedOperatorError", "export"]
