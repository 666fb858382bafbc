"""SGD with momentum, dampening, Nesterov and (coupled) weight decay, as ``torch.optim.SGD``."""
from __future__ import annotations

from typing import Iterable

from lucid.autograd.function import xp_of
from lucid.optim.optimizer import Optimizer
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
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _update(self, p: Tensor, grad, group: dict, state: dict) -> None:
        lr, mu, damp = group["lr"], group["momentum"], group["dampening"]
        xp = xp_of(p.data)
        s0, s1 = self.scratch(p.data, 0), self.scratch(p.data, 1)
        d = _decayed_gradient(xp, p.data, grad, group["weight_decay"], group["maximize"], s0)
        if mu != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = Tensor._wrap(d.copy(), p.device)
            else:
                buf.data *= mu
                if damp != 0:  # never with nesterov, so d may be overwritten
                    buf.data += xp.multiply(d, 1 - damp, out=s0)
                else:
                    buf.data += d
            if group["nesterov"]:
                d = xp.add(xp.multiply(buf.data, mu, out=s1), d, out=s1)
            else:
                d = buf.data
        # p -= lr * d, with lr * d written over a scratch (never over grad or the momentum buffer)
        p.data -= xp.multiply(d, lr, out=d if d is s0 or d is s1 else s0)


def _decayed_gradient(xp, p, grad, wd: float, maximize: bool, out):
    """g + wd * p with g negated when maximising: written into ``out``, or ``grad`` itself."""
    if wd != 0:
        xp.multiply(p, wd, out=out)
        return xp.subtract(out, grad, out=out) if maximize else xp.add(out, grad, out=out)
    if maximize:
        return xp.negative(grad, out=out)
    return grad
