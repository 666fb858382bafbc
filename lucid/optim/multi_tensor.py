"""Multi-tensor apply on the GPU: one fused kernel updates every parameter of a group.

Updating parameter by parameter costs a handful of kernel launches per parameter (~13
for SGD with momentum and weight decay: ~2,100 per ResNet-50 step). PyTorch's
``foreach``/``fused`` optimizers batch them; here a parameter group on one GPU keeps
its parameters and their optimizer state in flat buffers: each ``p.data`` (and each
state Tensor, e.g. ``momentum_buffer``) is a view of its segment, in the memory layout
it had. A step then gathers the gradients into a flat buffer with one ``concatenate``
(CuPy copies more than 8 arrays of one dtype in one kernel) and runs ONE ``cupy.fuse``
kernel over the flat arrays: two launches per group, whatever the number of parameters.

Each step checks that the parameters and state still are those views; one that was
replaced (``load_state_dict``, ``set_data``) is copied in and viewed again. A group the
fused kernel cannot take as a whole (CPU, parameters on several devices or dtypes, a
parameter without a gradient, state present for some parameters only, AdamW step
counts that differ, a subclass) takes the per-parameter path of its optimizer. The
arithmetic is the per-parameter path's, op for op, with the hyper-parameters as scalars
of the parameters' dtype.
"""
from __future__ import annotations

import numpy as np

from lucid import _backend
from lucid.ops import gpu_fused
from lucid.tensor import Tensor


class NotFlat(Exception):
    """A group the fused kernel cannot take whole this step (it takes the per-parameter path)."""


def _layout_view(flat, like):
    """A view of 1-D ``flat`` shaped like ``like`` with ``like``'s memory order (C order if it has none)."""
    order = sorted(range(like.ndim), key=lambda i: -like.strides[i])
    t = like.transpose(order)
    if not t.flags.c_contiguous:
        return flat.reshape(like.shape), list(range(like.ndim))
    return flat.reshape(t.shape).transpose([order.index(i) for i in range(like.ndim)]), order


class FlatGroup:
    """The parameters of one group, and named state buffers, as views of flat arrays."""

    def __init__(self, params: list[Tensor], xp):
        self.params = params
        self.shapes = [p.shape for p in params]
        self.device = params[0].device
        self.xp = xp
        sizes = [p.data.size for p in params]
        self.bounds = list(zip(np.cumsum([0] + sizes[:-1]).tolist(), np.cumsum(sizes).tolist()))
        self.flat = xp.empty(sum(sizes), params[0].dtype)
        self.views, self.orders = [], []
        for p, (a, b) in zip(params, self.bounds):
            view, order = _layout_view(self.flat[a:b], p.data)
            self.views.append(view)
            self.orders.append(order)
        self.grad = xp.empty_like(self.flat)
        self.state: dict[str, tuple] = {}  # name -> (flat array, [views])

    def fits(self, params: list[Tensor]) -> bool:
        """Whether ``params`` are still this group's parameters, with their shapes, dtype and device."""
        if len(params) != len(self.params):
            return False
        return all(p is q and p.shape == s and p.dtype == self.flat.dtype and p.device == self.device
                   for p, q, s in zip(params, self.params, self.shapes))

    def adopt_params(self) -> None:
        """Point every parameter at its view, copying values that live elsewhere now."""
        for p, view in zip(self.params, self.views):
            if p.data is not view:
                view[...] = p.data
                p.data = view

    def state_views(self, name: str, states: list[dict], fill: float | None) -> bool:
        """Make ``state[name]`` of every parameter a view of one flat buffer.

        Missing everywhere: the buffer is created (``fill`` value, or left for the kernel
        to write when None) and True is returned ("fresh"). Values held elsewhere are
        copied in. Missing for some parameters only: NotFlat (the caller falls back).
        """
        present = [name in s for s in states]
        if any(present) and not all(present):
            raise NotFlat(f"optimizer state {name!r} exists for some parameters only")
        if name not in self.state:
            xp = self.xp
            flat = xp.empty_like(self.flat)
            self.state[name] = (flat, [_layout_view(flat[a:b], p.data)[0] for p, (a, b) in zip(self.params, self.bounds)])
        flat, views = self.state[name]
        if not any(present):
            if fill is not None:
                flat.fill(fill)
            for p, s, v in zip(self.params, states, views):
                s[name] = Tensor._wrap(v, p.device)
            return True
        for p, s, v in zip(self.params, states, views):
            if s[name].data is not v:
                v[...] = s[name].data
                s[name] = Tensor._wrap(v, p.device)
        return False

    def gather_grads(self):
        """The gradients, in the parameters' memory order, in the flat gradient buffer (one concatenate)."""
        parts = [p.grad.data.transpose(o).reshape(-1) for p, o in zip(self.params, self.orders)]
        xp = self.xp
        xp.concatenate(parts, out=self.grad)
        return self.grad


def _sgd_kernel(xp, has_wd: bool, maximize: bool, momentum: bool, first: bool, damp: bool, nesterov: bool):
    def sgd(p, g, buf, lr, wd, mu, one_minus_damp):
        d = g
        if has_wd:
            d = p * wd - g if maximize else p * wd + g
        elif maximize:
            d = -g
        if momentum:
            if first:
                buf[...] = d
            else:
                buf *= mu
                buf += d * one_minus_damp if damp else d
            d = buf * mu + d if nesterov else buf
        p -= d * lr

    return sgd


def _adamw_kernel(xp, decay: bool, maximize: bool, amsgrad: bool):
    def adamw(p, g, m, v, vmax, decay_factor, one_minus_beta1, beta2, one_minus_beta2, bias2_sqrt, eps, step_size):
        if decay:
            p *= decay_factor
        if maximize:
            m += (g + m) * -one_minus_beta1
        else:
            m += (g - m) * one_minus_beta1
        v *= beta2
        v += g * g * one_minus_beta2
        if amsgrad:
            vmax[...] = xp.maximum(vmax, v)
            v = vmax
        denom = xp.sqrt(v) / bias2_sqrt + eps
        p -= m / denom * step_size

    return adamw


gpu_fused.register("sgd_flat", _sgd_kernel)
gpu_fused.register("adamw_flat", _adamw_kernel)


def sgd_step(opt, flat: FlatGroup, group: dict, states: list[dict], scalar) -> None:
    mu = group["momentum"]
    buf = 0.0
    first = False
    if mu != 0:
        first = flat.state_views("momentum_buffer", states, None)
        buf = flat.state["momentum_buffer"][0]
    variant = (group["weight_decay"] != 0, bool(group["maximize"]), mu != 0, first, group["dampening"] != 0,
               bool(group["nesterov"]))
    fn = gpu_fused.kernel(flat.xp, "sgd_flat", *variant)
    fn(flat.flat, flat.gather_grads(), buf, scalar(group["lr"]), scalar(group["weight_decay"]), scalar(mu),
       scalar(1 - group["dampening"]))


def adamw_step(opt, flat: FlatGroup, group: dict, states: list[dict], scalar) -> None:
    steps = {s.get("step", 0) for s in states}
    if len(steps) != 1:
        raise NotFlat(f"AdamW step counts differ within the group: {sorted(steps)}")
    names = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())
    for name in names:
        flat.state_views(name, states, 0.0)
    step = steps.pop() + 1
    for s in states:
        s["step"] = step
    beta1, beta2 = group["betas"]
    decay = 1 - group["lr"] * group["weight_decay"]
    m, v = flat.state["exp_avg"][0], flat.state["exp_avg_sq"][0]
    vmax = flat.state["max_exp_avg_sq"][0] if group["amsgrad"] else 0.0
    fn = gpu_fused.kernel(flat.xp, "adamw_flat", decay != 1, bool(group["maximize"]), bool(group["amsgrad"]))
    fn(flat.flat, flat.gather_grads(), m, v, vmax, scalar(decay), scalar(1 - beta1), scalar(beta2), scalar(1 - beta2),
       scalar(np.sqrt(1 - beta2**step)), scalar(group["eps"]), scalar(group["lr"] / (1 - beta1**step)))


_STEPPERS: dict = {}


def register_flat_step(cls: type, stepper) -> None:
    """Update groups of optimizer class ``cls`` (exactly, not subclasses) with ``stepper`` on GPUs.

    ``stepper(opt, flat_group, group, states, scalar)`` runs the fused kernel; it raises
    NotFlat, before changing anything, for a group it cannot take whole.
    """
    _STEPPERS[cls] = stepper


def step_group(opt, group: dict) -> bool:
    """Update ``group`` with the fused multi-tensor kernel; False (nothing done) when it cannot."""
    stepper = _STEPPERS.get(type(opt))
    params = group["params"]
    if stepper is None or not params or any(p.grad is None for p in params):
        return False
    first = params[0]
    xp = _backend.get_array_module(first.data)
    if not gpu_fused.use_fused(xp) or any(p.device != first.device or p.dtype != first.dtype for p in params):
        return False
    if any(p.grad.data.shape != p.data.shape or p.grad.device != first.device for p in params):
        return False
    flats = opt.__dict__.setdefault("_multi_tensor", {})
    with _backend.on_device(first.device):
        flat = flats.get(id(group))
        if flat is None or not flat.fits(params):
            flat = flats[id(group)] = FlatGroup(list(params), xp)
        states = [opt.state[p] for p in params]
        try:
            flat.adopt_params()
            dtype = first.dtype
            stepper(opt, flat, group, states, lambda v: np.dtype(dtype).type(v))
        except NotFlat:
            return False
    return True
