"""Elementwise arithmetic and math with NumPy broadcasting, differentiable."""
from __future__ import annotations

from lucid import _backend
from lucid._backend import get_array_module
from lucid.autograd.function import Function
from lucid.ops.broadcast import check_broadcast, shape_of, unbroadcast


class _Binary(Function):
    """Checks broadcasting and remembers both input shapes for un-broadcasting."""

    def prepare(self, a, b) -> None:
        self.shapes = (shape_of(a), shape_of(b))
        check_broadcast(self.name.lower(), *self.shapes)

    def reduce(self, ga, gb):
        """Un-broadcast each gradient to its input's shape; None where not needed."""
        need = self.needs_input_grad
        return (
            unbroadcast(ga, self.shapes[0]) if need[0] and ga is not None else None,
            unbroadcast(gb, self.shapes[1]) if need[1] and gb is not None else None,
        )


class Add(_Binary):
    def forward(self, a, b):
        self.prepare(a, b)
        return a + b

    def backward(self, g):
        return self.reduce(g, g)


class Sub(_Binary):
    def forward(self, a, b):
        self.prepare(a, b)
        return a - b

    def backward(self, g):
        return self.reduce(g, -g if self.needs_input_grad[1] else None)


class Mul(_Binary):
    def forward(self, a, b):
        self.prepare(a, b)
        self.save_for_backward(a if self.needs_input_grad[1] else None, b if self.needs_input_grad[0] else None)
        return a * b

    def backward(self, g):
        a, b = self.saved
        need = self.needs_input_grad
        return self.reduce(g * b if need[0] else None, g * a if need[1] else None)


class Div(_Binary):
    def forward(self, a, b):
        self.prepare(a, b)
        self.save_for_backward(a, b)
        return a / b

    def backward(self, g):
        a, b = self.saved
        need = self.needs_input_grad
        ga = g / b
        return self.reduce(ga if need[0] else None, -ga * a / b if need[1] else None)


class Pow(_Binary):
    def forward(self, a, b):
        self.prepare(a, b)
        out = a**b
        self.save_for_backward(a, b, out)
        return out

    def backward(self, g):
        a, b, out = self.saved
        need = self.needs_input_grad
        ga = g * b * a ** (b - 1) if need[0] else None
        gb = g * out * get_array_module(a).log(a) if need[1] else None
        return self.reduce(ga, gb)


class Maximum(_Binary):
    def forward(self, a, b):
        self.prepare(a, b)
        self.save_for_backward(a >= b)
        xp = get_array_module(a, b)
        return xp.maximum(a, b)

    def backward(self, g):
        (mask,) = self.saved
        return self.reduce(g * mask, g * ~mask)


class Minimum(_Binary):
    def forward(self, a, b):
        self.prepare(a, b)
        self.save_for_backward(a <= b)
        return get_array_module(a, b).minimum(a, b)

    def backward(self, g):
        (mask,) = self.saved
        return self.reduce(g * mask, g * ~mask)


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, g):
        return -g


class Exp(Function):
    def forward(self, x):
        out = get_array_module(x).exp(x)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        return g * self.saved[0]


class Log(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return get_array_module(x).log(x)

    def backward(self, g):
        return g / self.saved[0]


class Sqrt(Function):
    def forward(self, x):
        out = get_array_module(x).sqrt(x)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        return g / (2 * self.saved[0])


class Abs(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return get_array_module(x).abs(x)

    def backward(self, g):
        return g * get_array_module(g).sign(self.saved[0])


class Tanh(Function):
    def forward(self, x):
        out = get_array_module(x).tanh(x)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        (out,) = self.saved
        return g * (1 - out * out)


class Clip(Function):
    def forward(self, x, lo, hi):
        self.save_for_backward(x)
        self.bounds = (lo, hi)
        return get_array_module(x).clip(x, lo, hi)

    def backward(self, g):
        (x,) = self.saved
        lo, hi = self.bounds
        mask = True
        if lo is not None:
            mask = x >= lo
        if hi is not None:
            mask = mask & (x <= hi)
        return g * mask, None, None


class Cast(Function):
    def forward(self, x, dtype):
        self.src = x.dtype
        return x.astype(dtype, copy=False)

    def backward(self, g):
        return g.astype(self.src, copy=False), None


class ToDevice(Function):
    def forward(self, x, device):
        self.src = _backend.device_of(x)
        return _backend.to_device(x, device)

    def backward(self, g):
        return _backend.to_device(g, self.src), None


class Clone(Function):
    def forward(self, x, order="K"):
        return x.copy(order=order)

    def backward(self, g):
        return g, None


# -- public functions -------------------------------------------------------------
def add(a, b):
    return Add.apply(a, b)


def sub(a, b):
    return Sub.apply(a, b)


def mul(a, b):
    return Mul.apply(a, b)


def div(a, b):
    return Div.apply(a, b)


def pow(a, b):  # shadows a builtin: torch.pow
    return Pow.apply(a, b)


def maximum(a, b):
    return Maximum.apply(a, b)


def minimum(a, b):
    return Minimum.apply(a, b)


def neg(x):
    return Neg.apply(x)


def exp(x):
    return Exp.apply(x)


def log(x):
    return Log.apply(x)


def sqrt(x):
    return Sqrt.apply(x)


def abs(x):  # shadows a builtin: torch.abs
    return Abs.apply(x)


def tanh(x):
    return Tanh.apply(x)


def clip(x, min=None, max=None):  # shadows a builtin: torch names
    if min is None and max is None:
        raise ValueError("clip: at least one of min and max must be given")
    return Clip.apply(x, min, max)


clamp = clip


def cast(x, dtype):
    return x if x.dtype == dtype else Cast.apply(x, dtype)


def to_device(x, device: str):
    return x if x.device == device else ToDevice.apply(x, device)


def clone(x, order: str = "K"):
    return Clone.apply(x, order)


def _compare(op: str, a, b):
    from lucid.tensor import Tensor

    ref = a if isinstance(a, Tensor) else b
    x = a.data if isinstance(a, Tensor) else a
    y = b.data if isinstance(b, Tensor) else b
    check_broadcast(op, shape_of(x), shape_of(y))
    return Tensor._wrap(getattr(x, f"__{op}__")(y) if hasattr(x, "shape") else getattr(y, f"__{_MIRROR[op]}__")(x), ref.device)


_MIRROR = {"eq": "eq", "ne": "ne", "lt": "gt", "le": "ge", "gt": "lt", "ge": "le"}


def eq(a, b):
    return _compare("eq", a, b)


def ne(a, b):
    return _compare("ne", a, b)


def lt(a, b):
    return _compare("lt", a, b)


def le(a, b):
    return _compare("le", a, b)


def gt(a, b):
    return _compare("gt", a, b)


def ge(a, b):
    return _compare("ge", a, b)
