"""Batch normalisation as one fused Function (PyTorch's F.batch_norm).

The input is viewed as a matrix (M, C): rows are the N*H*W positions of the
channels-last memory, so every statistic is a reduction over the leading axis
and every per-channel coefficient broadcasts along rows. Backward takes the
few-pass form ``dx = dy*k1 + x*k2 + k3`` with per-channel k's (DESIGN.md).

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
"""
from __future__ import annotations

from typing import Callable

from lucid.autograd.function import Function, xp_of
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


def channel_dot(a, b):
    """Per-column sum of a*b for (M, C) arrays, without an (M, C) temporary."""
    return xp_of(a).einsum("ij,ij->j", a, b)


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


class BatchNorm(Function):
    """Normalise per channel with batch statistics (training) or running statistics (eval)."""

    def forward(self, x, weight=None, bias=None, *, running_mean, running_var, training, momentum, eps, stats_reduce):
        xp = xp_of(x)
        rows = as_rows(x)
        gamma, beta = _affine(xp, weight, bias, rows.shape[1])
        if training:
            y, mean, var, count = self._batch_stats_forward(rows, gamma, beta, eps, stats_reduce)
            invstd = 1.0 / xp.sqrt(var + eps)
            _update_running(running_mean, mean, momentum)
            _update_running(running_var, var * (count / (count - 1)), momentum)
        else:
            mean = running_mean.astype(xp.float64)
            invstd = 1.0 / xp.sqrt(running_var.astype(xp.float64) + eps)
            y = rows * (gamma * invstd).astype(rows.dtype)
            y += (beta - mean * gamma * invstd).astype(rows.dtype)
            count = None
        self.training, self.count, self.stats_reduce = training, count, stats_reduce
        self.shape = x.shape
        need = self.needs_input_grad
        keep_x = need and (need[0] and training or need[1])
        self.save_for_backward(rows if keep_x else None, mean, invstd, gamma)
        return from_rows(y, x.shape)

    def _batch_stats_forward(self, rows, gamma, beta, eps, stats_reduce):
        """Normalised output and global (mean, biased var, count) from the (reduced) packed statistics."""
        xp = xp_of(rows)
        f64 = xp.float64
        n = rows.shape[0]
        total = rows.sum(axis=0)
        shift = (total / max(n, 1)).astype(rows.dtype)  # local mean; its exact value centres the squares
        y = xp.subtract(rows, shift)
        s, c = total.astype(f64), shift.astype(f64)
        packed = xp.stack([xp.full(c.shape, n, f64), s, channel_dot(y, y).astype(f64) + c * (2 * s - n * c)])
        if stats_reduce is not None:
            packed = stats_reduce(packed)
        count = float(packed[0, 0])
        if count <= 1:
            raise ValueError(
                f"batch_norm: expected more than 1 value per channel when training, got {count:g} "
                f"(local input rows {n})"
            )
        mean = packed[1] / count
        var = xp.maximum(packed[2] / count - mean * mean, 0.0)
        invstd = 1.0 / xp.sqrt(var + eps)
        scale = gamma * invstd
        y *= scale.astype(y.dtype)
        y += (beta + (c - mean) * scale).astype(y.dtype)
        return y, mean, var, count

    def backward(self, g):
        rows, mean, invstd, gamma = self.saved
        xp = xp_of(g)
        dy = as_rows(g)
        need = self.needs_input_grad
        sum_dy = dy.sum(axis=0).astype(xp.float64)
        sum_dy_xmu = None
        if rows is not None:
            sum_dy_xmu = channel_dot(dy, rows).astype(xp.float64) - mean * sum_dy
        gw = (sum_dy_xmu * invstd).astype(g.dtype) if need[1] else None
        gb = sum_dy.astype(g.dtype) if need[2] else None
        gx = None
        if need[0]:
            gx = from_rows(self._grad_input(dy, rows, sum_dy, sum_dy_xmu, mean, invstd, gamma), self.shape)
        return gx, gw, gb

    def _grad_input(self, dy, rows, sum_dy, sum_dy_xmu, mean, invstd, gamma):
        """dx = dy*k1 + x*k2 + k3 (training) or dy*k1 (eval), per-channel k's."""
        xp = xp_of(dy)
        k1 = gamma * invstd
        if not self.training:
            return dy * k1.astype(dy.dtype)
        packed = xp.stack([sum_dy, sum_dy_xmu])
        if self.stats_reduce is not None:
            packed = self.stats_reduce(packed)
        k2 = -k1 * invstd * invstd * packed[1] / self.count
        k3 = -k1 * packed[0] / self.count - k2 * mean
        dx = dy * k1.astype(dy.dtype)
        dx += rows * k2.astype(dy.dtype)
        dx += k3.astype(dy.dtype)
        return dx


def batch_norm(
    input,  # noqa: A002 - torch names
    running_mean,
    running_var,
    weight=None,
    bias=None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
    stats_reduce: StatsReduce | None = None,
):
    """Batch normalisation over (N, C), (N, C, L) or (N, C, H, W) input (PyTorch's F.batch_norm).

    Training normalises with the biased batch variance and, when given, updates
    ``running_mean`` / ``running_var`` (Tensors) in place with ``momentum`` and the
    unbiased variance. Eval normalises with the running statistics.
    ``stats_reduce`` (training only) maps the packed per-channel statistics to
    their sum over all participating processes; see the module docstring.
    """
    op = "batch_norm"
    if input.ndim not in (2, 3, 4):
        raise ValueError(f"{op}: expected 2-D, 3-D or 4-D input, got shape {tuple(input.shape)}")
    c = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (c,):
            raise ValueError(f"{op}: {name} of shape {tuple(t.shape)} does not match input of shape {tuple(input.shape)} ({c} channels)")
    if not training and (running_mean is None or running_var is None):
        raise ValueError(f"{op}: running_mean and running_var must be given in evaluation mode")
    running = [getattr(t, "data", t) for t in (running_mean, running_var)]
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
    )
