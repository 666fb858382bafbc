"""Tensor: an array on a device plus what autograd needs to differentiate through it.

``Tensor.data`` is the raw array (numpy.ndarray on "cpu", cupy.ndarray on "gpu:N").
4-D activations made by lucid's kernels keep their logical NCHW shape while their
memory is channels-last (NHWC): ``data`` is then an NCHW-shaped view of NHWC memory.
Math methods are thin wrappers over ``lucid.ops``; the graph lives in ``_node``.
"""
from __future__ import annotations

import functools
import weakref
from typing import Any, Callable

import numpy as np

from lucid import _backend
from lucid.dtypes import DEFAULT_FLOAT, is_floating, resolve_dtype
from lucid.to_args import ToShorthands, parse_to_args


def _on_own_device(method: Callable) -> Callable:
    """Run an in-place method with the tensor's GPU current (its kernels go there)."""

    @functools.wraps(method)
    def run(self, *args: Any, **kwargs: Any):
        if self._device == "cpu":
            return method(self, *args, **kwargs)
        with _backend.on_device(self._device):
            return method(self, *args, **kwargs)

    return run


class Tensor(ToShorthands):
    """An n-dimensional array that can record operations for reverse-mode autograd.

    Args:
        data: array-like (nested lists, scalars, NumPy/CuPy arrays, Tensors).
        requires_grad: record operations on it so ``backward`` fills ``.grad``.
        dtype: data type; default float32 for Python floats, int64 for ints, and the
            array's own dtype for NumPy/CuPy input.
        device: "cpu", "gpu" or "gpu:N".
    """

    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected op

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None, device: Any = None):
        if isinstance(data, Tensor):
            data = data.data
        dtype = resolve_dtype(dtype)
        target = _backend.parse_device(device) if device is not None else _backend.device_of(data)
        if not hasattr(data, "dtype"):  # Python data: float -> float32 as PyTorch
            data = np.asarray(data)
            if dtype is None and data.dtype == np.float64:
                dtype = DEFAULT_FLOAT
        data = _backend.to_device(data, target)
        with _backend.on_device(target):
            data = _backend.get_array_module(target).asarray(data, dtype=dtype)
        self._init(data, target)
        self.requires_grad = requires_grad

    def _init(self, data, device: str) -> None:
        self.data = data
        self._device = device
        self._requires_grad = False
        self.grad: Tensor | None = None
        self._node = None
        self._hooks: list[Callable] = []
        self._post_accumulate_hooks: list[Callable] = []

    @classmethod
    def _wrap(cls, data, device: str) -> "Tensor":
        """Fast constructor for arrays that kernels produced (no conversion)."""
        t = Tensor.__new__(Tensor)
        t._init(data, device)
        return t

    # -- properties --------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def device(self) -> str:
        return self._device

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if self._node is not None and not value:
            raise RuntimeError("requires_grad can only be switched off on leaf tensors; use .detach()")
        if value and not is_floating(self.data.dtype):
            raise RuntimeError(f"only floating-point tensors can require gradients, not {self.dtype}")
        self._requires_grad = bool(value)

    @property
    def grad_fn(self):
        return self._node

    @property
    def T(self) -> "Tensor":
        return self.permute(*reversed(range(self.ndim)))

    def dim(self) -> int:
        return self.data.ndim

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def is_contiguous(self) -> bool:
        return bool(self.data.flags.c_contiguous)

    # -- conversion --------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The values as a NumPy array (a copy from the GPU; shares memory on CPU)."""
        if self._requires_grad:
            raise RuntimeError("can't call numpy() on a tensor that requires grad; use .detach().numpy()")
        return self._host()

    def tolist(self):
        return self._host().tolist()

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self._host().reshape(()).item()

    def _host(self) -> np.ndarray:
        """The values on the host, after the GPU checks still pending (``lucid.ops.device_asserts``)."""
        if self._device != "cpu":
            device_asserts.raise_pending()
        return _backend.asnumpy(self.data)

    def detach(self) -> "Tensor":
        """The same data, cut from the graph."""
        return Tensor._wrap(self.data, self._device)

    def detach_(self) -> "Tensor":
        self._node = None
        self._requires_grad = False
        return self

    def clone(self) -> "Tensor":
        return _ops.clone(self)

    def contiguous(self) -> "Tensor":
        return self if self.is_contiguous() else _ops.clone(self, order="C")

    def to(self, *args: Any, **kwargs: Any) -> "Tensor":
        """``to(device)``, ``to(dtype)`` or ``to(device, dtype)``; differentiable for dtype."""
        device, dtype = parse_to_args(args, kwargs)
        out = self
        if dtype is not None:
            out = _ops.cast(out, dtype)
        if device is not None:
            out = _ops.to_device(out, device)
        return out

    def long(self) -> "Tensor":
        return self.to(np.int64)

    def type(self, dtype: Any) -> "Tensor":
        return self.to(dtype)

    # -- autograd ----------------------------------------------------------------
    def backward(self, gradient: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``."""
        from lucid.autograd.engine import run_backward

        if not self._requires_grad:
            raise RuntimeError("backward(): tensor does not require grad and has no grad_fn")
        with _backend.on_device(self._device):  # the seed and every backward kernel on this GPU
            if gradient is None:
                if self.data.size != 1:
                    raise RuntimeError(
                        f"backward() on a non-scalar tensor of shape {self.shape} needs a gradient "
                        "argument of the same shape"
                    )
                g = _backend.get_array_module(self._device).ones(self.data.shape, dtype=self.dtype)
            else:
                g = gradient.data if isinstance(gradient, Tensor) else gradient
                g = _backend.get_array_module(self._device).asarray(g, dtype=self.dtype)
                if g.shape != self.data.shape:
                    raise ValueError(f"backward(): gradient shape {g.shape} does not match tensor shape {self.shape}")
            run_backward(self, g, retain_graph=retain_graph)

    def register_hook(self, hook: Callable[["Tensor"], "Tensor | None"]) -> Callable[[], None]:
        """Call ``hook(grad)`` when this tensor's gradient is computed; it may return a new one."""
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        hooks = self._hooks if self._node is None else _node_hooks(self._node)
        hooks.append(hook)
        return lambda: hooks.remove(hook) if hook in hooks else None

    def register_post_accumulate_grad_hook(self, hook: Callable[["Tensor"], None]) -> Callable[[], None]:
        """Call ``hook(tensor)`` once this leaf's ``.grad`` holds the whole gradient of a backward pass."""
        if self._node is not None:
            raise RuntimeError("post-accumulate-grad hooks can only be registered on leaf tensors")
        self._post_accumulate_hooks.append(hook)
        hooks = self._post_accumulate_hooks
        return lambda: hooks.remove(hook) if hook in hooks else None

    def retain_grad(self) -> None:
        """Keep ``.grad`` on a non-leaf tensor too."""
        if self._node is None:
            return
        ref = weakref.ref(self)

        def store(grad):
            t = ref()
            if t is not None:
                t.grad = grad if t.grad is None else Tensor._wrap(t.grad.data + grad.data, t.device)

        _node_hooks(self._node).append(store)

    # -- in-place updates (no graph; for optimizers and init) --------------------
    @_on_own_device
    def zero_(self) -> "Tensor":
        self.data[...] = 0
        return self

    @_on_own_device
    def fill_(self, value: float) -> "Tensor":
        self.data[...] = value
        return self

    @_on_own_device
    def copy_(self, src: Any) -> "Tensor":
        src = src.data if isinstance(src, Tensor) else src
        src = _backend.to_device(src, self._device) if hasattr(src, "dtype") else src
        _ops.check_broadcast("copy_", self.shape, getattr(src, "shape", ()), target=self.shape)
        self.data[...] = src
        return self

    @_on_own_device
    def add_(self, other: Any, alpha: float = 1.0) -> "Tensor":
        other = other.data if isinstance(other, Tensor) else other
        if alpha == 1.0:
            self.data += other
        else:
            self.data += alpha * other
        return self

    @_on_own_device
    def sub_(self, other: Any, alpha: float = 1.0) -> "Tensor":
        return self.add_(other, -alpha)

    @_on_own_device
    def mul_(self, other: Any) -> "Tensor":
        self.data *= other.data if isinstance(other, Tensor) else other
        return self

    @_on_own_device
    def div_(self, other: Any) -> "Tensor":
        self.data /= other.data if isinstance(other, Tensor) else other
        return self

    @_on_own_device
    def clamp_(self, min: float | None = None, max: float | None = None) -> "Tensor":
        _backend.get_array_module(self.data).clip(self.data, min, max, out=self.data)
        return self

    # -- printing ----------------------------------------------------------------
    def __repr__(self) -> str:
        body = np.array2string(_backend.asnumpy(self.data), separator=", ", prefix="tensor(", precision=4)
        extras = []
        if self._device != "cpu":
            extras.append(f"device='{self._device}'")
        if self.dtype != DEFAULT_FLOAT and is_floating(self.dtype):
            extras.append(f"dtype={self.dtype}")
        if self._node is not None:
            extras.append(f"grad_fn=<{self._node.name}>")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise RuntimeError(f"truth value of a tensor with {self.data.size} elements is ambiguous")
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if is_floating(self.dtype):
            raise TypeError("only integer tensors of one element can be used as an index")
        return int(self.item())

    __hash__ = object.__hash__

    # -- math: thin wrappers over lucid.ops --------------------------------------
    def __add__(self, other): return _ops.add(self, other)
    def __radd__(self, other): return _ops.add(other, self)
    def __sub__(self, other): return _ops.sub(self, other)
    def __rsub__(self, other): return _ops.sub(other, self)
    def __mul__(self, other): return _ops.mul(self, other)
    def __rmul__(self, other): return _ops.mul(other, self)
    def __truediv__(self, other): return _ops.div(self, other)
    def __rtruediv__(self, other): return _ops.div(other, self)
    def __pow__(self, other): return _ops.pow(self, other)
    def __rpow__(self, other): return _ops.pow(other, self)
    def __matmul__(self, other): return _ops.matmul(self, other)
    def __rmatmul__(self, other): return _ops.matmul(other, self)
    def __neg__(self): return _ops.neg(self)
    def __pos__(self): return self
    def __abs__(self): return _ops.abs(self)
    def __eq__(self, other): return _ops.eq(self, other)  # type: ignore[override]
    def __ne__(self, other): return _ops.ne(self, other)  # type: ignore[override]
    def __lt__(self, other): return _ops.lt(self, other)
    def __le__(self, other): return _ops.le(self, other)
    def __gt__(self, other): return _ops.gt(self, other)
    def __ge__(self, other): return _ops.ge(self, other)
    def __getitem__(self, index): return _ops.getitem(self, index)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def add(self, other): return _ops.add(self, other)
    def sub(self, other): return _ops.sub(self, other)
    def mul(self, other): return _ops.mul(self, other)
    def div(self, other): return _ops.div(self, other)
    def matmul(self, other): return _ops.matmul(self, other)
    def pow(self, exponent): return _ops.pow(self, exponent)
    def exp(self): return _ops.exp(self)
    def log(self): return _ops.log(self)
    def sqrt(self): return _ops.sqrt(self)
    def abs(self): return _ops.abs(self)
    def tanh(self): return _ops.tanh(self)
    def sigmoid(self): return _ops.sigmoid(self)
    def relu(self): return _ops.relu(self)
    def clip(self, min=None, max=None): return _ops.clip(self, min, max)
    clamp = clip
    def maximum(self, other): return _ops.maximum(self, other)
    def minimum(self, other): return _ops.minimum(self, other)

    def sum(self, dim=None, keepdim=False): return _ops.sum(self, dim, keepdim)
    def mean(self, dim=None, keepdim=False): return _ops.mean(self, dim, keepdim)
    def var(self, dim=None, keepdim=False, unbiased=True): return _ops.var(self, dim, keepdim, unbiased)
    def max(self, dim=None, keepdim=False): return _ops.max(self, dim, keepdim)
    def min(self, dim=None, keepdim=False): return _ops.min(self, dim, keepdim)
    def argmax(self, dim=None, keepdim=False): return _ops.argmax(self, dim, keepdim)
    def argmin(self, dim=None, keepdim=False): return _ops.argmin(self, dim, keepdim)

    def reshape(self, *shape): return _ops.reshape(self, *shape)
    def view(self, *shape): return _ops.reshape(self, *shape)
    def flatten(self, start_dim=0, end_dim=-1): return _ops.flatten(self, start_dim, end_dim)
    def transpose(self, dim0, dim1): return _ops.transpose(self, dim0, dim1)
    def permute(self, *dims): return _ops.permute(self, *dims)
    def squeeze(self, dim=None): return _ops.squeeze(self, dim)
    def unsqueeze(self, dim): return _ops.unsqueeze(self, dim)
    def expand(self, *shape): return _ops.expand(self, *shape)
    def split(self, split_size_or_sections, dim=0): return _ops.split(self, split_size_or_sections, dim)
    def chunk(self, chunks, dim=0): return _ops.chunk(self, chunks, dim)
    def softmax(self, dim): return _ops.softmax(self, dim)
    def log_softmax(self, dim): return _ops.log_softmax(self, dim)


def _node_hooks(node) -> list:
    if node.hooks is None:
        node.hooks = []
    return node.hooks


from lucid import ops as _ops  # noqa: E402 - ops need Tensor defined first
from lucid.ops import device_asserts  # noqa: E402
