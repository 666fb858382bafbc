"""Differentiable kernels. Each module holds Functions and the public function beside each.

Kernels are written once against the array module of their inputs (``xp``), so the
same code runs on NumPy and CuPy.
"""
from lucid.ops.activation import add_relu, dropout, log_softmax, relu, sigmoid, softmax
from lucid.ops.broadcast import check_broadcast
from lucid.ops.conv import conv2d
from lucid.ops.elementwise import (
    abs,
    add,
    cast,
    clamp,
    clip,
    clone,
    div,
    eq,
    exp,
    ge,
    gt,
    le,
    log,
    lt,
    maximum,
    minimum,
    mul,
    ne,
    neg,
    pow,
    sqrt,
    sub,
    tanh,
    to_device,
)
from lucid.ops.loss import accuracy, cross_entropy, topk_correct
from lucid.ops.matmul import linear, matmul
from lucid.ops.norm import batch_norm
from lucid.ops.pool import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from lucid.ops.reduce import argmax, argmin, max, mean, min, sum, var
from lucid.ops.shape import (
    cat,
    chunk,
    concatenate,
    expand,
    flatten,
    getitem,
    pad,
    permute,
    reshape,
    split,
    squeeze,
    stack,
    transpose,
    unsqueeze,
    view,
)
