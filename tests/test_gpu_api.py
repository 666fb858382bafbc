"""lucid's CuPy calls and the fake device checked against the real ``cupy-cuda12x`` wheel.

``import cupy`` works without a GPU, so this runs everywhere the wheel installs
(it is in the ``test`` extra). Every ``cupy.*`` name lucid's source uses must exist
with the keyword arguments lucid passes, and the fake CuPy of the test suite may only
offer names, methods and keywords that real CuPy has: the two cannot drift apart.
"""
import ast
import importlib
import importlib.util
import inspect
import pathlib
import re
import types
import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # CuPy warns when it cannot load NCCL
    cupy = pytest.importorskip("cupy")
    importlib.import_module("cupy.cuda.nccl")
import fake_cupy

ROOTS = {"xp", "cp", "cupy", "_cupy"}  # how lucid's source names the array module
LUCID = pathlib.Path(__file__).resolve().parents[1] / "lucid"
NUMPY_ONLY = {"float64", "float32", "float16", "complex128", "inf"}  # dtypes/constants: same objects


def _chain(node):
    """``cp.cuda.Device`` -> ["cp", "cuda", "Device"]; ``_cupy().cuda`` -> ["_cupy", "cuda"]."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("_cupy", "cupy_module"):
        parts.append("_cupy")
    elif isinstance(node, ast.Name):
        parts.append(node.id)
    else:
        return None
    return parts[::-1]


def lucid_uses():
    """{dotted name: set of keyword names} for every CuPy attribute chain called in lucid/."""
    uses: dict[str, set] = {}
    for path in LUCID.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                chain = _chain(node)
                if chain and chain[0] in ROOTS and len(chain) > 1:
                    uses.setdefault(".".join(chain[1:]), set())
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                chain = _chain(node.func)
                if chain and chain[0] in ROOTS and len(chain) > 1:
                    uses.setdefault(".".join(chain[1:]), set()).update(k.arg for k in node.keywords if k.arg)
    return uses


def _resolve(root, dotted: str):
    obj = root
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _accepts(obj, keyword: str) -> bool:
    """Whether a (Cython or Python) callable of real CuPy takes ``keyword``."""
    if isinstance(obj, cupy.ufunc):
        return keyword in ("out", "dtype", "casting")
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        params = inspect.signature(target).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return True
        return keyword in params
    except (TypeError, ValueError):
        text = (target.__doc__ or "").splitlines()[0] if target.__doc__ else ""
        return bool(re.search(rf"\b{keyword}\b", text)) or "**kwargs" in text


def test_lucid_calls_exist_in_real_cupy_with_their_keywords():
    uses = lucid_uses()
    assert "cuda.Device" in uses and "random.Philox4x3210" in uses  # the scan sees lucid's GPU code
    # ... including the fused kernels, the multi-tensor gather and the batch prefetcher
    assert "kernel_name" in uses["fuse"] and "out" in uses["concatenate"]
    assert "non_blocking" in uses["cuda.Stream"] and "cuda.alloc_pinned_memory" in uses
    problems = []
    for name, keywords in sorted(uses.items()):
        head = name.split(".")[0]
        if head in ("get_current_stream", "Stream"):  # cp.cuda.* reached through a local alias
            continue
        try:
            obj = _resolve(cupy, name)
        except AttributeError:
            # methods of arrays/objects named xp/cp locally are checked where they are called
            problems.append(f"cupy.{name} does not exist")
            continue
        for k in keywords:
            if callable(obj) and not _accepts(obj, k):
                problems.append(f"cupy.{name} has no keyword {k!r}")
    assert not problems, "\n".join(problems)


def _public(obj) -> dict:
    return {n: getattr(obj, n) for n in dir(obj) if not n.startswith("_")}


def _fake_surface(module, prefix=""):
    """(dotted name, object) for every public name the fake offers, submodules included."""
    for name, value in _public(module).items():
        if isinstance(value, types.ModuleType):
            if value.__name__.startswith("fake_cupy"):
                yield from _fake_surface(value, f"{prefix}{name}.")
            continue
        if type(value).__name__ == "_Feature":  # from __future__ import annotations
            continue
        yield prefix + name, value


def _nccl_binary_text() -> str:
    """The docstrings compiled into CuPy's NCCL extension (readable without libnccl)."""
    spec = importlib.util.find_spec("cupy_backends.cuda.libs.nccl")
    return pathlib.Path(spec.origin).read_bytes().decode("latin-1")


def test_fake_nccl_matches_cupys_nccl_extension():
    """Without libnccl, ``cupy.cuda.nccl`` is empty; the compiled extension still names its API."""
    text = _nccl_binary_text()
    nccl = fake_cupy.cuda.nccl
    for name in ("NCCL_SUM", "NCCL_FLOAT16", "NCCL_FLOAT32", "NCCL_FLOAT64", "get_unique_id", "NcclCommunicator"):
        assert name in text and hasattr(nccl, name)
    sig = inspect.signature(nccl.NcclCommunicator.allReduce)
    real = re.search(r"NcclCommunicator\.allReduce\(([^)]*)\)", text).group(1)
    assert [p.split()[-1] for p in real.split(", ")] == list(sig.parameters)
    real_init = re.search(r"NcclCommunicator\(int ndev, bytes commId, int rank", text)
    assert real_init and list(inspect.signature(nccl.NcclCommunicator).parameters)[:3] == ["ndev", "commId", "rank"]


def test_fake_surface_is_a_subset_of_real_cupy():
    missing, bad_keywords = [], []
    for dotted, fake in _fake_surface(fake_cupy):
        if dotted.startswith("cuda.nccl.") and not getattr(cupy.cuda.nccl, "available", False):
            continue  # checked against the compiled extension above
        try:
            real = _resolve(cupy, dotted)
        except AttributeError:
            missing.append(dotted)
            continue
        if inspect.isclass(fake):
            for attr, member in _public(fake).items():
                if not hasattr(real, attr):
                    missing.append(f"{dotted}.{attr}")
                elif inspect.isfunction(member):
                    bad_keywords += _keyword_mismatch(f"{dotted}.{attr}", member, getattr(real, attr))
        elif inspect.isfunction(fake):
            bad_keywords += _keyword_mismatch(dotted, fake, real)
    assert not missing, f"the fake offers what real CuPy lacks: {missing}"
    assert not bad_keywords, "\n".join(bad_keywords)


def _keyword_mismatch(dotted, fake, real) -> list:
    params = [p for p in inspect.signature(fake).parameters.values()
              if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return [f"{dotted}: real CuPy has no keyword {p.name!r}" for p in params if not _accepts(real, p.name)]


def test_fake_ndarray_get_set_match_cupy_14():
    for method in ("get", "set"):
        real = (getattr(cupy.ndarray, method).__doc__ or "").splitlines()[0]
        fake = inspect.signature(getattr(fake_cupy.ndarray, method))
        assert real.endswith(str(fake).replace("'", "'")), (real, str(fake))
