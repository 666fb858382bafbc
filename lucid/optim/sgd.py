"""SGD with momentum, dampening, Nesterov and (coupled) weight decay, as ``torch.optim.SGD``."""
from __future__ import annotations

from typing import Iterable

from lucid._backend import get_array_module
from lucid.optim import multi_tensor
from lucid.optim.optimizer import Optimizer, blocks, check_non_negative
from lucid.optim.registry import register_optimizer
from lucid.tensor import Tensor


class SGD(Optimizer):
    """Stochastic gradient descent; per parameter p with gradient g:

        g = -g if maximize;  g = g + weight_decay * p
        v = g (first step) or momentum * v + (1 - dampening) * g     (momentum != 0)
        d = g + momentum * v if nesterov else v                      (g itself without momentum)
        p = p - lr * d

    State per parameter: ``momentum_buffer`` (v), a Tensor, once momentum != 0.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        maximize: bool = False,
    ):
        check_non_negative(lr=lr, momentum=momentum, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _update(self, p: Tensor, grad, group: dict, state: dict) -> None:
        xp = get_array_module(p.data)
        buf = None
        first = False
        if group["momentum"] != 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = Tensor._wrap(xp.empty_like(p.data), p.device)
                first = True
            buf = state["momentum_buffer"].data
        for rows in blocks(p.data):
            self._update_block(xp, p.data[rows], grad[rows], None if buf is None else buf[rows], first, group)

    def _update_block(self, xp, p, grad, buf, first: bool, group: dict) -> None:
        lr, mu, damp = group["lr"], group["momentum"], group["dampening"]
        s0, s1 = self.scratch(p, 0), self.scratch(p, 1)
        d = _decayed_gradient(xp, p, grad, group["weight_decay"], group["maximize"], s0)
        if buf is not None:
            if first:
                buf[...] = d
            else:
                buf *= mu
                if damp != 0:  # never with nesterov, so d may be overwritten
                    buf += xp.multiply(d, 1 - damp, out=s0)
                else:
                    buf += d
            d = xp.add(xp.multiply(buf, mu, out=s1), d, out=s1) if group["nesterov"] else buf
        # p -= lr * d, with lr * d written over a scratch (never over grad or the momentum buffer)
        p -= xp.multiply(d, lr, out=d if d is s0 or d is s1 else s0)


def _decayed_gradient(xp, p, grad, wd: float, maximize: bool, out):
    """g + wd * p with g negated when maximising: written into ``out``, or ``grad`` itself."""
    if wd != 0:
        xp.multiply(p, wd, out=out)
        return xp.subtract(out, grad, out=out) if maximize else xp.add(out, grad, out=out)
    if maximize:
        return xp.negative(grad, out=out)
    return grad


register_optimizer("sgd", SGD)
multi_tensor.register_flat_step(SGD, multi_tensor.sgd_step)  # GPU: whole groups in fused kernels
