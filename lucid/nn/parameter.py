"""Parameter: a Tensor that a Module registers as learnable; and the lazy placeholders.

``UninitializedParameter`` / ``UninitializedBuffer`` stand in for tensors whose shape
a lazy module learns at its first forward. They are real objects from the start, so
an optimizer built before that forward holds them; ``materialize`` then fills them
in place and turns them into an ordinary Parameter / Tensor (PyTorch's scheme).
"""
from __future__ import annotations

from typing import Any

from lucid import _backend
from lucid.dtypes import DEFAULT_FLOAT, resolve_dtype
from lucid.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that is a module's learnable weight: ``requires_grad=True`` by default.

    Assigning a Parameter as a Module attribute registers it, so it appears in
    ``parameters()`` and ``state_dict()``. The data is shared with ``data``, not copied.
    """

    def __init__(self, data: Any = None, requires_grad: bool = True):
        if data is None:
            data = _backend.get_array_module("cpu").empty((0,), dtype=DEFAULT_FLOAT)
        if isinstance(data, Tensor):
            if data.grad_fn is not None:
                data = data.detach()
            super().__init__(data.data, requires_grad=requires_grad, device=data.device)
        else:
            super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


def set_data(t: Tensor, array) -> None:
    """Point ``t`` at a new array (another device or dtype), keeping the object itself.

    Module.to and materialisation use it so that optimizers holding ``t`` stay valid.
    """
    t.data = array
    t._device = _backend.device_of(array)


class _Uninitialized:
    """Shared behaviour of the lazy placeholders: no shape until ``materialize``."""

    cls_to_become: type = Tensor

    def _placeholder(self, device: Any, dtype: Any):
        device = _backend.parse_device(device)
        dtype = resolve_dtype(dtype) or DEFAULT_FLOAT
        return _backend.get_array_module(device).empty((0,), dtype=dtype)

    def materialize(self, shape: tuple, device: Any = None, dtype: Any = None) -> None:
        """Allocate storage of ``shape`` (uninitialised values) and become ``cls_to_become``."""
        device = _backend.parse_device(device) if device is not None else self.device
        dtype = resolve_dtype(dtype) or self.dtype
        set_data(self, _backend.get_array_module(device).empty(tuple(int(s) for s in shape), dtype=dtype))
        self.__class__ = self.cls_to_become

    def _refuse(self, what: str):
        raise ValueError(
            f"can't {what} of an uninitialized parameter or buffer: it belongs to a lazy module "
            "whose shapes are inferred at its first forward; run a forward pass first"
        )

    @property
    def shape(self):
        self._refuse("access the shape")

    def numel(self) -> int:
        self._refuse("count the elements")

    def numpy(self):
        self._refuse("read the values")

    def item(self):
        self._refuse("read the value")

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class UninitializedParameter(_Uninitialized, Parameter):
    """A Parameter of a lazy module before its first forward (becomes a Parameter)."""

    cls_to_become = Parameter

    def __init__(self, requires_grad: bool = True, device: Any = None, dtype: Any = None):
        Parameter.__init__(self, self._placeholder(device, dtype), requires_grad)


class UninitializedBuffer(_Uninitialized, Tensor):
    """A buffer of a lazy module before its first forward (becomes a Tensor)."""

    cls_to_become = Tensor

    def __init__(self, requires_grad: bool = False, device: Any = None, dtype: Any = None):
        Tensor.__init__(self, self._placeholder(device, dtype), requires_grad=requires_grad)


def is_uninitialized(t: Any) -> bool:
    return isinstance(t, _Uninitialized)
