"""Float32 CPU batch norm on oneDNN: ``lucid.ops.norm``'s forward and backward in one primitive each.

The (M, C) rows ``lucid.ops.norm`` works on are handed to oneDNN as an (M, C, 1, 1)
tensor: batch norm over N = M samples of C channels, read and written in place. The
forward computes the batch mean and biased variance (float32, as PyTorch's CPU kernel
does), normalises, scales, shifts and, fused, applies the ReLU; the backward gives the
input, scale and shift gradients from the saved statistics. Each shape's primitives are
built once and kept in a ``Plans`` cache.

A training pass may also normalise with statistics it is given ("given" mode, what
SyncBatchNorm needs: the mean and variance of the global batch, summed over ranks by
``lucid.ops.norm``). Its backward then treats them as constants, dx = relu'(y) dy gamma
invstd, and still returns the local scale and shift gradients; ``lucid.ops.norm`` adds
the terms through the global statistics in one more pass.

Used when ``usable()`` says so: NumPy float32 rows, at least one, and
``onednn.enabled()``. The NumPy path stays the reference the tests compare this one with.
"""
from __future__ import annotations

import numpy as np

from lucid.ops import aligned, onednn

USE_GLOBAL_STATS, USE_SCALE, USE_SHIFT, FUSE_RELU = 0x1, 0x2, 0x4, 0x8


TRAIN, GIVEN, EVAL = "train", "given", "eval"  # batch statistics / given ones while training / eval


def usable(rows) -> bool:
    """Whether batch norm of ``rows`` runs on oneDNN (see the module docstring); never in a forked child."""
    return (type(rows) is np.ndarray and rows.dtype == np.float32 and rows.ndim == 2 and rows.shape[0] > 0
            and rows.flags.c_contiguous and onednn.runnable())


class NormPlan:
    """oneDNN batch norm primitives of one shape and mode; the backward built on first use."""

    def __init__(self, m: int, c: int, eps: float, relu: bool, mode: str):
        self.rows = onednn.Desc((m, c, 1, 1), (c, 1, c, c))
        self.stat = onednn.Desc((c,), (1,))
        self.eps = eps
        self.flags = USE_SCALE | USE_SHIFT | (FUSE_RELU if relu else 0) | (0 if mode == TRAIN else USE_GLOBAL_STATS)
        training = mode != EVAL
        kind = onednn.FORWARD_TRAINING if training else onednn.FORWARD_INFERENCE
        self.forward = onednn.Primitive("dnnl_batch_normalization_forward_primitive_desc_create", kind,
                                        self.rows.handle, self.rows.handle, eps, self.flags, None)
        # The fused ReLU's backward reads its mask from a workspace the training forward writes.
        self.workspace = self.forward.size("workspace") if relu and training else 0
        self._backward = None

    @property
    def backward(self) -> onednn.Primitive:
        if self._backward is None:
            self._backward = onednn.Primitive(
                "dnnl_batch_normalization_backward_primitive_desc_create", onednn.BACKWARD, self.rows.handle,
                self.rows.handle, self.rows.handle, self.eps, self.flags, self.forward.pd, None)
        return self._backward


PLANS = onednn.Plans(NormPlan)


def _vector(v, c: int, fill: float):
    """A per-channel parameter as contiguous float32 (``fill`` where absent)."""
    if v is None:
        return np.full(c, fill, np.float32)
    return np.ascontiguousarray(v, dtype=np.float32)


def batch_norm_forward(rows, weight, bias, eps: float, relu: bool, mean=None, var=None, training: bool | None = None):
    """(y, saved) for contiguous float32 (M, C) ``rows``.

    Without ``mean``/``var``: training with the batch statistics, ``saved`` = (mean, biased
    variance, workspace) for ``batch_norm_backward``. With them: y from these statistics,
    ``saved`` None in eval, and in training (``training=True``, "given" mode) ``saved`` =
    (them as float32, workspace).
    """
    m, c = rows.shape
    mode = TRAIN if mean is None else (GIVEN if training else EVAL)
    plan = PLANS.get(m, c, float(eps), bool(relu), mode)
    y = aligned.empty(rows.shape)
    if mode == TRAIN:
        mean, var = np.empty(c, np.float32), np.empty(c, np.float32)
    else:
        mean, var = _vector(mean, c, 0.0), _vector(var, c, 1.0)
    args = {"src": (plan.rows.handle, rows), "dst": (plan.rows.handle, y), "mean": (plan.stat.handle, mean),
            "variance": (plan.stat.handle, var), "scale": (plan.stat.handle, _vector(weight, c, 1.0)),
            "shift": (plan.stat.handle, _vector(bias, c, 0.0))}
    workspace = None
    if plan.workspace:
        workspace = np.empty(plan.workspace, np.uint8)
        args["workspace"] = (plan.forward.md("workspace"), workspace)
    plan.forward(**args)
    return y, (None if mode == EVAL else (mean, var, workspace))


def batch_norm_backward(dy, rows, weight, eps: float, relu: bool, saved, given: bool = False):
    """(dx, dweight, dbias) of a training-mode forward, from its ``saved`` statistics; dy is (M, C) float32.

    ``given``: the forward normalised with given statistics, and dx treats them as constants.
    """
    m, c = rows.shape
    plan = PLANS.get(m, c, float(eps), bool(relu), GIVEN if given else TRAIN)
    mean, var, workspace = saved
    prim = plan.backward
    dy = np.ascontiguousarray(dy, dtype=np.float32)
    dx, dweight, dbias = aligned.empty(rows.shape), np.empty(c, np.float32), np.empty(c, np.float32)
    args = {"src": (plan.rows.handle, rows), "diff_dst": (plan.rows.handle, dy), "diff_src": (plan.rows.handle, dx),
            "mean": (plan.stat.handle, mean), "variance": (plan.stat.handle, var),
            "scale": (plan.stat.handle, _vector(weight, c, 1.0)),
            "diff_scale": (plan.stat.handle, dweight), "diff_shift": (plan.stat.handle, dbias)}
    if workspace is not None:
        args["workspace"] = (prim.md("workspace"), workspace)
    prim(**args)
    return dx, dweight, dbias
