"""Batch normalisation as one fused Function (PyTorch's F.batch_norm).

The input is viewed as a matrix (M, C): rows are the N*H*W positions of the
channels-last memory, so every statistic is a reduction over the leading axis
and every per-channel coefficient broadcasts along rows. Backward takes the
few-pass form ``dx = dy*k1 + x*k2 + k3`` with per-channel k's (docs/design.md, "Performance").

Cross-process statistics (SyncBatchNorm) use the ``stats_reduce`` hook. In
training mode the kernel packs its LOCAL per-channel statistics into one small
float64 array and passes it through ``stats_reduce`` (identity when None);
everything after that works from the returned (e.g. summed over ranks) array:

- forward: a (3, C) array [count, sum of x, sum of x**2]. The sum of squares is
  assembled in float64 from a float32 pass centred on the local mean, so the
  variance keeps its precision when |mean| >> std.
- backward: a (2, C) array [sum of dy, sum of dy*(x - mean)] with the global mean.

Each entry is a plain sum over samples, so a sum all-reduce over ranks yields the
statistics of the whole global batch, and a rank with no samples (count 0)
contributes zeros and still gets the global result. Weight and bias gradients
stay local (data parallelism reduces parameter gradients itself), as PyTorch's
SyncBatchNorm does; running statistics use the global count.

Float32 on the CPU runs on oneDNN where installed (``lucid.ops.norm_onednn``): the
same function in one fused primitive per pass, 2-3x faster than the NumPy passes here.
With ``stats_reduce`` the forward reduces the packed sums of the NumPy pass and oneDNN
normalises with the global statistics; its backward treats them as constants, and one
more pass adds the terms through them from the reduced backward sums.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from lucid._backend import get_array_module
from lucid.autograd.function import Function
from lucid.ops import aligned, gpu_fused, norm_onednn, onednn
from lucid.ops.activation import relu_backward
from lucid.ops.blocked import map_row_blocks
from lucid.ops.layout import from_nhwc, to_nhwc

StatsReduce = Callable[[object], object]


def as_rows(x):
    """(M, C) view of a 2-D (N, C), 3-D (N, C, L) or 4-D (N, C, H, W) array (channels-last for 4-D)."""
    if x.ndim == 2:
        return x
    xh = to_nhwc(x if x.ndim == 4 else x[..., None])
    return xh.reshape(-1, xh.shape[-1])


def from_rows(rows, like_shape):
    """Inverse of as_rows for an array of shape ``like_shape``: a view of ``rows``' memory."""
    if len(like_shape) == 2:
        return rows
    n, c, h = like_shape[:3]
    w = like_shape[3] if len(like_shape) == 4 else 1
    out = from_nhwc(rows.reshape(n, h, w, c))
    return out if len(like_shape) == 4 else out[..., 0]


def _accumulate(dtype) -> dict:
    """einsum options that sum float16 in float32 (its range and precision are too small for sums)."""
    return {"dtype": "float32"} if dtype.itemsize < 4 else {}


def channel_dot(a, b):
    """Per-column sum of a*b for (M, C) arrays, without an (M, C) temporary."""
    return get_array_module(a).einsum("ij,ij->j", a, b, **_accumulate(a.dtype))


def channel_sum(a):
    """Per-column sum of an (M, C) array (einsum's loop beats ``sum(axis=0)`` here)."""
    return get_array_module(a).einsum("ij->j", a, **_accumulate(a.dtype))


# -- rows regrouped wide ------------------------------------------------------------------
# NumPy runs a broadcast or an axis-0 reduction as one inner loop per row, so (M, C) rows
# with few channels (16-64 in small-image ResNets) spend most of their time in loop
# overhead. Dense rows are regrouped as (M/k, k*C) rows of about 1 KiB, the per-channel
# vectors tiled k times and the per-column results folded back: 1.5-2x faster for C=16.
WIDE_ROW_BYTES = 1024


def wide_factor(rows, *others) -> int:
    """k such that k divides M and k*C*itemsize is about WIDE_ROW_BYTES; 1 when an array is not dense."""
    m, c = rows.shape
    if any(a is not None and not a.flags.c_contiguous for a in (rows, *others)):
        return 1
    k = max(1, min(m, WIDE_ROW_BYTES // max(c * rows.itemsize, 1)))
    while k > 1 and m % k:
        k -= 1
    return k


def widen(a, k: int):
    """(M/k, k*C) view of dense (M, C) rows (``a`` itself when k is 1; None stays None)."""
    return a if a is None or k == 1 else a.reshape(a.shape[0] // k, -1)


def tile(v, k: int):
    """A per-channel vector repeated for the k channel groups of a wide row (``v`` when k is 1)."""
    return v if v is None or k == 1 else get_array_module(v).tile(v, k)


def fold(v, k: int):
    """Per-column sums of wide rows back to per-channel sums."""
    return v if k == 1 else v.reshape(k, -1).sum(axis=0)


# -- blocked passes over the (M, C) rows ----------------------------------------------
# Each pass reads its big operands once; per-block temporaries stay in cache and the
# blocks run on all cores (lucid.ops.blocked). Per-channel results are float64.
def local_moments(rows):
    """Packed (3, C) float64 [count, sum, sum of squares] of the rows.

    Each block is centred on its own float32 mean per column (stable squares), and its
    sum of squares is rebuilt in float64: sum x^2 = sum (x-c)^2 + 2c sum x - n c^2.
    """
    xp = get_array_module(rows)
    f64 = xp.float64
    m, c = rows.shape
    if gpu_fused.use_fused(xp):  # one block; the float64 assembly in one kernel
        s = channel_sum(rows)
        centre = gpu_fused.kernel(xp, "centre")(s, max(m, 1), rows)
        d = rows - centre
        packed = xp.full((3, c), float(m), f64)
        gpu_fused.kernel(xp, "moments_tail")(packed[1], packed[2], s, channel_dot(d, d), centre, m)
        return packed
    k = wide_factor(rows)
    wide = widen(rows, k)

    def block(a, b):
        xb = wide[a:b]
        s = channel_sum(xb)
        centre = (s / max(b - a, 1)).astype(rows.dtype)
        d = xb - centre
        s, centre = s.astype(f64), centre.astype(f64)
        return s, channel_dot(d, d).astype(f64) + centre * (2 * s - (b - a) * centre)

    parts = map_row_blocks(block, wide.shape[0], wide.shape[1] * rows.itemsize, xp)
    sums = [fold(sum(p[i] for p in parts), k) for i in (0, 1)]
    return xp.stack([xp.full(c, m, f64), *sums])


def grad_sums(dy, rows, mean, relu_out=None, masked=None):
    """Packed (2, C) float64 [sum dy, sum dy*(x - mean)]; x is centred blockwise (no cancellation).

    With ``relu_out`` (the output of a fused ReLU), dy is first masked by its sign and
    written into ``masked`` block by block, in the same pass.
    """
    xp = get_array_module(dy)
    f64 = xp.float64
    centre = mean.astype(rows.dtype)
    if relu_out is None and gpu_fused.use_fused(xp):  # one block; the float64 assembly in one kernel
        packed = xp.empty((2, rows.shape[1]), f64)
        gpu_fused.kernel(xp, "grad_sums_tail")(packed[0], packed[1], channel_sum(dy), channel_dot(dy, rows - centre),
                                               centre, mean)
        return packed
    k = wide_factor(rows, dy, relu_out, masked)
    dy, rows, relu_out, masked = (widen(a, k) for a in (dy, rows, relu_out, masked))
    wide_centre = tile(centre, k)

    def block(a, b):
        g = dy[a:b]
        if relu_out is not None:
            g, m = masked[a:b], g
            xp.greater(relu_out[a:b], 0, out=g)
            g *= m
        return channel_sum(g).astype(f64), channel_dot(g, rows[a:b] - wide_centre).astype(f64)

    parts = map_row_blocks(block, dy.shape[0], dy.shape[1] * dy.itemsize, xp)
    sum_dy = fold(sum(p[0] for p in parts), k)
    # the blocks centred on the float32-rounded mean: correct to the exact one
    return xp.stack([sum_dy, fold(sum(p[1] for p in parts), k) + (centre.astype(f64) - mean) * sum_dy])


def affine_rows(rows, k1, k0=None, dy=None, k=None, relu: bool = False, out=None):
    """(M, C) array ``(rows*k1 + k0 + dy) * k``, then ``max(., 0)`` with ``relu``; per-channel k's.

    k0, dy and k are optional. The result goes into ``out`` (which may be ``dy`` or
    ``rows``) or a new array. A few in-place ops per block, each block in cache; on a GPU
    one fused kernel into a new array (``out`` is then not used).
    """
    xp = get_array_module(rows)
    if gpu_fused.use_fused(xp):  # one kernel on the GPU, into a new array
        return gpu_fused.affine(rows, k1, k0, dy, k, relu)
    result = aligned.empty(rows.shape, rows.dtype, xp) if out is None else out
    w = wide_factor(rows, dy, result)
    out_is_dy = dy is not None and out is dy
    rows, dy, out = (widen(a, w) for a in (rows, dy, result))
    k1, k0, k = (None if v is None else tile(v, w).astype(rows.dtype) for v in (k1, k0, k))

    def block(a, b):
        o = out[a:b]
        if out_is_dy:  # o holds dy: add the product (a block-sized temporary)
            o += rows[a:b] * k1
        else:
            xp.multiply(rows[a:b], k1, out=o)
        if k0 is not None:
            o += k0
        if dy is not None and not out_is_dy:
            o += dy[a:b]
        if k is not None:
            o *= k
        if relu:
            xp.maximum(o, 0, out=o)

    map_row_blocks(block, rows.shape[0], rows.shape[1] * rows.itemsize, xp)
    return result


def _affine(xp, weight, bias, c: int):
    """gamma and beta as float64 per-channel arrays (1 and 0 when absent)."""
    f64 = xp.float64
    gamma = weight.astype(f64) if weight is not None else xp.ones(c, f64)
    beta = bias.astype(f64) if bias is not None else xp.zeros(c, f64)
    return gamma, beta


def _update_running(buf, stat, momentum: float) -> None:
    """buf <- (1 - momentum) * buf + momentum * stat, in place (PyTorch's running-stat update)."""
    if buf is not None:
        buf[...] = ((1.0 - momentum) * buf + momentum * stat).astype(buf.dtype)


def _global_count(packed, local_rows: int, reduced: bool) -> float:
    """The number of values per channel, from the shape unless the statistics were reduced over ranks.

    Reading it from ``packed`` would make the host wait for the GPU in every BatchNorm.
    """
    count = float(packed[0, 0]) if reduced else float(local_rows)
    if count <= 1:
        raise ValueError(
            f"batch_norm: expected more than 1 value per channel when training, got {count:g} "
            f"(local input rows {local_rows})"
        )
    return count


def _global_stats(packed, count: float):
    """(mean, biased var) from the (3, C) packed statistics."""
    mean = packed[1] / count
    var = get_array_module(packed).maximum(packed[2] / count - mean * mean, 0.0)
    return mean, var


class BatchNorm(Function):
    """Normalise per channel with batch statistics (training) or running statistics (eval).

    With ``relu`` the output is ``relu(batch_norm(x))`` in the same pass; backward masks
    the gradient by the saved output's sign (the ReLU's backward) inside its first pass.
    """

    def forward(self, x, weight=None, bias=None, *, running_mean, running_var, training, momentum, eps, stats_reduce,
                relu=False):
        xp = get_array_module(x)
        rows = as_rows(x)
        self.training, self.stats_reduce, self.shape = training, stats_reduce, x.shape
        self.onednn = training and norm_onednn.usable(rows)
        if self.onednn:
            y = self._forward_onednn(rows, weight, bias, running_mean, running_var, momentum, eps, relu)
            return from_rows(y, x.shape)
        count = packed = None
        if training:
            packed = local_moments(rows)
            if stats_reduce is not None:
                packed = stats_reduce(packed)
            count = _global_count(packed, rows.shape[0], reduced=stats_reduce is not None)
        if gpu_fused.use_fused(xp):  # the per-channel arithmetic below as one kernel
            mean, invstd, gamma, scale, shift = gpu_fused.batch_norm_coefficients(
                packed, count, weight, bias, running_mean, running_var, momentum, eps)
        else:
            gamma, beta = _affine(xp, weight, bias, rows.shape[1])
            if training:
                mean, var = _global_stats(packed, count)
                _update_running(running_mean, mean, momentum)
                _update_running(running_var, var * (count / (count - 1)), momentum)
            else:
                mean, var = running_mean.astype(xp.float64), running_var.astype(xp.float64)
            invstd = 1.0 / xp.sqrt(var + eps)
            scale = gamma * invstd
            shift = beta - mean * scale
        if not training and norm_onednn.usable(rows):
            y, _ = norm_onednn.batch_norm_forward(rows, weight, bias, eps, relu, running_mean, running_var)
        else:
            y = affine_rows(rows, scale, shift, relu=relu)
        self.count = count
        need = self.needs_input_grad
        keep_x = need[0] and training or need[1]
        self.save_for_backward(rows if keep_x else None, mean, invstd, gamma, y if relu and any(need) else None)
        return from_rows(y, x.shape)

    def _forward_onednn(self, rows, weight, bias, running_mean, running_var, momentum, eps, relu):
        """Training forward on oneDNN: y, with the running statistics updated as the NumPy path does.

        With ``stats_reduce`` the statistics are the reduced packed sums (float64), given to oneDNN.
        """
        if self.stats_reduce is None:
            count = _global_count(None, rows.shape[0], reduced=False)
            y, stats = norm_onednn.batch_norm_forward(rows, weight, bias, eps, relu)
            mean, var = (s.astype(np.float64) for s in stats[:2])
        else:
            packed = self.stats_reduce(local_moments(rows))
            count = _global_count(packed, rows.shape[0], reduced=True)
            mean, var = _global_stats(packed, count)
            y, stats = norm_onednn.batch_norm_forward(rows, weight, bias, eps, relu, mean, var, training=True)
            self.global_stats = mean, 1.0 / np.sqrt(var + eps)
        _update_running(running_mean, mean, momentum)
        _update_running(running_var, var * (count / (count - 1)), momentum)
        self.eps, self.relu, self.count = eps, relu, count
        self.save_for_backward(rows if any(self.needs_input_grad) else None, weight, bias, stats)
        return y

    def _numpy_saved(self):
        """The NumPy backward's saved arrays from a oneDNN forward's (for a forked child, where oneDNN cannot run).

        The fused ReLU's mask is recomputed from the rows (oneDNN's workspace is its own format).
        """
        rows, weight, bias, (mean, var, _) = self.saved
        gamma, beta = _affine(np, weight, bias, rows.shape[1])
        mean = mean.astype(np.float64)
        invstd = 1.0 / np.sqrt(var.astype(np.float64) + self.eps)
        y = affine_rows(rows, gamma * invstd, beta - mean * gamma * invstd, relu=True) if self.relu else None
        return rows, mean, invstd, gamma, y

    def _backward_onednn(self, g):
        rows, weight, _, stats = self.saved
        given = self.stats_reduce is not None
        dx, dw, db = norm_onednn.batch_norm_backward(as_rows(g), rows, weight, self.eps, self.relu, stats, given)
        need = self.needs_input_grad
        if given and need[0]:
            self._add_statistics_terms(dx, rows, weight, dw, db)
        return (from_rows(dx, self.shape) if need[0] else None), (dw if need[1] else None), (db if need[2] else None)

    def _add_statistics_terms(self, dx, rows, weight, dw, db) -> None:
        """dx += x*k2 + k3 in place: the terms through the global batch statistics (oneDNN's dx with
        given statistics leaves them out), from the reduced [sum dy, sum dy*(x - mean)].

        oneDNN's scale and shift gradients are the local sums: dw = sum dy*(x - mean)*invstd, db = sum dy.
        """
        mean, invstd = self.global_stats
        gamma, _ = _affine(np, weight, None, rows.shape[1])
        packed = self.stats_reduce(np.stack([db.astype(np.float64), dw.astype(np.float64) / invstd]))
        k2 = -gamma * invstd**3 * packed[1] / self.count
        k3 = -gamma * invstd * packed[0] / self.count - k2 * mean
        affine_rows(rows, k2, k3, dx, out=dx)

    def backward(self, g):
        if self.onednn and not onednn.forked():
            return self._backward_onednn(g)
        if self.onednn:
            self.saved, self.onednn = self._numpy_saved(), False
        rows, mean, invstd, gamma, y = self.saved
        dy = as_rows(g)
        fresh = y is not None  # through the fused ReLU: the masked gradient is a new array we may overwrite
        need = self.needs_input_grad
        if rows is None:  # no weight gradient, and no input gradient in training: x is not needed
            dy = relu_backward(dy, y) if fresh else dy
            gb = channel_sum(dy).astype(g.dtype) if need[2] else None
            gx = from_rows(affine_rows(dy, gamma * invstd, out=dy if fresh else None), self.shape) if need[0] else None
            return gx, None, gb
        if fresh and gpu_fused.use_fused(get_array_module(dy)):
            dy = gpu_fused.relu_grad(dy, y)  # one kernel
            local = grad_sums(dy, rows, mean)
        elif fresh:
            masked = get_array_module(dy).empty(y.shape, y.dtype)
            local = grad_sums(dy, rows, mean, y, masked)
            dy = masked
        else:
            local = grad_sums(dy, rows, mean)
        if gpu_fused.use_fused(get_array_module(dy)):  # the per-channel arithmetic as one kernel
            packed = local
            if self.training and self.stats_reduce is not None:
                packed = self.stats_reduce(local.copy())
            gw, gb, k1, k2, k3 = gpu_fused.batch_norm_grad_coefficients(
                local, packed, invstd, gamma, mean, self.count, g.dtype, self.training)
            gx = affine_rows(rows, k2, k3, dy, k1) if self.training else affine_rows(dy, k1)
            return (from_rows(gx, self.shape) if need[0] else None), (gw if need[1] else None), (gb if need[2] else None)
        gw = (local[1] * invstd).astype(g.dtype) if need[1] else None
        gb = local[0].astype(g.dtype) if need[2] else None
        gx = from_rows(self._grad_input(dy, rows, local, mean, invstd, gamma, fresh), self.shape) if need[0] else None
        return gx, gw, gb

    def _grad_input(self, dy, rows, local, mean, invstd, gamma, fresh: bool):
        """dx = dy*k1 + x*k2 + k3 (training: batch statistics depend on x) or dy*k1 (eval).

        Training computes it as k1 * (x*k2' + k3' + dy) with k2 = k1*k2', k3 = k1*k3'
        (no division: k1 = 0 gives 0), in four in-place ops per block.
        """
        k1 = gamma * invstd
        out = dy if fresh else None  # write over a gradient array of our own
        if not self.training:
            return affine_rows(dy, k1, out=out)
        packed = local.copy()  # the hook may reduce in place; weight/bias grads keep the local sums
        if self.stats_reduce is not None:
            packed = self.stats_reduce(packed)
        k2 = -invstd * invstd * packed[1] / self.count
        k3 = -packed[0] / self.count - k2 * mean
        return affine_rows(rows, k2, k3, dy, k1, out=out)


def batch_norm(
    input,  # shadows a builtin: torch names
    running_mean,
    running_var,
    weight=None,
    bias=None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
    stats_reduce: StatsReduce | None = None,
    relu: bool = False,
):
    """Batch normalisation over (N, C), (N, C, L) or (N, C, H, W) input (PyTorch's F.batch_norm).

    Training normalises with the biased batch variance and, when given, updates
    ``running_mean`` / ``running_var`` (Tensors) in place with ``momentum`` and the
    unbiased variance. Eval normalises with the running statistics.
    ``stats_reduce`` (training only) maps the packed per-channel statistics to
    their sum over all participating processes; see the module docstring.
    ``relu=True`` returns ``relu(batch_norm(...))`` as one fused op (no PyTorch equivalent).
    """
    op = "batch_norm"
    if input.ndim not in (2, 3, 4):
        raise ValueError(f"{op}: expected 2-D, 3-D or 4-D input, got shape {tuple(input.shape)}")
    c = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (c,):
            raise ValueError(f"{op}: {name} of shape {tuple(t.shape)} does not match input of shape {tuple(input.shape)} ({c} channels)")
    from lucid.tensor import Tensor  # lucid.tensor imports the ops: not at module level

    for name, t in (("running_mean", running_mean), ("running_var", running_var)):
        if t is not None and not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor (it is updated in place) or None, got {type(t).__name__}; "
                            "wrap an array with lucid.tensor(...)")
    if not training and (running_mean is None or running_var is None):
        raise ValueError(f"{op}: running_mean and running_var must be given in evaluation mode")
    running = [None if t is None else t.data for t in (running_mean, running_var)]
    return BatchNorm.apply(
        input,
        weight,
        bias,
        running_mean=running[0],
        running_var=running[1],
        training=training,
        momentum=momentum,
        eps=eps,
        stats_reduce=stats_reduce,
        relu=relu,
    )
