"""Matrix products: matmul (NumPy semantics, batched) and the fused linear layer."""
from __future__ import annotations

from lucid._backend import get_array_module
from lucid.autograd.function import Function
from lucid.ops.blocked import map_batch
from lucid.ops.broadcast import unbroadcast


class MatMul(Function):
    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError("matmul: both operands need at least one dimension (use * for scalars)")
        ka = a.shape[-1]
        kb = b.shape[0] if b.ndim == 1 else b.shape[-2]
        if ka != kb:
            raise ValueError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} are not aligned ({ka} != {kb})")
        self.save_for_backward(a, b)
        return a @ b

    def backward(self, g):
        a, b = self.saved
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = g2[..., None, :]
        if b.ndim == 1:
            g2 = g2[..., None]
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = unbroadcast(g2 @ b2.swapaxes(-1, -2), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            gb = unbroadcast(a2.swapaxes(-1, -2) @ g2, b2.shape).reshape(b.shape)
        return ga, gb


def rows_matmul(a, b):
    """``a @ b`` for 2-D arrays: the rows of ``a`` shared among threads, each on one BLAS thread.

    Multi-threaded BLAS calls leave OpenBLAS's helper threads spinning for a while,
    taking the cores from the kernels that follow (see lucid.ops.blocked).
    """
    xp = get_array_module(a, b)
    out = xp.empty((a.shape[0], b.shape[1]), xp.result_type(a, b))
    map_batch(lambda i, j: xp.matmul(a[i:j], b, out=out[i:j]), a.shape[0], xp)
    return out


class Linear(Function):
    """y = x W^T + b for x of shape (..., in_features), W of shape (out, in)."""

    def forward(self, x, weight, bias=None):
        if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
            raise ValueError(
                f"linear: input of shape {tuple(x.shape)} does not match weight of shape "
                f"{tuple(weight.shape)} (expected last dimension {weight.shape[1]})"
            )
        if bias is not None and tuple(bias.shape) != (weight.shape[0],):
            raise ValueError(f"linear: bias of shape {tuple(bias.shape)} does not match weight of shape {tuple(weight.shape)}")
        self.save_for_backward(x, weight)
        out = rows_matmul(x.reshape(-1, x.shape[-1]), weight.T)
        if bias is not None:
            out += bias
        return out.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, g):
        x, weight = self.saved
        need = self.needs_input_grad
        g2 = g.reshape(-1, g.shape[-1])
        gx = rows_matmul(g2, weight).reshape(x.shape) if need[0] else None
        gw = rows_matmul(g2.T, x.reshape(-1, x.shape[-1])) if need[1] else None
        gb = g2.sum(axis=0) if len(need) > 2 and need[2] else None
        return gx, gw, gb


def matmul(a, b):
    return MatMul.apply(a, b)


def linear(x, weight, bias=None):
    """``x @ weight.T + bias`` as one op (PyTorch's F.linear)."""
    return Linear.apply(x, weight, bias) if bias is not None else Linear.apply(x, weight)
