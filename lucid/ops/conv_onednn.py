"""Float32 CPU convolutions on oneDNN: the same three kernels as ``lucid.ops.conv``'s GEMM path.

Activations stay in lucid's channels-last (NHWC) memory, which oneDNN reads and writes in
place. Weights go through a reorder into the blocked layout oneDNN's kernels want (and
the weight gradient back), as PyTorch does for a plain-tensor convolution. The three
primitives of one convolution shape (forward, input gradient, weight gradient) are built
once and kept in a ``Plans`` cache.

Used when ``onednn.enabled()`` says so (see its docstring); float64 and the GPU always take the
GEMM path, which stays the reference the tests compare this one with.
"""
from __future__ import annotations

import numpy as np

from lucid.ops import aligned, onednn
from lucid.ops.window import Window


def describe() -> str:
    """Which convolution kernels float32 CPU work gets, for benchmark and log lines."""
    if not onednn.enabled():
        if onednn.available():
            return "GEMM path; oneDNN off (LUCID_ONEDNN=0 or onednn.set_enabled(False))"
        return f"GEMM path; {onednn.unavailable_reason()}"
    return f"oneDNN {onednn.version()} where faster, else the GEMM path"


MANY_GROUPS = 8  # from here on the weight gradient runs on oneDNN (see kernels())


def weight_on_onednn(groups: int, implementation: str) -> bool:
    """Whether a weight gradient that oneDNN would run with ``implementation`` goes to oneDNN.

    Its AVX-512 kernels beat the GEMM path's weight gradient on every ResNet layer measured
    (1.1-1.8x, OpenBLAS SkylakeX); its AVX2 kernel loses to it on dense convolutions and
    ResNeSt's 2 groups (1.1-2x) and wins only from MANY_GROUPS groups on. Never an im2col +
    GEMM implementation of oneDNN's own. The choice depends on the CPU only, so every rank
    of a run on one kind of machine computes its gradients with the same kernels.
    """
    if "gemm" in implementation:
        return False
    return groups >= MANY_GROUPS or "avx512" in implementation


def kernels(x, weight, window: Window, groups: int, out_hw) -> frozenset:
    """Which of a convolution's kernels ('forward', 'input', 'weight') run on oneDNN; empty: none.

    Only NumPy float32 operands, when ``onednn.enabled()``. Per kernel, the faster of oneDNN and the
    GEMM path as measured on ResNet layers (docs/performance.md): oneDNN unless the
    implementation it picks is itself im2col + GEMM (grouped convolutions with 4 channels
    per group: their forward runs with pairs of groups merged, see ``ConvPlan.paired``);
    the weight gradient where ``weight_on_onednn`` says (AVX-512 kernels; AVX2 ones only
    from MANY_GROUPS groups on). None in a forked child of a process that loaded oneDNN.
    """
    if not (type(x) is np.ndarray and x.dtype == np.float32 and weight.dtype == np.float32 and onednn.runnable()):
        return frozenset()
    n, c, h, w = x.shape
    return plan_for((n, h, w, c), weight.shape, groups, window, out_hw).kernels


def plan_for(x_shape, w_shape, groups: int, window: Window, out_hw, plans: "onednn.Plans | None" = None) -> "ConvPlan":
    """The cached ConvPlan that runs a convolution of NHWC ``x_shape`` (strided 1x1: see UNIT)."""
    x_shape, window = _effective(x_shape, window, out_hw)
    return (PLANS if plans is None else plans).get(tuple(x_shape), tuple(w_shape), groups, window, tuple(out_hw))


def _nhwc_desc(n: int, c: int, h: int, w: int) -> onednn.Desc:
    return onednn.Desc((n, c, h, w), (h * w * c, 1, w * c, c))


class ConvPlan:
    """oneDNN primitives of one convolution shape; the backward ones and a forward with bias on first use."""

    def __init__(self, x_shape, w_shape, groups: int, window: Window, out_hw):
        n, h, w, c = x_shape
        o, cg, kh, kw = w_shape
        self.groups, self.w_shape = groups, w_shape
        self.x_shape, self.window, self.out_hw = x_shape, window, out_hw
        wdims = (o, cg, kh, kw) if groups == 1 else (groups, o // groups, cg, kh, kw)
        self.plain_w = onednn.Desc(wdims, _contiguous_strides(wdims))
        self.src = _nhwc_desc(n, c, h, w)
        self.dst = _nhwc_desc(n, o, out_hw[0], out_hw[1])
        # Right padding as oneDNN counts it: the output size is floor((size + pl + pr - extent) / s) + 1,
        # so any pr in [exact, exact + s - 1] fits; the weight gradient went wrong with a negative one.
        pad_r = []
        for out, s, k, d, size, p in zip(out_hw, window.stride, window.kernel, window.dilation, (h, w), window.padding):
            exact = (out - 1) * s + (k - 1) * d + 1 - size - p
            pad_r.append(0 if exact < 0 <= exact + s - 1 else exact)
        self.geometry = (onednn.dims(window.stride), onednn.dims([d - 1 for d in window.dilation]),
                         onednn.dims(window.padding), onednn.dims(pad_r))
        self.any_w = onednn.Desc(wdims)
        self.forward = self._forward_primitive(None)
        self.bias = self._biased = self._data = self._weights = None
        self._reorders = {}
        self._kernels = self._paired = None

    @property
    def kernels(self) -> frozenset:
        """The kernels worth running on oneDNN for this shape (see ``kernels()``)."""
        if self._kernels is None:
            chosen = set()
            if "gemm" not in self.forward.implementation() or self.paired is not None:
                chosen.add("forward")
            if "gemm" not in self.data.implementation():
                chosen.add("input")
            if weight_on_onednn(self.groups, self.weights.implementation()):
                chosen.add("weight")
            self._kernels = frozenset(chosen)
        return self._kernels

    @property
    def paired(self) -> "ConvPlan | None":
        """This convolution with each two neighbouring groups merged (see ``paired_weight``), or None.

        Only where oneDNN runs this forward as im2col + GEMM and the merged one directly:
        oneDNN 3.2 has no direct kernel for 4 channels per group (ResNeXt's first stage),
        and the merged convolution does twice the multiply-adds at about 4x the speed.
        """
        if self._paired is None:
            self._paired = False
            if self.groups % 2 == 0 and "gemm" in self.forward.implementation():
                o, cg, kh, kw = self.w_shape
                merged = ConvPlan(self.x_shape, (o, 2 * cg, kh, kw), self.groups // 2, self.window, self.out_hw)
                if "gemm" not in merged.forward.implementation():
                    self._paired = merged
        return self._paired or None

    def _forward_primitive(self, bias):
        return onednn.Primitive(
            "dnnl_convolution_forward_primitive_desc_create", onednn.FORWARD_TRAINING, onednn.CONVOLUTION_DIRECT,
            self.src.handle, self.any_w.handle, bias, self.dst.handle, *self.geometry, None)

    @property
    def biased(self) -> onednn.Primitive:
        """The forward that also adds a bias (``self.bias`` describes it)."""
        if self._biased is None:
            self.bias = onednn.Desc((self.w_shape[0],), (1,))
            self._biased = self._forward_primitive(self.bias.handle)
        return self._biased

    @property
    def data(self) -> onednn.Primitive:
        if self._data is None:
            self._data = onednn.Primitive(
                "dnnl_convolution_backward_data_primitive_desc_create", onednn.CONVOLUTION_DIRECT,
                self.src.handle, self.any_w.handle, self.dst.handle, *self.geometry, self.forward.pd, None)
        return self._data

    @property
    def weights(self) -> onednn.Primitive:
        if self._weights is None:
            self._weights = onednn.Primitive(
                "dnnl_convolution_backward_weights_primitive_desc_create", onednn.CONVOLUTION_DIRECT,
                self.src.handle, self.any_w.handle, None, self.dst.handle, *self.geometry, self.forward.pd, None)
        return self._weights

    def reorder(self, src_md, dst_md, src, dst) -> None:
        """dst = src in dst_md's layout (a reorder primitive per pair of layouts, kept)."""
        key = (_address(src_md), _address(dst_md))
        if key not in self._reorders:
            self._reorders[key] = onednn.Primitive("dnnl_reorder_primitive_desc_create", src_md, dst_md)
        self._reorders[key](**{"from": (src_md, src), "to": (dst_md, dst)})

    def blocked_weight(self, weight, prim: onednn.Primitive):
        """``weight`` in the layout primitive ``prim`` reads (the array itself when that is plain)."""
        md = prim.md("weights")
        if prim.lib.dnnl_memory_desc_equal(md, self.plain_w.handle):
            return weight
        out = aligned.empty(prim.size("weights") // 4)
        self.reorder(self.plain_w.handle, md, np.ascontiguousarray(weight), out)
        return out


def _address(md) -> int:
    return md.value if hasattr(md, "value") else md


def _contiguous_strides(shape) -> list[int]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return strides[::-1]


PLANS = onednn.Plans(ConvPlan)


# A strided 1x1 convolution runs as a stride-1 one over the input's sampled pixels (the copy
# the GEMM path makes too): oneDNN's strided 1x1 weight gradient (jit_1x1) gave wrong sums on
# the first call for few channels.
UNIT = Window((1, 1), (1, 1), (0, 0), (1, 1))


def _strided_pointwise(window: Window) -> bool:
    return window.pointwise and window.stride != (1, 1)


def _effective(x_shape, window: Window, out_hw):
    """(NHWC input shape, window) oneDNN runs for a convolution of ``x_shape``: see UNIT."""
    if _strided_pointwise(window):
        return (x_shape[0], *out_hw, x_shape[3]), UNIT
    return tuple(x_shape), window


def _subsampled(xh, window: Window, out_hw):
    """The pixels of NHWC ``xh`` a strided 1x1 window reads, contiguous."""
    (sh, sw), (ho, wo) = window.stride, out_hw
    return np.ascontiguousarray(xh[:, : ho * sh : sh, : wo * sw : sw])


def paired_weight(weight, groups: int):
    """(O, 2*Cg, kh, kw) weights of ``groups // 2`` groups, each two neighbouring groups' blocks on its diagonal.

    The convolution with them equals the original one: each output still sums its own
    group's inputs, the other half of its new group's inputs meets zeros.
    """
    o, cg, kh, kw = weight.shape
    blocks = weight.reshape(groups // 2, 2, o // groups, cg, kh, kw)
    out = np.zeros((groups // 2, 2, o // groups, 2, cg, kh, kw), weight.dtype)
    for i in (0, 1):
        out[:, i, :, i] = blocks[:, i]
    return out.reshape(o, 2 * cg, kh, kw)


def conv_forward(xh, weight, bias, window: Window, groups: int, out_hw, plans: onednn.Plans = PLANS):
    """NHWC (N, Ho, Wo, O) output of the convolution of contiguous NHWC ``xh``."""
    plan = plan_for(xh.shape, weight.shape, groups, window, out_hw, plans)
    if plan.paired is not None:
        plan, weight = plan.paired, paired_weight(weight, groups)
    if _strided_pointwise(window):
        xh = _subsampled(xh, window, out_hw)
    prim = plan.forward if bias is None else plan.biased
    out = aligned.empty((xh.shape[0], out_hw[0], out_hw[1], weight.shape[0]))
    args = {"src": (prim.md("src"), xh), "weights": (prim.md("weights"), plan.blocked_weight(weight, prim)),
            "dst": (prim.md("dst"), out)}
    if bias is not None:
        args["bias"] = (plan.bias.handle, np.ascontiguousarray(bias))
    prim(**args)
    return out


def conv_grad_input(gy, weight, window: Window, groups: int, x_shape, plans: onednn.Plans = PLANS):
    """dL/dinput as contiguous NHWC ``x_shape`` from contiguous NHWC ``gy``."""
    plan = plan_for(x_shape, weight.shape, groups, window, gy.shape[1:3], plans)
    prim = plan.data
    strided = _strided_pointwise(window)
    dx = aligned.empty((gy.shape[0], *gy.shape[1:3], x_shape[3]) if strided else x_shape)
    prim(diff_src=(prim.md("diff_src"), dx), weights=(prim.md("weights"), plan.blocked_weight(weight, prim)),
         diff_dst=(prim.md("diff_dst"), gy))
    if not strided:
        return dx
    (sh, sw), (ho, wo) = window.stride, gy.shape[1:3]
    full = np.zeros(x_shape, np.float32)
    full[:, : ho * sh : sh, : wo * sw : sw] = dx
    return full


def conv_grad_weight(xh, gy, window: Window, groups: int, w_shape, plans: onednn.Plans = PLANS):
    """dL/dweight, a new contiguous (O, Cg, kh, kw) array."""
    plan = plan_for(xh.shape, w_shape, groups, window, gy.shape[1:3], plans)
    if _strided_pointwise(window):
        xh = _subsampled(xh, window, gy.shape[1:3])
    prim = plan.weights
    md = prim.md("diff_weights")
    gw = aligned.empty(w_shape)
    if prim.lib.dnnl_memory_desc_equal(md, plan.plain_w.handle):
        prim(src=(prim.md("src"), xh), diff_weights=(md, gw), diff_dst=(prim.md("diff_dst"), gy))
        return gw
    blocked = aligned.empty(prim.size("diff_weights") // 4)
    prim(src=(prim.md("src"), xh), diff_weights=(md, blocked), diff_dst=(prim.md("diff_dst"), gy))
    plan.reorder(md, plan.plain_w.handle, blocked, gw)
    return gw
