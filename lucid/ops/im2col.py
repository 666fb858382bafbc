"""im2col / col2im on channels-last (NHWC) memory, in batch chunks.

The column matrix of a convolution has one row per output position and, per
group, one column per (tap i, tap j, input channel). Columns are laid out
group-major, (G, n, Ho, Wo, kh, kw, Cg): each group's block is a contiguous
(rows, kh*kw*Cg) matrix that a batched GEMM over the groups axis reads in place
(rows of a group strided by the other groups' columns made OpenBLAS 3x slower
on ResNeXt's narrow groups).

im2col is ONE copy per batch chunk: a strided view of the zero-padded input shows
every window as (G, kh, kw, Cg), and copying that view fills the columns. In NHWC
memory the copies move whole runs of channels (docs/design.md, "Performance"); without groups and
dilation the kw taps of a kernel row are even one contiguous run of kw*C values.

The batch is processed in chunks whose column buffer stays near ``CHUNK_BYTES``
(and holds at least ``MIN_ROWS`` GEMM rows): the full matrix of a ResNet layer is
hundreds of MB; a chunk's is reused for every chunk and never kept for backward
(recomputing it costs less than holding it). On the CPU each thread of a convolution
walks its own share of the batch (``lucid.ops.blocked.map_batch``) with its own
buffer, small enough to stay in that core's cache between the copy and the GEMM
that reads it; these functions run in the calling thread.
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from lucid._backend import get_array_module
from lucid.ops.blocked import map_row_blocks
from lucid.ops.window import Window

CHUNK_BYTES = 1 << 21  # columns per chunk and thread on the CPU: about one core's L2 cache
GPU_CHUNK_BYTES = 1 << 26  # on the GPU: few, large GEMMs
MIN_ROWS = 256  # GEMM rows per chunk at least: fewer make BLAS slow


def batch_chunks(start: int, stop: int, bytes_per_item: int, rows_per_item: int, xp,
                 least_bytes: int = 0) -> list[tuple[int, int]]:
    """Consecutive [a, b) ranges of the images [start, stop) whose columns fit the chunk size.

    ``least_bytes`` raises the size: a GEMM packs its weight operand once per call, so
    a chunk's columns should outweigh the weights (ResNet's deep layers: 9 MiB weights,
    small images).
    """
    budget = max(CHUNK_BYTES if xp is np else GPU_CHUNK_BYTES, least_bytes)
    step = max(1, budget // max(bytes_per_item, 1), -(-MIN_ROWS // max(rows_per_item, 1)))
    return [(a, min(a + step, stop)) for a in range(start, stop, step)]


class ChunkBuffer:
    """One reusable buffer for group-major column chunks (G, n, ...) of up to ``step`` images.

    A chunk of fewer images is a contiguous prefix, so ``(G, rows, K)`` reshapes never copy.
    """

    def __init__(self, shape, step: int, dtype, xp):
        self.tail = shape[2:]
        self.groups = shape[0]
        self.flat = xp.empty(self.groups * step * math.prod(self.tail), dtype)

    def take(self, images: int):
        shape = (self.groups, images) + self.tail
        return self.flat[: math.prod(shape)].reshape(shape)


def group_rows(a, groups: int):
    """(n, h, w, G*c) contiguous array as a (G, n*h*w, c) view: one (strided) matrix per group."""
    return a.reshape(-1, groups, a.shape[-1] // groups).transpose(1, 0, 2)


def group_major(a, groups: int):
    """(n, h, w, G*c) contiguous array as a contiguous (G, n*h*w, c) array (a copy unless G = 1).

    Channel runs move as wide elements where possible; row blocks go to the cores.
    """
    if groups == 1:
        return a.reshape(1, -1, a.shape[-1])
    xp = get_array_module(a)
    rows, c = a.size // a.shape[-1], a.shape[-1]
    out = xp.empty((groups, rows, c // groups), a.dtype)
    src, dst = a.reshape(rows, groups, c // groups), out
    wide = wide_dtype(xp, (c // groups) * a.itemsize)
    if wide is not None:
        src, dst = src.view(wide), dst.view(wide)

    def copy(r0, r1):
        dst[:, r0:r1] = src[r0:r1].transpose(1, 0, 2)

    map_row_blocks(copy, rows, c * a.itemsize, xp)
    return out


def wide_dtype(xp, nbytes: int):
    """The widest of complex128 (16 bytes) and float64 (8 bytes) that tiles ``nbytes``, or None."""
    return next((t for t in (xp.complex128, xp.float64) if nbytes % xp.dtype(t).itemsize == 0), None)


def column_shape(n: int, channels: int, groups: int, window: Window, out_hw) -> tuple:
    return (groups, n, out_hw[0], out_hw[1], window.kernel[0], window.kernel[1], channels // groups)


def col2im(cols, dx, window: Window) -> None:
    """Adjoint of im2col: add every tap's columns (G, n, Ho, Wo, kh, kw, Cg) into NHWC ``dx`` in place.

    One strided slice-add per tap.
    """
    n, h, w, c = dx.shape
    groups = cols.shape[0]
    dxv = dx.reshape(n, h, w, groups, c // groups)
    for i, j, (ho, wo), (hi, wi) in window.taps((h, w), cols.shape[2:4]):
        dxv[:, hi, wi] += cols[:, :, ho, wo, i, j, :].transpose(1, 2, 3, 0, 4)


def columns(x, window: Window, groups: int, out_hw, start: int = 0, stop: int | None = None,
            least_bytes: int = 0) -> Iterator[tuple[int, int, object]]:
    """Per chunk of the images [start, stop) of NHWC ``x``: (a, b, columns as a (G, rows, kh*kw*Cg) view).

    A 1x1 window without padding needs no copy at stride 1 (the input is the column
    matrix) and one subsampling copy otherwise. The yielded view is overwritten by
    the next chunk. ``least_bytes``: see ``batch_chunks``.
    """
    xp = get_array_module(x)
    n, h, w, c = x.shape
    stop = n if stop is None else stop
    if window.pointwise:
        part = x[start:stop]
        if window.stride != (1, 1):
            part = xp.ascontiguousarray(part[:, :: window.stride[0], :: window.stride[1]])
        yield start, stop, group_rows(part, groups)
        return
    shape = column_shape(n, c, groups, window, out_hw)
    chunks = batch_chunks(start, stop, x.itemsize * math.prod(shape) // max(n, 1), out_hw[0] * out_hw[1], xp,
                          least_bytes)
    if not chunks:
        return
    step = chunks[0][1] - chunks[0][0]
    padded = PaddedChunks(x, window, out_hw, step)
    buf = ChunkBuffer(shape, step, x.dtype, xp)
    k = shape[4] * shape[5] * shape[6]
    for a, b in chunks:
        cols = buf.take(b - a)
        copy_windows(padded.chunk(a, b), cols, window)
        yield a, b, cols.reshape(groups, -1, k)


class PaddedChunks:
    """Batch chunks of NHWC ``x`` with the zero border (or cropping) that a window reads.

    Row r of a chunk is input row r - padding; the chunk spans every row and column
    the windows read. The zero border is written once and the interior per chunk;
    without padding the chunks are plain slices of ``x``.
    """

    def __init__(self, x, window: Window, out_hw, step: int):
        n, h, w, c = x.shape
        self.x = x
        ext = [(o - 1) * s + (k - 1) * d + 1 for o, s, k, d in zip(out_hw, window.stride, window.kernel, window.dilation)]
        (ph, pw), (hp, wp) = window.padding, ext
        self.direct = ph == 0 and pw == 0 and hp <= h and wp <= w
        if not self.direct:
            self.buf = get_array_module(x).zeros((step, hp, wp, c), x.dtype)
            self.dst = (slice(max(0, ph), min(hp, h + ph)), slice(max(0, pw), min(wp, w + pw)))
            self.src = (slice(max(0, -ph), min(hp, h + ph) - ph), slice(max(0, -pw), min(wp, w + pw) - pw))

    def chunk(self, a: int, b: int, at: int = 0):
        """Images [a, b) of x, padded into the buffer's images [at, at + b - a)."""
        if self.direct:
            return self.x[a:b]
        out = self.buf[at : at + b - a]
        out[:, self.dst[0], self.dst[1]] = self.x[a:b, self.src[0], self.src[1]]
        return out


def copy_windows(src, cols, window: Window) -> None:
    """cols[g, n, h, w, i, j, :] = src[n, h*sh + i*dh, w*sw + j*dw, group g] for a padded NHWC chunk."""
    xp = get_array_module(src)
    groups, n, ho, wo, kh, kw, cg = cols.shape
    sn, sy, sx, _ = src.strides
    (sh, sw), (dh, dw) = window.stride, window.dilation
    as_strided = xp.lib.stride_tricks.as_strided
    if groups == 1 and dw == 1:  # a kernel row is one contiguous run of kw*C values
        view = as_strided(src, (n, ho, wo, kh, kw * cg), (sn, sh * sy, sw * sx, dh * sy, src.itemsize))
        cols.reshape(view.shape)[...] = view
        return
    # Copy runs of Cg channels as few wide elements (e.g. 4 float32 as one 16-byte complex128).
    wide = wide_dtype(xp, cg * src.itemsize)
    if wide is None or not src.flags.c_contiguous or not (xp is np or cols.flags.c_contiguous):
        wide, units = src.dtype, cg
    else:
        units = cg * src.itemsize // xp.dtype(wide).itemsize
        src, cols = src.view(wide), cols.view(wide)
    item = src.itemsize
    view = as_strided(
        src, (groups, n, ho, wo, kh, kw, units), (units * item, sn, sh * sy, sw * sx, dh * sy, dw * sx, item)
    )
    cols[...] = view
