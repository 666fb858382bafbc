"""Shape and indexing ops: reshape, permute, indexing, expand, cat, stack, pad."""
from __future__ import annotations

from lucid import _backend
from lucid._backend import get_array_module
from lucid.autograd.function import Function
from lucid.ops.broadcast import unbroadcast


class Reshape(Function):
    def forward(self, x, shape):
        self.shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {tuple(x.shape)} into {tuple(shape)}") from None

    def backward(self, g):
        return g.reshape(self.shape), None


class Permute(Function):
    def forward(self, x, dims):
        if sorted(d % max(x.ndim, 1) for d in dims) != list(range(x.ndim)):
            raise ValueError(f"permute: dims {tuple(dims)} are not a permutation of a {x.ndim}-d tensor's axes")
        self.dims = tuple(d % x.ndim for d in dims)
        return x.transpose(self.dims)

    def backward(self, g):
        inverse = [0] * len(self.dims)
        for i, d in enumerate(self.dims):
            inverse[d] = i
        return g.transpose(inverse), None


class Expand(Function):
    def forward(self, x, shape):
        self.shape = x.shape
        return get_array_module(x).broadcast_to(x, shape)

    def backward(self, g):
        return unbroadcast(g, self.shape), None


def _is_advanced(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(hasattr(i, "shape") or isinstance(i, (list, tuple)) for i in items)


class GetItem(Function):
    def forward(self, x, index):
        self.shape, self.dtype, self.index = x.shape, x.dtype, index
        try:
            return x[index]
        except IndexError as exc:
            raise IndexError(f"index {index!r} is out of range for a tensor of shape {tuple(x.shape)}: {exc}") from None

    def backward(self, g):
        xp = get_array_module(g)
        out = xp.zeros(self.shape, dtype=g.dtype)
        if _is_advanced(self.index):
            _backend.scatter_add(xp, out, self.index, g)
        else:
            out[self.index] = g
        return out, None


class Cat(Function):
    def forward(self, *arrays, axis=0):
        first = arrays[0]
        axis = axis % first.ndim
        for a in arrays[1:]:
            if a.ndim != first.ndim or any(
                s != t for i, (s, t) in enumerate(zip(a.shape, first.shape)) if i != axis
            ):
                raise ValueError(
                    f"cat: shapes {tuple(first.shape)} and {tuple(a.shape)} differ outside dimension {axis}"
                )
        self.axis = axis
        self.sizes = [a.shape[axis] for a in arrays]
        return get_array_module(*arrays).concatenate(arrays, axis=axis)

    def backward(self, g):
        grads, start = [], 0
        index = [slice(None)] * g.ndim
        for size, need in zip(self.sizes, self.needs_input_grad):
            index[self.axis] = slice(start, start + size)
            grads.append(g[tuple(index)] if need else None)
            start += size
        return tuple(grads)


class Stack(Function):
    def forward(self, *arrays, axis=0):
        for a in arrays[1:]:
            if a.shape != arrays[0].shape:
                raise ValueError(f"stack: shapes {tuple(arrays[0].shape)} and {tuple(a.shape)} differ")
        self.axis = axis % (arrays[0].ndim + 1)
        return get_array_module(*arrays).stack(arrays, axis=self.axis)

    def backward(self, g):
        xp = get_array_module(g)
        return tuple(
            xp.take(g, i, axis=self.axis) if need else None for i, need in enumerate(self.needs_input_grad)
        )


class Pad(Function):
    """Constant padding; ``pad`` lists (before, after) pairs from the LAST dimension, as torch."""

    def forward(self, x, pad, value=0.0):
        if len(pad) % 2 or len(pad) // 2 > x.ndim:
            raise ValueError(f"pad: {tuple(pad)} must hold (before, after) pairs for at most {x.ndim} dims")
        widths = [(0, 0)] * x.ndim
        for i in range(len(pad) // 2):
            widths[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
        if any(b < 0 or a < 0 for b, a in widths):
            raise ValueError(f"pad: negative padding {tuple(pad)} is not supported")
        self.slices = tuple(slice(b, b + n) for (b, _), n in zip(widths, x.shape))
        return get_array_module(x).pad(x, widths, mode="constant", constant_values=value)

    def backward(self, g):
        return g[self.slices], None, None


# -- public functions -------------------------------------------------------------
def _shape_arg(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


def reshape(x, *shape):
    return Reshape.apply(x, _shape_arg(shape))


view = reshape


def flatten(x, start_dim: int = 0, end_dim: int = -1):
    if x.ndim == 0:
        return reshape(x, 1)
    start, end = start_dim % x.ndim, end_dim % x.ndim
    merged = 1
    for s in x.shape[start : end + 1]:
        merged *= s
    return reshape(x, x.shape[:start] + (merged,) + x.shape[end + 1 :])  # explicit: -1 fails on empty batches


def permute(x, *dims):
    return Permute.apply(x, _shape_arg(dims))


def transpose(x, dim0: int, dim1: int):
    dims = list(range(x.ndim))
    dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
    return Permute.apply(x, tuple(dims))


def squeeze(x, dim=None):
    if dim is None:
        return reshape(x, tuple(s for s in x.shape if s != 1))
    dim = dim % x.ndim
    if x.shape[dim] != 1:
        return x
    return reshape(x, x.shape[:dim] + x.shape[dim + 1 :])


def unsqueeze(x, dim: int):
    dim = dim % (x.ndim + 1)
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])


def expand(x, *shape):
    shape = _shape_arg(shape)
    shape = tuple(x.shape[i - (len(shape) - x.ndim)] if s == -1 else s for i, s in enumerate(shape))
    from lucid.ops.broadcast import check_broadcast

    check_broadcast("expand", x.shape, shape, target=shape)
    return Expand.apply(x, shape)


def getitem(x, index):
    from lucid.tensor import Tensor

    def raw(i):
        return i.data if isinstance(i, Tensor) else i

    index = tuple(raw(i) for i in index) if isinstance(index, tuple) else raw(index)
    return GetItem.apply(x, index)


def cat(tensors, dim: int = 0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    return Cat.apply(*tensors, axis=dim)


concatenate = cat


def stack(tensors, dim: int = 0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    return Stack.apply(*tensors, axis=dim)


def split(x, split_size_or_sections, dim: int = 0) -> tuple:
    """Pieces of ``split_size`` along dim (the last may be smaller), or of the listed sizes."""
    n = x.shape[dim]
    if isinstance(split_size_or_sections, int):
        if split_size_or_sections <= 0:
            raise ValueError(f"split: split_size must be positive, got {split_size_or_sections}")
        sizes = [split_size_or_sections] * (n // split_size_or_sections)
        if n % split_size_or_sections:
            sizes.append(n % split_size_or_sections)
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ValueError(f"split: sections {sizes} do not sum to the size {n} of dimension {dim}")
    index = [slice(None)] * x.ndim
    pieces, start = [], 0
    for size in sizes:
        index[dim % x.ndim] = slice(start, start + size)
        pieces.append(getitem(x, tuple(index)))
        start += size
    return tuple(pieces)


def chunk(x, chunks: int, dim: int = 0) -> tuple:
    """``chunks`` pieces of ceil(n / chunks) along dim, as torch.chunk."""
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    n = x.shape[dim]
    return split(x, max(1, -(-n // chunks)), dim)


def pad(x, pad, mode: str = "constant", value: float = 0.0):
    if mode != "constant":
        raise ValueError(f"pad: only mode='constant' is supported, got {mode!r}")
    return Pad.apply(x, tuple(pad), value)
