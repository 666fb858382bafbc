"""The transport registry: backends by name, what each needs, and one choice for all ranks.

A backend is a name, the kind of memory its gradients live in ("cpu" or "gpu"), a
factory ``comm -> Transport`` and a check that says why it cannot run here (None
when it can). ``choose_transport`` is collective: every rank reports the name it was
given, its device kind and every backend's verdict in one all-gather, and all ranks
take the same decision from the same table — the same backend everywhere, or the
same error everywhere (unknown name, wrong device, not available on rank r and why,
and which backend would work).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

AUTO = "auto"


@dataclass(frozen=True)
class Backend:
    """One registered transport."""

    name: str
    kind: str  # "cpu" or "gpu": where the gradients it moves must live
    create: Callable[[Any], Any]  # comm -> Transport
    unavailable: Callable[[], str | None]  # why it cannot run on this machine; None: it can
    summary: str


_BACKENDS: dict[str, Backend] = {}
_AUTO_ORDER: dict[str, list[str]] = {"cpu": [], "gpu": []}


def register_backend(backend: Backend, auto_rank: int | None = None) -> None:
    """Add ``backend``; ``auto_rank`` places it in "auto"'s preference list for its kind (lower first)."""
    if backend.kind not in _AUTO_ORDER:
        raise ValueError(f"backend kind must be 'cpu' or 'gpu', got {backend.kind!r}")
    _BACKENDS[backend.name] = backend
    if auto_rank is not None:
        order = _AUTO_ORDER[backend.kind]
        order.insert(min(auto_rank, len(order)), backend.name)


def backend_names() -> list[str]:
    """Valid ``backend=`` values: "auto" and every registered name."""
    return [AUTO, *_BACKENDS]


def get_backend(name: str) -> Backend:
    if name not in _BACKENDS:
        raise ValueError(f"unknown backend {name!r}; valid backends: {', '.join(map(repr, backend_names()))}")
    return _BACKENDS[name]


def device_kind(device: str) -> str:
    return "cpu" if device == "cpu" else "gpu"


def local_report(name: str, device: str) -> dict:
    """What this rank tells the others: the requested name, its device kind, each backend's verdict."""
    kind = device_kind(device)
    why = {}
    for b in _BACKENDS.values():
        if b.kind != kind:
            why[b.name] = f"it moves {b.kind.upper()} buffers and these parameters are on {device!r}"
        else:
            why[b.name] = b.unavailable()
    return {"name": name, "kind": kind, "device": device, "why": why}


def decide(reports: list[dict]) -> str:
    """The backend every rank uses, from every rank's ``local_report`` (the same on each rank).

    Raises ValueError naming what differs or why the requested backend cannot run.
    """
    first = reports[0]
    for r, rep in enumerate(reports):
        for key in ("name", "kind"):
            if rep[key] != first[key]:
                raise ValueError(
                    f"DistributedDataParallel: ranks disagree on the {'backend' if key == 'name' else 'device'}: "
                    f"rank 0 has {first[key if key == 'name' else 'device']!r}, rank {r} has {rep[key if key == 'name' else 'device']!r}"
                )
    name, kind = first["name"], first["kind"]
    usable = [n for n in _BACKENDS if all(rep["why"].get(n) is None for rep in reports)]
    if name == AUTO:
        for candidate in _AUTO_ORDER[kind]:
            if candidate in usable:
                return candidate
        reasons = "; ".join(f"{n}: {_first_reason(reports, n)}" for n in _AUTO_ORDER[kind])
        raise ValueError(f"backend 'auto': no {kind.upper()} backend can run on every rank ({reasons})")
    if name not in _BACKENDS:
        raise ValueError(f"unknown backend {name!r}; valid backends: {', '.join(map(repr, backend_names()))}")
    if name in usable:
        return name
    alternatives = [n for n in usable if _BACKENDS[n].kind == kind]
    hint = f"use {' or '.join(map(repr, alternatives))} (or 'auto')" if alternatives else "no backend can run here"
    raise ValueError(f"backend {name!r} is not available: {_first_reason(reports, name)}; {hint}")


def _first_reason(reports: list[dict], name: str) -> str:
    for r, rep in enumerate(reports):
        if rep["why"].get(name) is not None:
            return f"on rank {r}, {rep['why'][name]}"
    return "available"


def choose_transport(name: str, device: str, comm, wire_dtypes=()) -> Any:
    """The transport for gradients on ``device``, the same on every rank of ``comm``; collective.

    After the choice, the ranks also compare how each dtype in ``wire_dtypes`` will be
    summed (e.g. MPI's float16 type vs a user-defined sum) and fail alike if that differs.
    """
    from lucid.distributed.watchdog import watch

    with watch("DDP backend agreement"):
        chosen = decide(comm.allgather(local_report(name, device)))
    transport = _BACKENDS[chosen].create(comm)
    routes = {str(d): transport.wire_route(d) for d in wire_dtypes}
    with watch("DDP wire agreement"):
        everyone = comm.allgather(routes)
    for r, other in enumerate(everyone):
        if other != everyone[0]:
            raise ValueError(
                f"DistributedDataParallel: ranks would sum gradients differently with backend {chosen!r}: "
                f"rank 0 {everyone[0]}, rank {r} {other}"
            )
    return transport
