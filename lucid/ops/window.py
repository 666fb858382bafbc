"""Sliding-window geometry shared by convolution and pooling.

A 2-D window has a kernel size, stride, (leading) padding and dilation per
spatial axis. For every kernel tap (i, j) ``Window.taps`` gives the block of
output positions whose tap lands inside the input, and the strided block of input
it reads; whatever a tap would read from the padding is skipped, so padding may be
asymmetric ("same") or negative (cropping), which the rotated-weight gradient of a
convolution needs. Pooling walks these taps and never pads; the convolution's
im2col instead copies each batch chunk once into a zero-bordered buffer
(``im2col.PaddedChunks``), so that its window copies are plain strided slices.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator


def pair(value, name: str, op: str) -> tuple[int, int]:
    """An int or a pair of ints as a pair; ValueError naming op and argument otherwise."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {tuple(value)}")
        a, b = value
    else:
        a = b = value
    try:
        return int(a), int(b)
    except (TypeError, ValueError):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}") from None


def output_size(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool = False) -> int:
    """Number of window positions along one axis, as PyTorch counts them.

    With ``ceil_mode`` a last partial window is kept only if it starts inside the
    input or the left padding.
    """
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    if span < 0:
        return 0
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + pad:
        out -= 1
    return out


def tap_range(out_len: int, in_len: int, tap: int, stride: int, pad: int, dilation: int) -> tuple[int, int, int]:
    """Output positions [lo, hi) whose tap ``tap`` reads inside [0, in_len), and the first input index."""
    offset = tap * dilation - pad  # input index read by output position 0
    lo = -(offset // stride) if offset < 0 else 0
    hi = min(out_len, (in_len - 1 - offset) // stride + 1) if in_len - 1 - offset >= 0 else 0
    return lo, max(lo, hi), lo * stride + offset


@dataclass(frozen=True)
class Window:
    """Kernel size, stride, leading padding and dilation, each a (height, width) pair."""

    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)

    @property
    def pointwise(self) -> bool:
        """A 1x1 window without padding: each output reads exactly one input position."""
        return self.kernel == (1, 1) and self.padding == (0, 0)

    def extent(self) -> tuple[int, int]:
        """Height and width of the input area one window covers (dilation included)."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation))

    def output_shape(self, in_hw: tuple[int, int], ceil_mode: bool = False) -> tuple[int, int]:
        return tuple(
            output_size(n, k, s, p, d, ceil_mode)
            for n, k, s, p, d in zip(in_hw, self.kernel, self.stride, self.padding, self.dilation)
        )

    def taps(self, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> Iterator[tuple]:
        """Per tap (i, j) in row-major order: (i, j, out_block, in_block) as slice pairs.

        ``out_block`` selects the output positions (H, W axes) whose tap lies inside
        the input and ``in_block`` the input positions they read. Taps that read only
        padding are left out.
        """
        for i in range(self.kernel[0]):
            hlo, hhi, hsrc = tap_range(out_hw[0], in_hw[0], i, self.stride[0], self.padding[0], self.dilation[0])
            if hhi <= hlo:
                continue
            for j in range(self.kernel[1]):
                wlo, whi, wsrc = tap_range(out_hw[1], in_hw[1], j, self.stride[1], self.padding[1], self.dilation[1])
                if whi <= wlo:
                    continue
                out_block = (slice(hlo, hhi), slice(wlo, whi))
                in_block = (
                    slice(hsrc, hsrc + (hhi - hlo - 1) * self.stride[0] + 1, self.stride[0]),
                    slice(wsrc, wsrc + (whi - wlo - 1) * self.stride[1] + 1, self.stride[1]),
                )
                yield i, j, out_block, in_block


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def adaptive_bins(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive pooling bins: [floor(i*size/out), ceil((i+1)*size/out)) per output i."""
    return [(i * size // out, ceil_div((i + 1) * size, out)) for i in range(out)]

