"""2-D convolution (PyTorch's conv2d) as GEMMs over channels-last memory.

Forward: im2col in NHWC (a 1x1 convolution is one GEMM over (N*H*W, C)) and one
batched GEMM over the groups axis, chunked over the batch. Each thread works on its
own share of the batch with BLAS on one thread (``lucid.ops.blocked.map_batch``).
Backward:

- grad weight: the same columns, recomputed chunk by chunk, times the output gradient;
- grad input, stride 1: a convolution of the output gradient with the 180-degree
  rotated, in/out-swapped weights (padding (k-1)*d - p): no col2im scatter;
- grad input, strided: GEMM to columns, then col2im (kh*kw strided slice-adds).
"""
from __future__ import annotations

import math

import numpy as np

from lucid._backend import get_array_module
from lucid.autograd.function import Function
from lucid.ops import aligned, conv_onednn
from lucid.ops.blocked import map_batch, map_row_blocks
from lucid.ops.im2col import ChunkBuffer, batch_chunks, col2im, column_shape, columns, group_major, group_rows
from lucid.ops.layout import from_nhwc, to_nhwc
from lucid.ops.window import Window, pair


def weight_matrix(weight, groups: int):
    """(O, Cg, kh, kw) weights as (G, kh*kw*Cg, Og): the right-hand GEMM operand per group."""
    o, cg, kh, kw = weight.shape
    out = get_array_module(weight).empty((groups, kh * kw, cg, o // groups), weight.dtype)
    src = weight.reshape(groups, o // groups, cg, kh * kw).transpose(0, 3, 2, 1)
    transposing_copy(out, src, rows=3, cols=2)
    return out.reshape(groups, kh * kw * cg, o // groups)


def rotated_weight_matrix(weight, groups: int):
    """weight_matrix of the 180-degree rotated, in/out-swapped weights: (G, kh*kw*Og, Cg).

    The stride-1 input gradient is the convolution of the output gradient with them.
    """
    o, cg, kh, kw = weight.shape
    og = o // groups
    out = get_array_module(weight).empty((groups, kh, kw, og, cg), weight.dtype)
    src = weight.reshape(groups, og, cg, kh, kw)[:, :, :, ::-1, ::-1].transpose(0, 3, 4, 1, 2)
    transposing_copy(out, src, rows=3, cols=4)
    return out.reshape(groups, kh * kw * og, cg)


def weight_from_matrix(wmat, shape, og_major: bool = False):
    """Inverse of weight_matrix: (G, kh*kw*Cg, Og) back to a new (O, Cg, kh, kw) array.

    With ``og_major`` ``wmat`` is the transposed matrix, (G, Og, kh*kw*Cg).
    The result owns its memory (no view), so the engine can accumulate into it.
    """
    o, cg, kh, kw = shape
    groups = wmat.shape[0]
    out = get_array_module(wmat).empty(shape, wmat.dtype)
    if og_major:
        src = wmat.reshape(groups, o // groups, kh * kw, cg).transpose(0, 1, 3, 2)
    else:
        src = wmat.reshape(groups, kh * kw, cg, o // groups).transpose(0, 3, 2, 1)
    transposing_copy(out.reshape(groups, o // groups, cg, kh * kw), src, rows=1, cols=2)
    return out


def transposing_copy(dst, src, rows: int, cols: int, tile: int = 64) -> None:
    """dst[...] = src, in tile x tile blocks of the axes ``rows`` and ``cols``, blocks of rows on all cores.

    A weight is a few MiB: copied in one go through a transposed view, nearly every
    read misses the cache (a 512x512x3x3 weight: 10-20 ms); in blocks, 2-6 ms.
    """
    xp = get_array_module(dst)
    if xp is not np:
        dst[...] = src
        return
    n_cols = dst.shape[cols]

    def block(a, b):
        for c in range(0, n_cols, tile):
            index = [slice(None)] * dst.ndim
            index[rows], index[cols] = slice(a, b), slice(c, c + tile)
            dst[tuple(index)] = src[tuple(index)]

    map_row_blocks(block, dst.shape[rows], dst.size // max(dst.shape[rows], 1) * dst.itemsize)


def conv_nhwc(x, wmat, window: Window, out_hw, bias=None):
    """Convolve NHWC ``x`` (N, H, W, G*Cg) with ``wmat`` (G, K, Og): NHWC (N, Ho, Wo, G*Og).

    Each thread takes a share of the batch (its im2col chunks and GEMMs, ``map_batch``);
    the bias is added chunk by chunk, while the chunk's output is still in cache.
    """
    xp = get_array_module(x)
    groups, _, og = wmat.shape
    out = aligned.empty((x.shape[0], out_hw[0], out_hw[1], groups * og), x.dtype, xp)

    def share(start, stop):
        for a, b, cols in columns(x, window, groups, out_hw, start, stop, 2 * wmat.nbytes):
            xp.matmul(cols, wmat, out=group_rows(out[a:b], groups))
            if bias is not None:
                out[a:b] += bias

    map_batch(share, x.shape[0], xp)
    return out


def conv_grad_weight(x, gy, window: Window, groups: int, shape):
    """dL/dweight (O, Cg, kh, kw) from NHWC input ``x`` and NHWC output gradient ``gy``.

    Each thread sums the products of its share of the batch; the shares' sums are added.
    With fewer output channels per group than K = kh*kw*Cg the product is taken as
    gy^T @ columns, (Og, K), which OpenBLAS runs up to 1.5x faster than columns^T @ gy
    for these shapes (e.g. 64 x 576 on the Haswell kernel: 42 vs 27 GFLOP/s per core).
    """
    xp = get_array_module(x)
    per_image = gy.shape[1] * gy.shape[2]
    gyg = group_major(gy, groups)
    weight_bytes = math.prod(shape) * x.itemsize
    o, cg, kh, kw = shape
    og_major = o // groups < cg * kh * kw

    def product(cols, g, out=None):
        if og_major:
            return xp.matmul(g.transpose(0, 2, 1), cols, out=out)
        return xp.matmul(cols.transpose(0, 2, 1), g, out=out)

    def share(start, stop):
        total = part = None
        for a, b, cols in columns(x, window, groups, gy.shape[1:3], start, stop, 2 * weight_bytes):
            g = gyg[:, a * per_image : b * per_image]
            if total is None:
                total = product(cols, g)
            else:
                part = product(cols, g, out=part)
                total += part
        return total

    sums = [t for t in map_batch(share, x.shape[0], xp) if t is not None]
    if not sums:  # empty batch
        return xp.zeros(shape, x.dtype)
    for t in sums[1:]:
        sums[0] += t
    return weight_from_matrix(sums[0], shape, og_major)


def conv_grad_input(gy, weight, window: Window, groups: int, in_hw):
    """dL/dinput as NHWC (N, H, W, C) from the NHWC output gradient ``gy``."""
    if window.stride == (1, 1):
        pad = tuple(d * (k - 1) - p for k, d, p in zip(window.kernel, window.dilation, window.padding))
        back = Window(window.kernel, (1, 1), pad, window.dilation)
        return conv_nhwc(gy, rotated_weight_matrix(weight, groups), back, in_hw)
    return _col2im_grad_input(gy, weight, window, groups, in_hw)


def _col2im_grad_input(gy, weight, window: Window, groups: int, in_hw):
    """Strided grad input: columns = gy @ W^T per group, scattered back with col2im (per thread's share)."""
    xp = get_array_module(gy)
    n, ho, wo, _ = gy.shape
    c = weight.shape[1] * groups
    wt = weight_matrix(weight, groups).transpose(0, 2, 1)  # (G, Og, K)
    dx = xp.zeros((n, in_hw[0], in_hw[1], c), gy.dtype)
    shape = column_shape(n, c, groups, window, (ho, wo))
    gyg = group_major(gy, groups)

    def share(start, stop):
        chunks = batch_chunks(start, stop, wt.shape[2] * groups * ho * wo * gy.itemsize, ho * wo, xp, 2 * wt.nbytes)
        buf = ChunkBuffer(shape, chunks[0][1] - chunks[0][0], gy.dtype, xp)
        for a, b in chunks:
            cols = buf.take(b - a)
            xp.matmul(gyg[:, a * ho * wo : b * ho * wo], wt, out=cols.reshape(groups, -1, wt.shape[2]))
            col2im(cols, dx[a:b], window)

    if n:
        map_batch(share, n, xp)
    return dx


class Conv2d(Function):
    """conv2d on NCHW-shaped arrays of any memory layout; the output is NHWC memory."""

    def forward(self, x, weight, bias=None, *, window: Window, groups: int, out_hw):
        xh = to_nhwc(x)
        self.onednn = conv_onednn.kernels(x, weight, window, groups, out_hw)
        if "forward" in self.onednn:
            out = conv_onednn.conv_forward(xh, weight, bias, window, groups, out_hw)
        else:
            out = conv_nhwc(xh, weight_matrix(weight, groups), window, out_hw, bias)
        need = self.needs_input_grad
        self.save_for_backward(xh if len(need) > 1 and need[1] else None, weight if need and need[0] else None)
        self.window, self.groups, self.in_hw, self.w_shape = window, groups, x.shape[2:], weight.shape
        return from_nhwc(out)

    def backward(self, g):
        xh, weight = self.saved
        gy = to_nhwc(g)
        need = self.needs_input_grad
        gx = gw = gb = None
        onednn = self.onednn if gy.dtype == np.float32 and not conv_onednn.onednn.forked() else frozenset()
        if need[0]:
            if "input" in onednn:
                gx = conv_onednn.conv_grad_input(gy, weight, self.window, self.groups,
                                                 (gy.shape[0], *self.in_hw, weight.shape[1] * self.groups))
            else:
                gx = conv_grad_input(gy, weight, self.window, self.groups, self.in_hw)
            gx = from_nhwc(gx)
        if need[1]:
            kernel = conv_onednn.conv_grad_weight if "weight" in onednn else conv_grad_weight
            gw = kernel(xh, gy, self.window, self.groups, self.w_shape)
        if len(need) > 2 and need[2]:
            gb = gy.reshape(-1, gy.shape[-1]).sum(axis=0)
        return gx, gw, gb


def _check_conv(x, weight, bias, groups: int) -> None:
    op = "conv2d"
    if x.ndim != 4:
        raise ValueError(f"{op}: expected 4-D input (N, C, H, W), got {x.ndim}-D input of shape {tuple(x.shape)}")
    if weight.ndim != 4:
        raise ValueError(f"{op}: expected 4-D weight (out, in/groups, kh, kw), got shape {tuple(weight.shape)}")
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    if weight.shape[0] % groups:
        raise ValueError(
            f"{op}: weight of shape {tuple(weight.shape)} has {weight.shape[0]} output channels, "
            f"not divisible by groups={groups}"
        )
    if x.shape[1] != weight.shape[1] * groups:
        raise ValueError(
            f"{op}: input of shape {tuple(x.shape)} has {x.shape[1]} channels but weight of shape "
            f"{tuple(weight.shape)} with groups={groups} expects {weight.shape[1] * groups}"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"{op}: bias of shape {tuple(bias.shape)} does not match weight of shape {tuple(weight.shape)}")


def conv_window(in_hw, weight_hw, stride, padding, dilation, op: str = "conv2d") -> tuple[Window, tuple[int, int]]:
    """The Window and output (Ho, Wo) of a convolution; padding may be an int, a pair, "valid" or "same"."""
    stride, dilation = pair(stride, "stride", op), pair(dilation, "dilation", op)
    if min(stride) < 1 or min(dilation) < 1:
        raise ValueError(f"{op}: stride {stride} and dilation {dilation} must be positive")
    if isinstance(padding, str):
        if padding not in ("valid", "same"):
            raise ValueError(f"{op}: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
        if padding == "same" and stride != (1, 1):
            raise ValueError(f"{op}: padding='same' needs stride 1, got stride {stride}")
        same = padding == "same"
        lead = tuple(d * (k - 1) // 2 if same else 0 for k, d in zip(weight_hw, dilation))
        window = Window(tuple(weight_hw), stride, lead, dilation)
        return window, tuple(in_hw) if same else window.output_shape(in_hw)
    padding = pair(padding, "padding", op)
    if min(padding) < 0:
        raise ValueError(f"{op}: padding {padding} must be non-negative")
    window = Window(tuple(weight_hw), stride, padding, dilation)
    ext = window.extent()
    if any(e > n + 2 * p for e, n, p in zip(ext, in_hw, padding)):
        raise ValueError(
            f"{op}: kernel of size {tuple(weight_hw)} (dilated extent {ext}) is larger than the padded "
            f"input of size {tuple(n + 2 * p for n, p in zip(in_hw, padding))}"
        )
    return window, window.output_shape(in_hw)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):  # shadows a builtin: torch names
    """2-D convolution over an NCHW-shaped input (PyTorch's F.conv2d).

    ``stride``, ``padding`` and ``dilation`` are ints or (h, w) pairs; padding may
    also be "valid" or "same". The result is an (N, O, Ho, Wo) tensor whose memory
    is channels-last (NHWC).
    """
    _check_conv(input, weight, bias, groups)
    window, out_hw = conv_window(input.shape[2:], weight.shape[2:], stride, padding, dilation)
    args = (input, weight) if bias is None else (input, weight, bias)
    return Conv2d.apply(*args, window=window, groups=groups, out_hw=out_hw)
