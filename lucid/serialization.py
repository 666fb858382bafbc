"""``lucid.save`` / ``lucid.load``: tensors and nested containers in one safetensors file.

Format (docs/serialization.md): a standard safetensors file whose tensors are named
"0", "1", ... and whose header metadata holds ``format = "lucid"``, ``version`` and
``structure``: a JSON description of the saved object in which every tensor or
NumPy array is replaced by a reference to its entry. Nothing is ever unpickled, so
loading an untrusted file can only yield data.
"""
from __future__ import annotations

import json
import math
import os
import struct
from typing import Any, BinaryIO

import numpy as np

from lucid import _backend
from lucid.nn.parameter import Parameter, is_uninitialized
from lucid.tensor import Tensor

FORMAT = "lucid"
VERSION = "1"
_MAX_HEADER = 100_000_000  # safetensors' own limit on the JSON header


# -- save --------------------------------------------------------------------------
class _Encoder:
    """Turns an object into JSON-able structure, collecting its arrays under names.

    Arrays are named "0", "1", ... unless ``name_of(where)`` gives a name from the
    object's path (sharded checkpoints use readable names such as model/fc.weight).
    """

    def __init__(self, name_of=None) -> None:
        self.name_of = name_of
        self.arrays: dict[str, np.ndarray] = {}
        self.names: dict[int, str] = {}
        self.alive: list = []  # keeps encoded objects alive so their ids stay unique

    def array_name(self, obj: Any, array, where: str) -> str:
        name = self.names.get(id(obj))
        if name is None:
            host = _backend.asnumpy(array)
            if host.dtype == object:
                raise TypeError("lucid.save: arrays of Python objects cannot be saved")
            name = self.name_of(where) if self.name_of else str(len(self.arrays))
            if name in self.arrays:  # two paths given one name (e.g. keys 0 and "0"): keep both
                name = f"{name}#{len(self.arrays)}"
            self.names[id(obj)] = name
            # copy(order='C') rather than ascontiguousarray, which turns 0-d arrays into 1-d
            self.arrays[name] = host if host.flags.c_contiguous else host.copy(order="C")
            self.alive.append(obj)
        return name

    def encode(self, obj: Any, where: str) -> Any:
        if obj is None or isinstance(obj, (bool, int, str)):
            return obj
        if isinstance(obj, float):
            return obj if math.isfinite(obj) else {"$float": repr(obj)}
        if isinstance(obj, Tensor):
            if is_uninitialized(obj):
                raise TypeError(f"lucid.save: {where} is an uninitialized parameter of a lazy module; run a forward pass first")
            entry = {"$tensor": self.array_name(obj, obj.data, where), "device": obj.device}
            if obj.requires_grad:
                entry["requires_grad"] = True
            if isinstance(obj, Parameter):
                entry["parameter"] = True
            return entry
        if isinstance(obj, np.ndarray):
            return {"$ndarray": self.array_name(obj, obj, where)}
        if isinstance(obj, np.generic):
            return {"$npscalar": self.array_name(obj, np.asarray(obj), where)}
        if isinstance(obj, list):
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        if isinstance(obj, tuple):
            return {"$tuple": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
        if isinstance(obj, dict):
            return self.encode_dict(obj, where)
        raise TypeError(
            f"lucid.save: cannot save {where} of type {type(obj).__name__}; supported are dicts, lists, "
            "tuples, str, int, float, bool, None, lucid Tensors and NumPy arrays"
        )

    def encode_dict(self, obj: dict, where: str) -> dict:
        plain = all(isinstance(k, str) and not k.startswith("$") for k in obj)
        if plain:
            return {k: self.encode(v, f"{where}[{k!r}]") for k, v in obj.items()}
        pairs = []
        for k, v in obj.items():
            if not (k is None or isinstance(k, (bool, int, float, str, tuple))):
                raise TypeError(f"lucid.save: cannot save dict key {k!r} of type {type(k).__name__} in {where}")
            pairs.append([self.encode(k, f"{where} key"), self.encode(v, f"{where}[{k!r}]")])
        return {"$dict": pairs}


def save(obj: Any, f: str | os.PathLike | BinaryIO) -> None:
    """Write ``obj`` (a Tensor, array, or nested dict/list/tuple of them and plain values) to ``f``.

    ``f`` is a path (written to a temporary file first, then renamed into place, so a
    crash never leaves half a checkpoint) or a binary file object.
    """
    import safetensors.numpy  # imported here: keeps `import lucid` free of it (e.g. in a torch-only venv)

    enc = _Encoder()
    structure = enc.encode(obj, "obj")
    metadata = {"format": FORMAT, "version": VERSION, "structure": json.dumps(structure, allow_nan=False)}
    if hasattr(f, "write"):
        f.write(safetensors.numpy.save(enc.arrays, metadata=metadata))
        return
    path = os.fspath(f)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        safetensors.numpy.save_file(enc.arrays, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# -- load --------------------------------------------------------------------------
def _read_metadata(data: bytes | None, path: str, fh: BinaryIO | None) -> dict:
    """The lucid metadata of a safetensors header; ValueError naming ``path`` otherwise."""

    def fail(reason: str):
        raise ValueError(f"{path} is not a lucid save file ({reason})")

    head = data[:8] if data is not None else fh.read(8)
    if len(head) < 8:
        fail("too short for a safetensors header")
    (size,) = struct.unpack("<Q", head)
    if size > _MAX_HEADER:
        fail("no safetensors header")
    raw = data[8 : 8 + size] if data is not None else fh.read(size)
    if len(raw) < size:
        fail("truncated safetensors header")
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        fail("no safetensors header")
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "structure" not in meta:
        fail("a safetensors file without lucid metadata; read plain safetensors with safetensors.numpy.load_file")
    if meta.get("version") != VERSION:
        fail(f"format version {meta.get('version')!r}, this lucid reads version {VERSION}")
    return meta


def _device_map(map_location: Any):
    """A function from a saved device string to the device to load onto."""
    if map_location is None:
        return lambda saved: saved
    if isinstance(map_location, str):
        target = _backend.parse_device(map_location)
        return lambda saved: target
    if isinstance(map_location, dict):
        mapping = {_backend.parse_device(k): _backend.parse_device(v) for k, v in map_location.items()}
        return lambda saved: mapping.get(saved, saved)
    raise TypeError(f"lucid.load: map_location must be None, a device string or a dict of them, got {type(map_location).__name__}")


class _Decoder:
    """Rebuilds the saved object; an entry referenced twice becomes one shared object."""

    def __init__(self, arrays: dict, device_for) -> None:
        self.arrays = arrays
        self.device_for = device_for
        self.built: dict[str, Any] = {}

    def array(self, name: str) -> np.ndarray:
        a = self.arrays[name]
        return a if a.flags.writeable else a.copy()

    def tensor(self, entry: dict) -> Tensor:
        name = entry["$tensor"]
        if name not in self.built:
            device = self.device_for(_backend.parse_device(entry.get("device", "cpu")))
            t = Tensor._wrap(_backend.to_device(self.array(name), device), device)
            if entry.get("parameter"):
                t = Parameter(t, requires_grad=entry.get("requires_grad", False))
            elif entry.get("requires_grad"):
                t.requires_grad = True
            self.built[name] = t
        return self.built[name]

    def decode(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.decode(v) for v in node]
        if not isinstance(node, dict):
            return node
        if "$tensor" in node:
            return self.tensor(node)
        if "$ndarray" in node:
            return self.built.setdefault(node["$ndarray"], self.array(node["$ndarray"]))
        if "$npscalar" in node:
            return self.arrays[node["$npscalar"]][()]
        if "$float" in node:
            return float(node["$float"])
        if "$tuple" in node:
            return tuple(self.decode(v) for v in node["$tuple"])
        if "$dict" in node:
            return {self.decode(k): self.decode(v) for k, v in node["$dict"]}
        return {k: self.decode(v) for k, v in node.items()}


def load(f: str | os.PathLike | BinaryIO, map_location: Any = None) -> Any:
    """Read an object written by ``lucid.save``.

    ``map_location``: None puts tensors back on the device they were saved from; a
    device string ("cpu", "gpu:1") puts all of them there; a dict maps saved devices to
    new ones (e.g. ``{"gpu:1": "gpu:0"}``).
    """
    import safetensors.numpy  # imported here: see save()

    device_for = _device_map(map_location)
    if hasattr(f, "read"):
        data = f.read()
        name = getattr(f, "name", "<file object>")
        meta = _read_metadata(data, str(name), None)
        arrays = safetensors.numpy.load(data)
    else:
        path = os.fspath(f)
        with open(path, "rb") as fh:
            meta = _read_metadata(None, path, fh)
        arrays = safetensors.numpy.load_file(path)
    try:
        return _Decoder(arrays, device_for).decode(json.loads(meta["structure"]))
    except RuntimeError as exc:
        raise RuntimeError(f"lucid.load: {exc}; pass map_location='cpu' to load onto the CPU") from None
