"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter), as ``torch.optim.AdamW``."""
from __future__ import annotations

import math
from typing import Iterable

from lucid._backend import get_array_module
from lucid.optim import multi_tensor
from lucid.optim.optimizer import Optimizer, blocks, check_non_negative
from lucid.optim.registry import register_optimizer
from lucid.tensor import Tensor


class AdamW(Optimizer):
    """Per parameter p with gradient g (negated when ``maximize``), at step t = 1, 2, ...:

        p = p * (1 - lr * weight_decay)
        m = m + (1 - beta1) * (g - m)              (= beta1 * m + (1 - beta1) * g)
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)                      (amsgrad; used instead of v below)
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    State per parameter: ``step`` (int), ``exp_avg`` (m), ``exp_avg_sq`` (v) and, with
    amsgrad, ``max_exp_avg_sq`` (v_max), the last three Tensors like p.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        maximize: bool = False,
    ):
        check_non_negative(lr=lr, eps=eps, weight_decay=weight_decay)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"Invalid beta parameters: {betas} (two values, each in [0, 1))")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize)
        super().__init__(params, defaults)

    def _update(self, p: Tensor, grad, group: dict, state: dict) -> None:
        xp = get_array_module(p.data)
        if not state:
            state["step"] = 0
            names = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())
            for name in names:
                state[name] = Tensor._wrap(xp.zeros_like(p.data), p.device)
        state["step"] += 1
        beta1, beta2 = group["betas"]
        scalars = (
            1 - group["lr"] * group["weight_decay"],   # decay factor
            group["lr"] / (1 - beta1 ** state["step"]),  # step size
            math.sqrt(1 - beta2 ** state["step"]),      # sqrt of the second bias correction
        )
        moments = [state["exp_avg"].data, state["exp_avg_sq"].data]
        if group["amsgrad"]:
            moments.append(state["max_exp_avg_sq"].data)
        for rows in blocks(p.data):
            self._update_block(xp, p.data[rows], grad[rows], [a[rows] for a in moments], group, scalars)

    def _update_block(self, xp, p, grad, moments: list, group: dict, scalars: tuple) -> None:
        (beta1, beta2), eps = group["betas"], group["eps"]
        decay, step_size, bias2_sqrt = scalars
        m, v = moments[0], moments[1]
        s = self.scratch(p)
        if decay != 1:
            p *= decay
        # m += (1 - beta1) * (g - m); when maximising g - m = -(g + m)
        if group["maximize"]:
            m += xp.multiply(xp.add(grad, m, out=s), -(1 - beta1), out=s)
        else:
            m += xp.multiply(xp.subtract(grad, m, out=s), 1 - beta1, out=s)
        v *= beta2
        v += xp.multiply(xp.multiply(grad, grad, out=s), 1 - beta2, out=s)
        if group["amsgrad"]:
            v = xp.maximum(moments[2], v, out=moments[2])
        denom = xp.sqrt(v, out=s)
        denom /= bias2_sqrt
        denom += eps
        p -= xp.multiply(xp.divide(m, denom, out=s), step_size, out=s)


register_optimizer("adamw", AdamW)
multi_tensor.register_flat_step(AdamW, multi_tensor.adamw_step)  # GPU: whole groups in fused kernels
