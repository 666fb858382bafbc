"""Which dtype each op runs in under ``autocast``: op lists in the spirit of PyTorch's autocast policy.

- ``LOWER_PRECISION``: matrix products (conv, linear, matmul) run in the autocast
  dtype (float16): the GEMMs are where half precision pays (tensor cores, half the bytes).
- ``FLOAT32``: ops whose range or accumulation float16 cannot hold run in float32:
  reductions, softmax / log-softmax, the loss, exp / log / pow, and BatchNorm (its
  batch statistics, running statistics and affine parameters all stay float32).
  Float64 inputs stay float64, as in PyTorch.
- ``KEEP``: dtype conversions and copies run as asked.
- every other op (elementwise, pooling, shape ops, ...) runs in its inputs' dtype; an
  op given floating inputs of different dtypes runs in the widest of them ("promote").
"""
from __future__ import annotations

from lucid.ops.activation import LogSoftmax, Softmax
from lucid.ops.conv import Conv2d
from lucid.ops.elementwise import Cast, Clone, Exp, Log, Pow, ToDevice
from lucid.ops.loss import CrossEntropy
from lucid.ops.matmul import Linear, MatMul
from lucid.ops.norm import BatchNorm
from lucid.ops.reduce import Mean, Sum, Var

LOWER = "lower_precision"
FLOAT32 = "float32"
PROMOTE = "promote"
KEEP = "keep"

LOWER_PRECISION_OPS = (Conv2d, Linear, MatMul)
FLOAT32_OPS = (BatchNorm, CrossEntropy, Softmax, LogSoftmax, Sum, Mean, Var, Exp, Log, Pow)
KEEP_OPS = (Cast, ToDevice, Clone)

_TABLE = {cls: LOWER for cls in LOWER_PRECISION_OPS} | {cls: FLOAT32 for cls in FLOAT32_OPS} | {cls: KEEP for cls in KEEP_OPS}
_resolved: dict = {}  # Function subclass -> policy, found along its MRO once


def policy_of(cls: type) -> str:
    """The autocast policy of the Function subclass ``cls`` (a subclass inherits its base's)."""
    policy = _resolved.get(cls)
    if policy is None:
        policy = next((_TABLE[base] for base in cls.__mro__ if base in _TABLE), PROMOTE)
        _resolved[cls] = policy
    return policy
