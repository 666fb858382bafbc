"""oneDNN (the library PyTorch's CPU convolutions run on) through its C API, with ctypes.

Optional: installed by the ``onednn`` extra (the ``onednn-cpu-gomp`` wheel, Linux x86-64),
used for float32 convolutions and batch norm on the CPU when present and ``enabled()``
(see ``lucid.ops.conv_onednn`` and ``lucid.ops.norm_onednn``). Nothing here runs at
import: the library is loaded on the first call of ``library()``.

``execute`` hands NumPy arrays' own buffers to oneDNN (no copies); a ``Desc`` is an owned
memory descriptor and a ``Primitive`` a primitive descriptor plus its primitive, created
once per shape and kept in a ``Plans`` cache by the caller. Every C call's status is
checked: a failure raises ``OneDNNError`` naming the call.
"""
from __future__ import annotations

import ctypes
import os
import threading
from collections import OrderedDict
from ctypes import POINTER, byref, c_char_p, c_float, c_int, c_int64, c_size_t, c_uint, c_void_p
from typing import Callable

MAX_NDIMS = 12
Dims = c_int64 * MAX_NDIMS

F32 = 3
TAG_ANY = 1
CPU = 1
STREAM_IN_ORDER = 1
FORWARD_TRAINING = 64
FORWARD_INFERENCE = 96
BACKWARD = 128
CONVOLUTION_DIRECT = 1
QUERY_IMPL_INFO = 8
QUERY = {"src": 129, "diff_src": 130, "weights": 131, "diff_weights": 132, "dst": 133, "diff_dst": 134,
         "workspace": 135}
ARG = {"src": 1, "dst": 17, "weights": 33, "bias": 41, "mean": 49, "variance": 50, "scale": 51, "shift": 52,
       "workspace": 64, "diff_src": 129, "diff_dst": 145, "diff_weights": 161, "diff_bias": 169,
       "diff_scale": 255, "diff_shift": 256, "from": 1, "to": 17}
DISTRIBUTION = "onednn-cpu-gomp"


class OneDNNError(RuntimeError):
    """A oneDNN call failed, or the library could not be loaded."""


class ExecArg(ctypes.Structure):
    _fields_ = [("arg", c_int), ("memory", c_void_p)]


class Version(ctypes.Structure):
    _fields_ = [("major", c_int), ("minor", c_int), ("patch", c_int), ("hash", c_char_p), ("cpu_runtime", c_uint),
                ("gpu_runtime", c_uint)]


_state = {"lib": None, "omp": None, "error": None, "engine": None, "stream": None, "forked": False}
_choice = {"enabled": None}  # None: from LUCID_ONEDNN
_lock = threading.Lock()
_local = threading.local()  # .threads: the OpenMP thread count last set in this thread


def library_path() -> str:
    """Path of libdnnl.so.3 from the installed ``onednn-cpu-gomp`` distribution (or LUCID_ONEDNN_LIBRARY)."""
    explicit = os.environ.get("LUCID_ONEDNN_LIBRARY")
    if explicit:
        return explicit
    from importlib import metadata

    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise OneDNNError(f"oneDNN is not installed (pip install 'lucid[onednn]', i.e. {DISTRIBUTION})") from None
    names = [f for f in dist.files or () if f.name == "libdnnl.so.3"]
    if not names:
        raise OneDNNError(f"{DISTRIBUTION} is installed but holds no libdnnl.so.3")
    return str(dist.locate_file(names[0]).resolve())


def _declare(lib) -> None:
    status = [
        ("dnnl_engine_create", [POINTER(c_void_p), c_int, c_size_t]),
        ("dnnl_stream_create", [POINTER(c_void_p), c_void_p, c_uint]),
        ("dnnl_stream_wait", [c_void_p]),
        ("dnnl_memory_desc_create_with_strides", [POINTER(c_void_p), c_int, Dims, c_int, Dims]),
        ("dnnl_memory_desc_create_with_tag", [POINTER(c_void_p), c_int, Dims, c_int, c_int]),
        ("dnnl_memory_desc_destroy", [c_void_p]),
        ("dnnl_memory_create", [POINTER(c_void_p), c_void_p, c_void_p, c_void_p]),
        ("dnnl_memory_destroy", [c_void_p]),
        ("dnnl_convolution_forward_primitive_desc_create",
         [POINTER(c_void_p), c_void_p, c_int, c_int, c_void_p, c_void_p, c_void_p, c_void_p,
          Dims, Dims, Dims, Dims, c_void_p]),
        ("dnnl_convolution_backward_data_primitive_desc_create",
         [POINTER(c_void_p), c_void_p, c_int, c_void_p, c_void_p, c_void_p, Dims, Dims, Dims, Dims,
          c_void_p, c_void_p]),
        ("dnnl_convolution_backward_weights_primitive_desc_create",
         [POINTER(c_void_p), c_void_p, c_int, c_void_p, c_void_p, c_void_p, c_void_p, Dims, Dims, Dims,
          Dims, c_void_p, c_void_p]),
        ("dnnl_batch_normalization_forward_primitive_desc_create",
         [POINTER(c_void_p), c_void_p, c_int, c_void_p, c_void_p, c_float, c_uint, c_void_p]),
        ("dnnl_batch_normalization_backward_primitive_desc_create",
         [POINTER(c_void_p), c_void_p, c_int, c_void_p, c_void_p, c_void_p, c_float, c_uint, c_void_p, c_void_p]),
        ("dnnl_reorder_primitive_desc_create", [POINTER(c_void_p), c_void_p, c_void_p, c_void_p, c_void_p, c_void_p]),
        ("dnnl_primitive_desc_query", [c_void_p, c_int, c_int, c_void_p]),
        ("dnnl_primitive_desc_destroy", [c_void_p]),
        ("dnnl_primitive_create", [POINTER(c_void_p), c_void_p]),
        ("dnnl_primitive_destroy", [c_void_p]),
        ("dnnl_primitive_execute", [c_void_p, c_void_p, c_int, POINTER(ExecArg)]),
    ]
    for name, args in status:
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, c_int
    lib.dnnl_primitive_desc_query_md.argtypes = [c_void_p, c_int, c_int]
    lib.dnnl_primitive_desc_query_md.restype = c_void_p
    lib.dnnl_memory_desc_get_size.argtypes = [c_void_p]
    lib.dnnl_memory_desc_get_size.restype = c_size_t
    lib.dnnl_memory_desc_equal.argtypes = [c_void_p, c_void_p]
    lib.dnnl_memory_desc_equal.restype = c_int
    lib.dnnl_version.restype = POINTER(Version)


def library():
    """The loaded library (loaded once), or OneDNNError saying why it cannot be used."""
    with _lock:
        if _state["lib"] is None and _state["error"] is None:
            try:
                # oneDNN runs on GNU OpenMP, whose idle threads spin by default after each parallel
                # region and take the cores from lucid's own threads (batch norm ran 1.5x slower);
                # read once, when libgomp loads, so it is set before. An explicit setting is kept.
                os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
                lib = ctypes.CDLL(library_path())
                _state["omp"] = ctypes.CDLL("libgomp.so.1")
                os.register_at_fork(after_in_child=_after_fork_in_child)
                _declare(lib)
                _state["lib"] = lib
            except (OSError, AttributeError, OneDNNError) as e:
                _state["error"] = str(e)
        if _state["lib"] is None:
            raise OneDNNError(f"oneDNN cannot be used: {_state['error']}")
        return _state["lib"]


def available() -> bool:
    """Whether the oneDNN library loads in this process."""
    return not unavailable_reason()


def unavailable_reason() -> str:
    """Why ``library()`` fails ('' when it loads)."""
    try:
        library()
    except OneDNNError as e:
        return str(e)
    return ""


def set_enabled(flag: bool | None) -> None:
    """Run float32 CPU convolutions and batch norm on oneDNN (True), never (False), or as LUCID_ONEDNN says (None)."""
    _choice["enabled"] = flag


def enabled() -> bool:
    """Whether float32 CPU convolutions and batch norm run on oneDNN.

    ``set_enabled`` decides if it was called; else LUCID_ONEDNN: ``0`` off, ``1`` on (an
    error naming the reason if the library cannot load), unset or ``auto``: on when the
    ``onednn`` extra is installed.
    """
    flag = _choice["enabled"]
    if flag is None:
        env = os.environ.get("LUCID_ONEDNN", "auto").strip().lower()
        if env not in ("0", "1", "auto", ""):
            raise ValueError(f"LUCID_ONEDNN must be 0, 1 or auto, got {env!r}")
        if env == "0":
            return False
        if env == "1":
            library()  # raises, saying why
            return True
        return available()
    if flag:
        library()
    return bool(flag)


def runnable() -> bool:
    """Whether new work goes to oneDNN here: ``enabled()`` and not in a forked child (see ``forked``)."""
    return enabled() and not forked()


def version() -> str:
    """The loaded library's version, e.g. '3.2.0'."""
    v = library().dnnl_version().contents
    return f"{v.major}.{v.minor}.{v.patch}"


def check(status: int, call: str) -> None:
    if status != 0:
        raise OneDNNError(f"oneDNN {call} failed with status {status}")


def _engine_and_stream():
    """The CPU engine and stream (plain handles that stay valid in a forked child, as primitives do)."""
    lib = library()
    with _lock:
        if _state["engine"] is None:
            engine, stream = c_void_p(), c_void_p()
            check(lib.dnnl_engine_create(byref(engine), CPU, 0), "dnnl_engine_create")
            check(lib.dnnl_stream_create(byref(stream), engine, STREAM_IN_ORDER), "dnnl_stream_create")
            _state.update(engine=engine, stream=stream)
        return _state["engine"], _state["stream"]


def dims(values) -> Dims:
    out = Dims()
    for i, v in enumerate(values):
        out[i] = int(v)
    return out


class Desc:
    """An owned memory descriptor: of given dims and element strides, or of format 'any'."""

    def __init__(self, shape, strides=None):
        lib = library()
        self.handle = c_void_p()
        if strides is None:
            check(lib.dnnl_memory_desc_create_with_tag(byref(self.handle), len(shape), dims(shape), F32, TAG_ANY),
                  "dnnl_memory_desc_create_with_tag")
        else:
            check(lib.dnnl_memory_desc_create_with_strides(byref(self.handle), len(shape), dims(shape), F32,
                                                           dims(strides)), "dnnl_memory_desc_create_with_strides")
        self.lib = lib

    def __del__(self):
        if getattr(self, "handle", None):
            self.lib.dnnl_memory_desc_destroy(self.handle)


def _after_fork_in_child() -> None:
    _state["forked"] = True


def forked() -> bool:
    """Whether this process is a fork of one that had loaded oneDNN.

    GNU OpenMP's thread pool does not survive a fork: oneDNN's first parallel region in
    the child would hang (even at one thread), so ``execute`` refuses to run there.
    """
    return _state["forked"]


def _use_threads() -> None:
    """OpenMP threads for this thread's oneDNN calls: as many as lucid's other kernels use."""
    from lucid.ops.blocked import num_workers

    threads = num_workers()
    if _local.__dict__.get("threads") != threads:
        _state["omp"].omp_set_num_threads(threads)
        _local.threads = threads


def execute(primitive, args: dict) -> None:
    """Run ``primitive`` on {arg name: (memory descriptor, array)}; the arrays' buffers are used in place."""
    if _state["forked"]:
        raise OneDNNError("oneDNN cannot run in a process forked from one that used it (GNU OpenMP's threads do "
                          "not survive fork()); start the process with 'spawn' or 'forkserver', or set "
                          "LUCID_ONEDNN=0 in the parent")
    lib = library()
    engine, stream = _engine_and_stream()
    _use_threads()
    n = len(args)
    packed = (ExecArg * n)()
    memories = []
    try:
        for i, (name, (md, array)) in enumerate(args.items()):
            mem = c_void_p()
            check(lib.dnnl_memory_create(byref(mem), md, engine, c_void_p(array.ctypes.data)), "dnnl_memory_create")
            memories.append(mem)
            packed[i].arg, packed[i].memory = ARG[name], mem.value
        check(lib.dnnl_primitive_execute(primitive, stream, n, packed), "dnnl_primitive_execute")
        check(lib.dnnl_stream_wait(stream), "dnnl_stream_wait")
    finally:
        for mem in memories:
            lib.dnnl_memory_destroy(mem)


class Primitive:
    """A oneDNN primitive and its descriptor, from a ``dnnl_*_primitive_desc_create`` call."""

    def __init__(self, create: str, *args):
        lib = library()
        engine, _ = _engine_and_stream()
        self.lib = lib
        self.pd, self.handle = c_void_p(), c_void_p()
        fn = getattr(lib, create)
        if create == "dnnl_reorder_primitive_desc_create":
            check(fn(byref(self.pd), args[0], engine, args[1], engine, None), create)
        else:
            check(fn(byref(self.pd), engine, *args), create)
        check(lib.dnnl_primitive_create(byref(self.handle), self.pd), "dnnl_primitive_create")

    def md(self, what: str):
        """The primitive's memory descriptor for ``what`` ('src', 'weights', 'diff_weights', ...)."""
        return self.lib.dnnl_primitive_desc_query_md(self.pd, QUERY[what], 0)

    def size(self, what: str) -> int:
        """Bytes of the primitive's ``what`` memory."""
        return self.lib.dnnl_memory_desc_get_size(self.md(what))

    def implementation(self) -> str:
        """The name of the implementation oneDNN chose (e.g. 'brg:avx2', 'jit:avx2', 'gemm:jit')."""
        name = c_char_p()
        check(self.lib.dnnl_primitive_desc_query(self.pd, QUERY_IMPL_INFO, 0, byref(name)), "dnnl_primitive_desc_query")
        return name.value.decode()

    def __call__(self, **args) -> None:
        execute(self.handle, args)

    def __del__(self):
        lib = getattr(self, "lib", None)
        if lib is not None:
            if self.handle:
                lib.dnnl_primitive_destroy(self.handle)
            if self.pd:
                lib.dnnl_primitive_desc_destroy(self.pd)


class Plans:
    """A bounded cache of plans (a shape's primitives) built by ``build(*key)``; least recently used dropped first."""

    def __init__(self, build: Callable, capacity: int = 256):
        self.build, self.capacity, self.items = build, capacity, OrderedDict()

    def get(self, *key):
        plan = self.items.get(key)
        if plan is None:
            plan = self.items[key] = self.build(*key)
            if len(self.items) > self.capacity:
                self.items.popitem(last=False)
        else:
            self.items.move_to_end(key)
        return plan
