"""The fake device's array: NumPy memory behind CuPy's rules.

Every array is stamped with the device it was made on; an op runs on the current
device and refuses arrays from another one or NumPy arrays (as CuPy does without
peer access), and nothing converts to NumPy implicitly. ``STATS`` counts kernel
launches and host synchronisations so tests and benchmarks can assert on them.
"""
from __future__ import annotations

import threading
import weakref

import numpy as np


class Stats:
    """Counters of what a real GPU would have done."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.kernels = 0
        self.syncs = 0
        self.pinned_copies = 0
        self.pageable_copies = 0


STATS = Stats()
_local = threading.local()
_owners: "weakref.WeakValueDictionary[int, ndarray]" = weakref.WeakValueDictionary()
DEVICE_COUNT = [2]


def current_device() -> int:
    return getattr(_local, "device", 0)


def set_current_device(i: int) -> None:
    _local.device = i


def sync() -> None:
    STATS.syncs += 1


def _root(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def wrap(r, device: int | None = None):
    """A NumPy result as a device array (scalars become 0-d arrays, as in CuPy)."""
    if isinstance(r, np.generic):
        r = np.asarray(r)
    if not isinstance(r, np.ndarray):
        if isinstance(r, tuple):
            return tuple(wrap(x, device) for x in r)
        return r
    dev = current_device() if device is None else device
    root = _root(r)
    owner = _owners.get(id(root))
    out = ndarray.__new__(ndarray)
    out._a, out._dev = r, dev
    if owner is not None and owner._a is not r:
        out._base = owner
    else:
        out._base = None
        _owners[id(root)] = out
    return out


def unwrap(x, devices: set, transfer: bool = False):
    """The NumPy value of an op argument; rejects host arrays unless ``transfer``."""
    if isinstance(x, ndarray):
        devices.add(x._dev)
        return x._a
    if isinstance(x, np.ndarray):
        if transfer:
            return x
        raise TypeError(f"Unsupported type {type(x)}: mixing a NumPy array into a device op")
    if isinstance(x, (list, tuple)) and any(isinstance(v, (ndarray, np.ndarray)) for v in x):
        return type(x)(unwrap(v, devices, transfer) for v in x)
    return x


def check_devices(devices: set) -> None:
    cur = current_device()
    for d in devices:
        if d != cur:
            raise ValueError(
                f"The device where the array resides ({d}) is different from the current device ({cur}). "
                "Peer access is unavailable between these devices."
            )


VIEW = "view"  # ``launches`` of an op that is free when NumPy (like CuPy) returns a view


def call(fn, args, kwargs, transfer: bool = False, launches: int | str = 1):
    """Run NumPy's ``fn`` as one kernel on the current device (none for a view, see ``VIEW``)."""
    devices: set = set()
    a = [unwrap(x, devices, transfer) for x in args]
    k = {key: unwrap(v, devices, transfer) for key, v in kwargs.items()}
    check_devices(devices)
    out = kwargs.get("out")
    r = fn(*a, **k)
    if launches == VIEW:
        launches = 0 if isinstance(r, np.ndarray) and isinstance(a[0], np.ndarray) and np.shares_memory(r, a[0]) else 1
    STATS.kernels += launches
    if isinstance(out, ndarray):
        return out
    return wrap(r)


class MemoryPointer:
    """``ndarray.data``: where the memory is (host memory in the fake)."""

    def __init__(self, ptr: int, device_id: int):
        self.ptr = ptr
        self.device_id = device_id

    @property
    def device(self):
        from fake_cupy.cuda import Device

        return Device(self.device_id)


class _Flags:
    def __init__(self, a: np.ndarray):
        self.c_contiguous = a.flags.c_contiguous
        self.f_contiguous = a.flags.f_contiguous
        self.owndata = a.base is None

    def __getitem__(self, key):
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous, "OWNDATA": self.owndata}[key]


def _method(name: str, launches: int | str = 1):
    def m(self, *args, **kwargs):
        return call(getattr(np.ndarray, name), (self, *args), kwargs, launches=launches)

    m.__name__ = name
    return m


def _binop(ufunc, reflected: bool = False):
    def op(self, other):
        if isinstance(other, np.ndarray):
            raise TypeError(f"Unsupported type {type(other)}")
        if not isinstance(other, (ndarray, int, float, complex, bool, np.generic)):
            return NotImplemented
        return call(ufunc, (other, self) if reflected else (self, other), {})

    return op


def _inplace(ufunc):
    def op(self, other):
        if isinstance(other, np.ndarray):
            raise TypeError(f"Unsupported type {type(other)}")
        call(ufunc, (self, other), {"out": self})
        return self

    return op


class ndarray:
    """A device array: NumPy memory, CuPy's interface (see the module docstring)."""

    __array_priority__ = 100

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        self._a = np.empty(shape, dtype, order=order)
        self._dev = current_device()
        self._base = None
        _owners[id(self._a)] = self

    # -- attributes ----------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    base = property(lambda self: self._base)
    flags = property(lambda self: _Flags(self._a))
    T = property(lambda self: wrap(self._a.T, self._dev))
    mT = property(lambda self: wrap(np.swapaxes(self._a, -1, -2), self._dev))
    real = property(lambda self: wrap(self._a.real, self._dev))
    imag = property(lambda self: wrap(self._a.imag, self._dev))

    @shape.setter
    def shape(self, value):
        self._a.shape = value

    @property
    def device(self):
        from fake_cupy.cuda import Device

        return Device(self._dev)

    @property
    def data(self) -> MemoryPointer:
        return MemoryPointer(self._a.__array_interface__["data"][0], self._dev)

    @property
    def __cuda_array_interface__(self) -> dict:
        a = self._a
        return {
            "shape": a.shape,
            "typestr": a.dtype.str,
            "descr": a.dtype.descr,
            "data": (a.__array_interface__["data"][0], False),
            "strides": None if a.flags.c_contiguous else a.strides,
            "version": 3,
            "stream": 1,
        }

    # -- host <-> device -------------------------------------------------------------
    def __array__(self, *args, **kwargs):
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy array explicitly."
        )

    def get(self, stream=None, order="C", out=None, blocking=True):
        if blocking:
            sync()
        _count_copy(out)
        if out is not None:
            if not isinstance(out, np.ndarray):
                raise TypeError("Only numpy.ndarray can be obtained from cupy.ndarray")
            np.copyto(out, self._a)
            return out
        return np.array(self._a, order=order)

    def set(self, arr, stream=None):
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, got {type(arr)}")
        if arr.shape != self.shape or arr.dtype != self.dtype:
            raise ValueError(f"Shape mismatch / dtype mismatch: {arr.shape} {arr.dtype} vs {self.shape} {self.dtype}")
        _count_copy(arr)
        np.copyto(self._a, arr)

    def item(self):
        sync()
        return self._a.item()

    def tolist(self):
        sync()
        return self._a.tolist()

    def tobytes(self, order="C"):
        sync()
        return self._a.tobytes(order)

    def __float__(self):
        sync()
        return float(self._a)

    def __int__(self):
        sync()
        return int(self._a)

    def __complex__(self):
        sync()
        return complex(self._a)

    def __bool__(self):
        sync()
        return bool(self._a)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self)))

    def __repr__(self):
        return f"fake_cupy.ndarray(device={self._dev}, {np.array2string(self._a)})"

    # -- NumPy protocols (CuPy implements both) ----------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        import fake_cupy

        mine = getattr(fake_cupy, ufunc.__name__, None)
        if mine is None:
            return NotImplemented
        if method == "__call__":
            if "out" in kwargs and isinstance(kwargs["out"], tuple):
                kwargs["out"] = kwargs["out"][0]
            return mine(*inputs, **kwargs)
        return getattr(mine, method)(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        import fake_cupy

        mine = getattr(fake_cupy, func.__name__, None)
        return NotImplemented if mine is None else mine(*args, **kwargs)

    # -- indexing ----------------------------------------------------------------------
    def __getitem__(self, key):
        return call(np.ndarray.__getitem__, (self, _index(key)), {}, transfer=True, launches=VIEW)

    def __setitem__(self, key, value):
        call(np.ndarray.__setitem__, (self, _index(key), value), {})

    # -- methods CuPy has ----------------------------------------------------------------
    for _n in (
        "all any argmax argmin argsort clip conj copy cumsum dot flatten max mean min "
        "nonzero prod repeat round std sum take trace var"
    ).split():
        locals()[_n] = _method(_n)
    for _n in "diagonal ravel reshape squeeze swapaxes transpose view".split():  # free when a view
        locals()[_n] = _method(_n, launches=VIEW)
    del _n

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        return call(np.ndarray.astype, (self, dtype), {"order": order, "copy": copy})

    def fill(self, value):
        call(np.ndarray.fill, (self, value), {})

    def sort(self, axis=-1):
        call(np.ndarray.sort, (self,), {"axis": axis})

    def scatter_add(self, slices, value):
        call(np.add.at, (self, _index(slices), value), {}, transfer=True)

    # -- operators -------------------------------------------------------------------------
    for _n, _u in (("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("truediv", np.true_divide),
                   ("floordiv", np.floor_divide), ("mod", np.remainder), ("pow", np.power), ("matmul", np.matmul),
                   ("and", np.bitwise_and), ("or", np.bitwise_or), ("xor", np.bitwise_xor)):
        locals()[f"__{_n}__"] = _binop(_u)
        locals()[f"__r{_n}__"] = _binop(_u, reflected=True)
        locals()[f"__i{_n}__"] = _inplace(_u)
    for _n, _u in (("lt", np.less), ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal),
                   ("eq", np.equal), ("ne", np.not_equal)):
        locals()[f"__{_n}__"] = _binop(_u)
    del _n, _u
    __hash__ = None

    def __neg__(self):
        return call(np.negative, (self,), {})

    def __pos__(self):
        return call(np.positive, (self,), {})

    def __abs__(self):
        return call(np.absolute, (self,), {})

    def __invert__(self):
        return call(np.invert, (self,), {})


def _index(key):
    """Index arrays may be device arrays, lists or NumPy arrays (CuPy copies those)."""
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    return key


def _count_copy(host) -> None:
    from fake_cupy.cuda import _is_pinned

    if isinstance(host, np.ndarray) and _is_pinned(host):
        STATS.pinned_copies += 1
    else:
        STATS.pageable_copies += 1
