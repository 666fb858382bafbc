"""im2col / col2im on channels-last (NHWC) memory, in batch chunks.

The column matrix of a convolution has one row per output position and, per
group, one column per (tap i, tap j, input channel). In NHWC memory every tap
copies whole runs of channels, which is what makes im2col cheap (DESIGN.md).
Columns are laid out (n, Ho, Wo, G, kh, kw, Cg) so each group's block is a
matrix (rows, kh*kw*Cg) with unit column stride: a batched GEMM over the groups
axis reads it in place.

The batch is processed in chunks whose column buffer stays near ``CHUNK_BYTES``:
the full matrix of a ResNet layer is hundreds of MB, a chunk's fits in cache-sized
pieces, is reused for every chunk, and is never kept for backward (recomputing it
costs less than holding it).
"""
from __future__ import annotations

from typing import Iterator

from lucid.autograd.function import xp_of
from lucid.ops.window import Window

CHUNK_BYTES = 1 << 24  # 16 MiB of columns per batch chunk


def batch_chunks(n: int, bytes_per_item: int) -> list[tuple[int, int]]:
    """Consecutive [start, stop) ranges of the batch whose columns fit CHUNK_BYTES (at least one item each)."""
    step = max(1, min(n, CHUNK_BYTES // max(bytes_per_item, 1)))
    return [(a, min(a + step, n)) for a in range(0, n, step)]


def group_rows(a, groups: int):
    """(n, h, w, G*c) contiguous array as a (G, n*h*w, c) view: one matrix per group."""
    return a.reshape(-1, groups, a.shape[-1] // groups).transpose(1, 0, 2)


def column_buffer(xp, n: int, channels: int, groups: int, window: Window, in_hw, out_hw, dtype, zero_pad: bool):
    """Empty columns (n, Ho, Wo, G, kh, kw, Cg); with ``zero_pad`` the positions that read padding hold 0.

    im2col only ever writes the positions that read the input, so the zeros stay
    valid while the buffer is reused for every chunk.
    """
    kh, kw = window.kernel
    cols = xp.empty((n, out_hw[0], out_hw[1], groups, kh, kw, channels // groups), dtype)
    if zero_pad:
        for i, j, blocks in window.uncovered(in_hw, out_hw):
            for hb, wb in blocks:
                cols[:, hb, wb, :, i, j, :] = 0
    return cols


def im2col(x, cols, window: Window) -> None:
    """Copy every tap's input block of NHWC ``x`` (n, H, W, C) into ``cols`` (see column_buffer)."""
    n, h, w, c = x.shape
    groups = cols.shape[3]
    xv = x.reshape(n, h, w, groups, c // groups)
    for i, j, (ho, wo), (hi, wi) in window.taps((h, w), cols.shape[1:3]):
        cols[:, ho, wo, :, i, j, :] = xv[:, hi, wi]


def col2im(cols, dx, window: Window) -> None:
    """Adjoint of im2col: add every tap's columns into NHWC ``dx`` (n, H, W, C) in place."""
    n, h, w, c = dx.shape
    groups = cols.shape[3]
    dxv = dx.reshape(n, h, w, groups, c // groups)
    for i, j, (ho, wo), (hi, wi) in window.taps((h, w), cols.shape[1:3]):
        dxv[:, hi, wi] += cols[:, ho, wo, :, i, j, :]


def columns(x, window: Window, groups: int, out_hw) -> Iterator[tuple[int, int, object]]:
    """Per batch chunk of NHWC ``x``: (start, stop, columns as a (G, rows, kh*kw*Cg) view).

    A 1x1 window without padding needs no copy at stride 1 (the input is the column
    matrix) and one subsampling copy otherwise.
    """
    xp = xp_of(x)
    n, h, w, c = x.shape
    if window.pointwise:
        if window.stride != (1, 1):
            x = xp.ascontiguousarray(x[:, :: window.stride[0], :: window.stride[1]])
        yield 0, n, group_rows(x, groups)
        return
    kh, kw = window.kernel
    per_item = out_hw[0] * out_hw[1] * kh * kw * c * x.itemsize
    chunks = batch_chunks(n, per_item)
    step = chunks[0][1] - chunks[0][0]
    buf = column_buffer(xp, step, c, groups, window, (h, w), out_hw, x.dtype, zero_pad=True)
    k = kh * kw * (c // groups)
    for a, b in chunks:
        cols = buf[: b - a]
        im2col(x[a:b], cols, window)
        yield a, b, cols.reshape(-1, groups, k).transpose(1, 0, 2)
