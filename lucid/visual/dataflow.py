"""Which drawn node feeds which: the dataflow edges of a chart, with merge ops as nodes.

Given a graph trace (``trace_graph``) and the chart's choice of what is drawn, the calls
are replayed in order. A drawn module call gets an edge from whatever produced each of
its input tensors. Producers are found through the autograd graph: a tensor output by
a drawn call is that call's node; an op with two or more activation inputs (the
residual ``add_relu``, split attention's ``add``/``mul``) becomes a node of its own,
placed in the innermost drawn container whose call recorded it; any other op (flatten,
split, a functional relu) is looked through. Repeats drawn once ("x N") stand for
their hidden copies: a hidden copy's output counts as the representative's output,
and nothing inside a hidden copy is drawn.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from lucid.tensor import Tensor
from lucid.visual.trace import Trace


@dataclass
class Drawn:
    """What the chart draws, keyed by ``id(module)``.

    leaves: (id(module), call index) -> node id of a module drawn as a node.
    containers: id(module) -> subgraph id of a module drawn as a subgraph.
    aliases: id(hidden copy) -> id(the representative drawn for it).
    hidden: ids of modules inside hidden copies (their calls are not drawn).
    groups: ids of containers drawn as their members only (no box of their own).
    """

    leaves: dict[tuple[int, int], str] = field(default_factory=dict)
    containers: dict[int, str] = field(default_factory=dict)
    aliases: dict[int, int] = field(default_factory=dict)
    hidden: set[int] = field(default_factory=set)
    groups: set[int] = field(default_factory=set)


@dataclass
class OpNode:
    node_id: str
    label: str  # the op's name in snake case: add_relu, add, mul
    parent: str | None  # subgraph id, None at the top level


@dataclass
class Dataflow:
    edges: list[tuple[str, str]]
    ops: list[OpNode]


def op_label(name: str) -> str:
    """AddReLU -> add_relu, Mul -> mul (the functional names)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.replace("ReLU", "Relu")).lower()


def _key(x: Any) -> Any:
    """What identifies the value of a tensor in the graph: its producing op, or itself when a leaf."""
    return x._node if isinstance(x, Tensor) and x._node is not None else x


class _Replay:
    def __init__(self, tr: Trace, drawn: Drawn, new_id):
        self.drawn, self.new_id = drawn, new_id
        self.producer: dict[int, list[str]] = {id(_key(tr.input)): ["input"]}
        self.resolved: dict[int, list[str]] = {}  # id(op) -> drawn sources (memo)
        self.ops: dict[int, tuple[Any, OpNode]] = {}
        self.edges: dict[tuple[str, str], None] = {}
        self.rep_out: dict[tuple[int, int], list[str]] = {}
        self.container_calls = [c for kind, c in tr.events if kind == "post" and id(c.module) in drawn.containers]

    def edge(self, a: str, b: str) -> None:
        if a != b:
            self.edges[(a, b)] = None

    def sources(self, x: Any) -> list[str]:
        """Drawn nodes that produce the tensor (or graph node) ``x``."""
        k = _key(x)
        if id(k) in self.producer:
            return self.producer[id(k)]
        if isinstance(k, Tensor):
            return []  # a parameter, buffer or constant
        if id(k) in self.resolved:
            return self.resolved[id(k)]
        inputs = [e for e in getattr(k, "edges", ()) if e is not None and (not isinstance(e, Tensor) or id(e) in self.producer)]
        if len(inputs) >= 2:
            op = OpNode(self.new_id(), op_label(k.name), self.placement(k.seq))
            self.ops[id(k)] = (k, op)
            self.resolved[id(k)] = [op.node_id]
            for e in inputs:
                for s in self.sources(e):
                    self.edge(s, op.node_id)
        else:
            self.resolved[id(k)] = [s for e in inputs for s in self.sources(e)]
        return self.resolved[id(k)]

    def placement(self, seq: int) -> str | None:
        inside = [c for c in self.container_calls if c.start < seq < c.end]
        return self.drawn.containers[id(max(inside, key=lambda c: c.start).module)] if inside else None

    def pre(self, call) -> None:
        node = self.drawn.leaves.get((id(call.module), call.index))
        if node is not None:
            for t in call.inputs:
                for s in self.sources(t):
                    self.edge(s, node)

    def post(self, call) -> None:
        m, k, out = id(call.module), call.index, call.output
        if not isinstance(out, Tensor):
            return
        if (m, k) in self.drawn.leaves:
            self.producer[id(_key(out))] = [self.drawn.leaves[(m, k)]]
        elif m in self.drawn.containers or m in self.drawn.groups:
            self.rep_out[(m, k)] = self.producer[id(_key(out))] = list(self.sources(out))
        elif m in self.drawn.aliases:
            rep = self.drawn.aliases[m]
            node = self.drawn.leaves.get((rep, k))
            self.producer[id(_key(out))] = [node] if node else self.rep_out.get((rep, k), [])


def dataflow(tr: Trace, drawn: Drawn, new_id) -> Dataflow:
    """Edges between drawn nodes (ids from ``drawn``, "input", "output") and the merge-op nodes.

    ``new_id()`` returns a fresh node id for each merge op.
    """
    replay = _Replay(tr, drawn, new_id)
    for kind, call in tr.events:
        if id(call.module) in drawn.hidden:
            continue
        (replay.pre if kind == "pre" else replay.post)(call)
    if isinstance(tr.output, Tensor):
        for s in replay.sources(tr.output):
            replay.edge(s, "output")
    ops = [op for _, op in sorted(replay.ops.values(), key=lambda pair: pair[0].seq)]
    return Dataflow(list(replay.edges), ops)
