"""2-D pooling on channels-last memory: max_pool2d, avg_pool2d, adaptive_avg_pool2d.

Every kernel walks the kernel taps (``Window.taps``): one strided NHWC block per
tap, each moving whole runs of channels. Padding is never materialised: a tap
simply skips the output positions whose input would be padding.
"""
from __future__ import annotations

import numpy as np

from lucid import _backend
from lucid._backend import get_array_module
from lucid.autograd.function import Function
from lucid.ops import aligned
from lucid.ops.blocked import map_row_blocks
from lucid.ops.layout import from_nhwc, to_nhwc
from lucid.ops.window import Window, adaptive_bins, pair


class MaxPool2d(Function):
    """Max over each window; the gradient goes to the first maximum in row-major window order (as PyTorch).

    Both passes run image by image (``map_row_blocks`` over the batch axis) so the
    per-tap temporaries stay in cache and images are shared among the cores.
    """

    def forward(self, x, *, window: Window, out_hw):
        xp = get_array_module(x)
        xh = to_nhwc(x)
        n, h, w, c = xh.shape
        out = aligned.empty((n, out_hw[0], out_hw[1], c), x.dtype, xp)
        taps = [t[2:] for t in window.taps((h, w), out_hw)]
        full = [t for t in taps if t[0] == (slice(0, out_hw[0]), slice(0, out_hw[1]))]
        rest = [t for t in taps if t is not (full[0] if full else None)]

        def block(a, b):
            o, xb = out[a:b], xh[a:b]
            if full:  # a tap that every window holds starts the running max
                (hi, wi) = full[0][1]
                o[...] = xb[:, hi, wi]
            else:
                o.fill(-xp.inf)
            for (ho, wo), (hi, wi) in rest:
                ob = o[:, ho, wo]
                xp.maximum(ob, xb[:, hi, wi], out=ob)

        map_row_blocks(block, n, h * w * c * x.itemsize, xp)
        self.window = window
        self.save_for_backward(xh, out)
        return from_nhwc(out)

    def backward(self, g):
        """Per tap: positions equal to the window max take what is left of the gradient.

        ``left`` holds each output's gradient until a tap claims it, so among tied
        maxima only the first one (in tap order) receives it.
        """
        xh, out = self.saved
        xp = get_array_module(xh)
        gy = to_nhwc(g)
        dx = xp.zeros_like(xh)
        taps = [t[2:] for t in self.window.taps(xh.shape[1:3], out.shape[1:3])]

        def block(a, b):
            xb, ob, dxb = xh[a:b], out[a:b], dx[a:b]
            left = gy[a:b].copy()
            routed = xp.empty_like(ob)
            for k, ((ho, wo), (hi, wi)) in enumerate(taps):
                rk, lk = routed[:, ho, wo], left[:, ho, wo]
                xp.equal(xb[:, hi, wi], ob[:, ho, wo], out=rk)  # the hit mask as 0.0 / 1.0
                rk *= lk  # a float multiply: faster than float * bool
                dxb[:, hi, wi] += rk
                if k + 1 < len(taps):
                    lk -= rk

        map_row_blocks(block, xh.shape[0], xh[0].size * xh.itemsize, xp)
        return from_nhwc(dx)


class AvgPool2d(Function):
    """Mean over each window; ``scale`` is 1/divisor, a scalar or an (Ho, Wo, 1) array.

    Image blocks on all cores, as MaxPool2d.
    """

    def forward(self, x, *, window: Window, out_hw, scale):
        xp = get_array_module(x)
        xh = to_nhwc(x)
        out = xp.zeros((x.shape[0], out_hw[0], out_hw[1], x.shape[1]), x.dtype)
        taps = [t[2:] for t in window.taps(xh.shape[1:3], out_hw)]

        def block(a, b):
            o = out[a:b]
            for (ho, wo), (hi, wi) in taps:
                o[:, ho, wo] += xh[a:b, hi, wi]
            o *= scale

        map_row_blocks(block, xh.shape[0], xh[0].nbytes, xp)
        self.window, self.scale, self.in_hw = window, scale, xh.shape[1:3]
        return from_nhwc(out)

    def backward(self, g):
        gy = to_nhwc(g)
        xp = get_array_module(gy)
        dx = xp.zeros((gy.shape[0], self.in_hw[0], self.in_hw[1], gy.shape[3]), gy.dtype)
        taps = [t[2:] for t in self.window.taps(self.in_hw, gy.shape[1:3])]

        def block(a, b):
            gs = gy[a:b] * self.scale
            for (ho, wo), (hi, wi) in taps:
                dx[a:b, hi, wi] += gs[:, ho, wo]

        map_row_blocks(block, gy.shape[0], dx[0].nbytes, xp)
        return from_nhwc(dx)


class AdaptiveAvgPool2d(Function):
    """Mean over PyTorch's adaptive bins; global pooling is a plain mean over H and W."""

    def forward(self, x, *, out_hw):
        xh = to_nhwc(x)
        n, h, w, c = xh.shape
        self.in_hw, self.out_hw = (h, w), out_hw
        if h % out_hw[0] == 0 and w % out_hw[1] == 0:  # equal bins, global pooling included
            kh, kw = h // out_hw[0], w // out_hw[1]
            out = xh.reshape(n, out_hw[0], kh, out_hw[1], kw, c).mean(axis=(2, 4))
            return from_nhwc(out)
        out = get_array_module(x).empty((n, out_hw[0], out_hw[1], c), x.dtype)
        for i, (h0, h1) in enumerate(adaptive_bins(h, out_hw[0])):
            for j, (w0, w1) in enumerate(adaptive_bins(w, out_hw[1])):
                out[:, i, j] = xh[:, h0:h1, w0:w1].mean(axis=(1, 2))
        return from_nhwc(out)

    def backward(self, g):
        gy = to_nhwc(g)
        xp = get_array_module(gy)
        n, _, _, c = gy.shape
        (h, w), (oh, ow) = self.in_hw, self.out_hw
        if h % oh == 0 and w % ow == 0:
            kh, kw = h // oh, w // ow
            spread = (gy * (1.0 / (kh * kw)))[:, :, None, :, None, :]
            return from_nhwc(xp.broadcast_to(spread, (n, oh, kh, ow, kw, c)).reshape(n, h, w, c))
        dx = xp.zeros((n, h, w, c), gy.dtype)
        for i, (h0, h1) in enumerate(adaptive_bins(h, oh)):
            for j, (w0, w1) in enumerate(adaptive_bins(w, ow)):
                dx[:, h0:h1, w0:w1] += gy[:, i : i + 1, j : j + 1] * (1.0 / ((h1 - h0) * (w1 - w0)))
        return from_nhwc(dx)


# -- argument checks and geometry -----------------------------------------------------
def _check_4d(op: str, x) -> None:
    if x.ndim != 4:
        raise ValueError(f"{op}: expected 4-D input (N, C, H, W), got {x.ndim}-D input of shape {tuple(x.shape)}")


def _pool_window(op: str, x, kernel_size, stride, padding, dilation, ceil_mode: bool):
    """Window and output size of a pooling op, with PyTorch's argument rules."""
    _check_4d(op, x)
    kernel = pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None or stride == () else pair(stride, "stride", op)
    padding, dilation = pair(padding, "padding", op), pair(dilation, "dilation", op)
    if min(kernel) < 1 or min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise ValueError(
            f"{op}: kernel_size {kernel}, stride {stride} and dilation {dilation} must be positive "
            f"and padding {padding} non-negative"
        )
    window = Window(kernel, stride, padding, dilation)
    if any(p > e // 2 for p, e in zip(padding, window.extent())):
        raise ValueError(f"{op}: padding {padding} must be at most half of the (dilated) kernel size {window.extent()}")
    out_hw = window.output_shape(x.shape[2:], ceil_mode)
    if min(out_hw) < 1:
        raise ValueError(f"{op}: input of shape {tuple(x.shape)} is too small for window {window} (output {out_hw})")
    return window, out_hw


def _avg_scale(window: Window, in_hw, out_hw, count_include_pad: bool, divisor_override, dtype):
    """1/divisor per output position as PyTorch counts it: a Python float when all are equal."""
    if divisor_override is not None:
        if divisor_override == 0:
            raise ValueError("avg_pool2d: divisor_override must not be zero")
        return 1.0 / divisor_override
    sizes = []
    for n, k, s, p, o in zip(in_hw, window.kernel, window.stride, window.padding, out_hw):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)
        if count_include_pad:
            sizes.append(end - start)
        else:
            sizes.append(np.minimum(end, n) - np.maximum(start, 0))
    counts = np.multiply.outer(sizes[0], sizes[1])
    if (counts == counts.flat[0]).all():
        return 1.0 / float(counts.flat[0])
    return (1.0 / counts).astype(dtype)[:, :, None]


# -- public functions ---------------------------------------------------------------
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False):  # shadows a builtin: torch names
    """Max pooling over an NCHW-shaped input (PyTorch's F.max_pool2d); padding counts as -inf."""
    window, out_hw = _pool_window("max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode)
    return MaxPool2d.apply(input, window=window, out_hw=out_hw)


def avg_pool2d(
    input,  # shadows a builtin: torch names
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
):
    """Average pooling over an NCHW-shaped input (PyTorch's F.avg_pool2d)."""
    window, out_hw = _pool_window("avg_pool2d", input, kernel_size, stride, padding, 1, ceil_mode)
    scale = _avg_scale(window, input.shape[2:], out_hw, count_include_pad, divisor_override, input.dtype)
    if not isinstance(scale, float):
        scale = _backend.to_device(scale, input.device)
    return AvgPool2d.apply(input, window=window, out_hw=out_hw, scale=scale)


def adaptive_avg_pool2d(input, output_size):  # shadows a builtin: torch names
    """Average pooling to a fixed output size (PyTorch's F.adaptive_avg_pool2d); None keeps that input size."""
    _check_4d("adaptive_avg_pool2d", input)
    sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size, output_size)
    if len(sizes) != 2:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be an int or a pair, got {output_size!r}")
    out_hw = tuple(n if s is None else int(s) for s, n in zip(sizes, input.shape[2:]))
    if min(out_hw) < 1:
        raise ValueError(f"adaptive_avg_pool2d: output_size {out_hw} must be positive")
    return AdaptiveAvgPool2d.apply(input, out_hw=out_hw)
