"""lucid: data-parallel training for the ResNet family on NumPy (CPU) and CuPy (GPU).

The public names follow PyTorch: ``lucid.tensor``, ``lucid.zeros``, ``lucid.no_grad``,
``lucid.nn``, ``lucid.optim``, ``lucid.save`` / ``lucid.load``.
"""
from lucid import (
    amp,
    nn,
    onnx,  # needs the optional onnx package only when exporting
    optim,
    random,
)
from lucid._backend import gpu_available
from lucid.amp import autocast
from lucid.autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from lucid.creation import (
    arange,
    empty,
    empty_like,
    full,
    full_like,
    ones,
    ones_like,
    tensor,
    zeros,
    zeros_like,
)
from lucid.dtypes import bool_, double, float16, float32, float64, half, int8, int32, int64, long, uint8
from lucid.ops import (
    abs,
    argmax,
    argmin,
    cat,
    chunk,
    clamp,
    clip,
    concatenate,
    exp,
    flatten,
    log,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    permute,
    pow,
    reshape,
    sigmoid,
    split,
    sqrt,
    squeeze,
    stack,
    sum,
    tanh,
    transpose,
    unsqueeze,
    var,
)
from lucid.random import manual_seed, rand, randint, randn, randperm
from lucid.serialization import load, save
from lucid.tensor import Tensor

__version__ = "0.1.0"
