"""Module: the base class of every layer and model (PyTorch's ``nn.Module``).

A Module owns three ordered registries, filled by plain attribute assignment:
``_parameters`` (Parameters), ``_buffers`` (Tensors that are state but not learnt,
e.g. BatchNorm's running statistics) and ``_modules`` (child Modules). Everything
else (iteration, ``to``, ``state_dict``, ``repr``) walks those registries.
"""
from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Any, Callable, Iterator, NamedTuple

from lucid import _backend
from lucid.autograd import no_grad
from lucid.autograd.zero_grad import zero_grad
from lucid.dtypes import is_floating
from lucid.nn.parameter import Parameter, is_uninitialized, set_data
from lucid.tensor import Tensor
from lucid.to_args import ToShorthands, parse_to_args

_hook_ids = itertools.count()


class RemovableHandle:
    """Returned by the ``register_*_hook`` methods; ``remove()`` unregisters the hook."""

    def __init__(self, hooks: dict):
        self._hooks = hooks
        self.id = next(_hook_ids)

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self) -> "RemovableHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict`` returns: keys the model lacked in / did not expect from the state."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module(ToShorthands):
    """Base class for layers and models: subclass it and write ``forward``.

    Attributes:
        training: True in training mode (``train()``), False after ``eval()``.
    """

    def __init__(self) -> None:
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_non_persistent_buffers"] = set()
        d["_modules"] = OrderedDict()
        d["_forward_pre_hooks"] = OrderedDict()
        d["_forward_hooks"] = OrderedDict()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward(); subclasses must define it")

    # -- calling and hooks -------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for hook in list(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, out)
            if result is not None:
                out = result
        return out

    def register_forward_pre_hook(self, hook: Callable, prepend: bool = False) -> RemovableHandle:
        """``hook(module, args)`` runs before forward; a non-None result replaces the args."""
        return _add_hook(self._forward_pre_hooks, hook, prepend)

    def register_forward_hook(self, hook: Callable, prepend: bool = False) -> RemovableHandle:
        """``hook(module, args, output)`` runs after forward; a non-None result replaces the output."""
        return _add_hook(self._forward_hooks, hook, prepend)

    # -- registration ------------------------------------------------------------
    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a Parameter (or None, a declared-but-absent one such as ``bias=False``)."""
        self._check_name(name, "_parameters")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                "(lucid.nn.Parameter or None required)"
            )
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add a buffer: state that is not learnt; ``persistent=False`` keeps it out of state_dict."""
        self._check_name(name, "_buffers")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' (Tensor or None required)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        """Add a child module (also what ``self.name = module`` does)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._check_name(name, "_modules")
        self._modules[name] = module

    register_module = add_module

    def _check_name(self, name: str, registry: str) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot register '{name}' before Module.__init__() call")
        if not isinstance(name, str):
            raise TypeError(f"attribute name should be a string, got {type(name).__name__}")
        if name == "" or "." in name:
            raise KeyError(f"attribute name can't be empty or contain '.', got {name!r}")
        if hasattr(self, name) and name not in getattr(self, registry):
            raise KeyError(f"attribute '{name}' already exists")

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if isinstance(value, Parameter):
            _remove_from(self, name)
            self.register_parameter(name, value)
        elif d.get("_parameters") is not None and name in d["_parameters"]:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                    "(lucid.nn.Parameter or None expected)"
                )
            d["_parameters"][name] = None
        elif isinstance(value, Module):
            _remove_from(self, name)
            self.add_module(name, value)
        elif d.get("_modules") is not None and name in d["_modules"]:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' (Module or None expected)")
            d["_modules"][name] = None
        elif d.get("_buffers") is not None and name in d["_buffers"]:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' (Tensor or None expected)")
            d["_buffers"][name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry in d and name in d[registry]:
                return d[registry][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for registry in ("_parameters", "_buffers", "_modules"):
            if name in self.__dict__[registry]:
                del self.__dict__[registry][name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    # -- iteration ---------------------------------------------------------------
    def named_modules(self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True) -> Iterator[tuple[str, "Module"]]:
        """(name, module) for this module and every descendant, depth first."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self) -> Iterator["Module"]:
        for _, child in self.named_children():
            yield child

    def _named_members(self, registry: str, prefix: str, recurse: bool, remove_duplicate: bool):
        seen = set()
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for mod_prefix, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) pairs; a parameter shared by two modules is listed once."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> "Module":
        """The descendant at a dotted path such as ``"layer1.0.conv1"`` ("" is self)."""
        module = self
        for part in target.split(".") if target else []:
            child = module._modules.get(part)
            if child is None:
                raise AttributeError(f"{type(module).__name__} has no submodule '{part}' (in '{target}')")
            module = child
        return module

    # -- modes and bulk updates ----------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Set training mode on this module and every descendant (Dropout, BatchNorm care)."""
        if not isinstance(mode, bool):
            raise ValueError(f"training mode is expected to be boolean, got {mode!r}")
        for m in self.modules():
            m.__dict__["training"] = mode
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop (default) or zero every parameter's ``.grad``."""
        zero_grad(self.parameters(), set_to_none)

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        """Call ``fn`` on every descendant, then on self (e.g. custom weight init)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def _apply_to_arrays(self, convert: Callable) -> "Module":
        """Replace the data of every parameter, gradient and buffer by ``convert(data)``.

        Parameters keep their identity (optimizers built earlier stay valid).
        """
        for m in self.modules():
            for t in itertools.chain(m._parameters.values(), m._buffers.values()):
                if t is None:
                    continue
                set_data(t, convert(t.data))
                if t.grad is not None:
                    set_data(t.grad, convert(t.grad.data))
        return self

    def to(self, *args: Any, **kwargs: Any) -> "Module":
        """``to(device)``, ``to(dtype)`` or both; dtype changes only floating-point tensors."""
        device, dtype = parse_to_args(args, kwargs)

        def convert(a):
            if dtype is not None and is_floating(a.dtype) and a.dtype != dtype:
                a = a.astype(dtype)
            if device is not None:
                a = _backend.to_device(a, device)
            return a

        return self._apply_to_arrays(convert)

    # -- state_dict ----------------------------------------------------------------
    def state_dict(self, destination: dict | None = None, prefix: str = "", keep_vars: bool = False) -> "OrderedDict[str, Tensor]":
        """Parameters and persistent buffers by dotted name; values are detached Tensors
        sharing memory with the module's (``keep_vars=True``: the objects themselves)."""
        if destination is None:
            destination = OrderedDict()
        self._save_to_state_dict(destination, prefix, keep_vars)
        for name, child in self._modules.items():
            if child is not None:
                child.state_dict(destination, prefix + name + ".", keep_vars)
        return destination

    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        for name, t in self._local_state():
            destination[prefix + name] = t if keep_vars or is_uninitialized(t) else t.detach()

    def _local_state(self) -> Iterator[tuple[str, Tensor]]:
        for name, p in self._parameters.items():
            if p is not None:
                yield name, p
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers:
                yield name, b

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> IncompatibleKeys:
        """Copy values from ``state_dict`` into the parameters and buffers (in place).

        Shape mismatches always raise; with ``strict`` (default) missing and unexpected
        keys raise too. The error lists every offending key. Returns
        ``(missing_keys, unexpected_keys)``.
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"expected a dict-like state_dict, got {type(state_dict).__name__}")
        missing: list[str] = []
        expected: set[str] = set()
        errors: list[str] = []
        with no_grad():
            for prefix, module in _walk(self):
                module._load_from_state_dict(state_dict, prefix, missing, expected, errors)
        unexpected = [k for k in state_dict.keys() if k not in expected]
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ".")
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ".")
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors))
        return IncompatibleKeys(missing, unexpected)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, missing: list, expected: set, errors: list) -> None:
        """Load this module's own entries; subclasses extend it (e.g. to default a key)."""
        for name, target in self._local_state():
            key = prefix + name
            expected.add(key)
            if key not in state_dict:
                missing.append(key)
                continue
            value = state_dict[key]
            array = value.data if isinstance(value, Tensor) else value
            if not hasattr(array, "shape"):
                errors.append(f"expected a Tensor for '{key}', got {type(value).__name__}")
                continue
            shape = tuple(array.shape)
            if is_uninitialized(target):
                target.materialize(shape)
            if shape != target.shape:
                errors.append(
                    f"size mismatch for {key}: copying a param with shape {shape} from checkpoint, "
                    f"the shape in current model is {target.shape}."
                )
                continue
            target.data[...] = _backend.to_device(array, target.device)

    # -- printing ------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text inside the parentheses of this module's line in ``repr`` (override it)."""
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): " + repr(child).replace("\n", "\n  ") for name, child in self._modules.items()]
        if len(extra_lines) == 1 and not child_lines:
            return f"{self._get_name()}({extra})"
        lines = extra_lines + child_lines
        body = "\n  " + "\n  ".join(lines) + "\n" if lines else ""
        return f"{self._get_name()}({body})"

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))


def _walk(module: Module, prefix: str = "") -> Iterator[tuple[str, Module]]:
    """Every (prefix, module) the way state_dict sees them: shared modules under each name."""
    yield prefix, module
    for name, child in module._modules.items():
        if child is not None:
            yield from _walk(child, prefix + name + ".")


def _add_hook(hooks: OrderedDict, hook: Callable, prepend: bool) -> RemovableHandle:
    handle = RemovableHandle(hooks)
    hooks[handle.id] = hook
    if prepend:
        hooks.move_to_end(handle.id, last=False)
    return handle


def _remove_from(module: Module, name: str) -> None:
    """Forget ``name`` in every registry and in ``__dict__`` before it is re-registered."""
    d = module.__dict__
    if "_parameters" not in d:
        raise AttributeError(f"cannot assign '{name}' before Module.__init__() call")
    d.pop(name, None)
    for registry in ("_parameters", "_buffers", "_modules"):
        d[registry].pop(name, None)
    d["_non_persistent_buffers"].discard(name)
