"""A checker for the Mermaid flowchart subset that ``build_mermaid_chart`` writes.

``parse_flowchart(text)`` accepts exactly these line forms: a front-matter block
(``---`` / ``title: "..."`` / ``---``), the init directive and ``%%`` comments,
``flowchart DIR``, ``linkStyle ...``, ``subgraph ID["label"]`` / ``end``, node
declarations ``ID["label"];``, ``ID(["label"]);`` or ``ID(("label"));``, ``style ID ...``
and edges ``A --> B;`` / ``A -.-> B;``. It raises ValueError listing every problem: unknown
lines, unbalanced subgraph/end, duplicate ids, edge endpoints that are not declared
nodes, and nodes without exactly one style line.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

_ID = r"[A-Za-z_][A-Za-z0-9_]*"
_NODE = re.compile(rf'^(?P<id>{_ID})(?:\["(?P<a>[^"]*)"\]|\(\["(?P<b>[^"]*)"\]\)|\(\("(?P<c>[^"]*)"\)\));$')
_SUBGRAPH = re.compile(rf'^subgraph (?P<id>{_ID})\["(?P<label>[^"]*)"\]$')
_STYLE = re.compile(rf"^style (?P<id>{_ID}) \S.*$")
_EDGE = re.compile(rf"^(?P<a>{_ID}) (?:-->|-\.->) (?P<b>{_ID});$")
_HEADER = re.compile(r"^flowchart (LR|RL|TB|TD|BT)$")


@dataclass
class Flowchart:
    """The parsed chart: title, node labels, subgraphs (label, parent, member ids), edges, styles."""

    title: str | None = None
    nodes: dict[str, str] = field(default_factory=dict)
    parents: dict[str, str | None] = field(default_factory=dict)  # node/subgraph id -> subgraph id
    subgraphs: dict[str, str] = field(default_factory=dict)  # id -> label
    edges: list[tuple[str, str]] = field(default_factory=list)
    styles: dict[str, int] = field(default_factory=dict)  # id -> number of style lines

    def members(self, subgraph_id: str) -> list[str]:
        """Ids of the nodes and subgraphs directly inside ``subgraph_id``, in order."""
        return [i for i, p in self.parents.items() if p == subgraph_id]

    def subgraph_id(self, label: str) -> str:
        """The id of the subgraph whose label is ``label`` (KeyError if none)."""
        for sg_id, sg_label in self.subgraphs.items():
            if sg_label == label:
                return sg_id
        raise KeyError(f"no subgraph labelled {label!r}; labels: {sorted(self.subgraphs.values())}")


def _declare(chart: Flowchart, ident: str, parent: str | None, problems: list[str], lineno: int) -> None:
    if ident in chart.parents:
        problems.append(f"line {lineno}: id {ident!r} declared twice")
    chart.parents[ident] = parent


def _parse_line(chart: Flowchart, line: str, stack: list[str], problems: list[str], lineno: int) -> None:
    parent = stack[-1] if stack else None
    if m := _SUBGRAPH.match(line):
        _declare(chart, m["id"], parent, problems, lineno)
        chart.subgraphs[m["id"]] = m["label"]
        stack.append(m["id"])
    elif line == "end":
        if not stack:
            problems.append(f"line {lineno}: 'end' without an open subgraph")
        else:
            stack.pop()
    elif m := _NODE.match(line):
        _declare(chart, m["id"], parent, problems, lineno)
        chart.nodes[m["id"]] = next(m[g] for g in "abc" if m[g] is not None)
    elif m := _STYLE.match(line):
        chart.styles[m["id"]] = chart.styles.get(m["id"], 0) + 1
    elif m := _EDGE.match(line):
        chart.edges.append((m["a"], m["b"]))
    elif not (line.startswith("linkStyle ") or line.startswith("%%")):
        problems.append(f"line {lineno}: not a flowchart statement: {line!r}")


def parse_flowchart(text: str) -> Flowchart:
    """Parse and check ``text``; return the Flowchart or raise ValueError listing the problems."""
    chart, stack, problems = Flowchart(), [], []
    lines = [(i, ln.strip()) for i, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    if lines and lines[0][1] == "---":
        closing = next((k for k, (_, ln) in enumerate(lines[1:], 1) if ln == "---"), None)
        if closing is None:
            problems.append("front matter opened with '---' is not closed")
            closing = len(lines) - 1
        for lineno, line in lines[1:closing]:
            key, _, value = line.partition(":")
            if key != "title":
                problems.append(f"line {lineno}: front matter holds only 'title', got {line!r}")
                continue
            try:
                chart.title = json.loads(value.strip())
            except json.JSONDecodeError:
                problems.append(f"line {lineno}: the title must be a double-quoted string, got {value.strip()!r}")
        lines = lines[closing + 1:]
    body = [(i, ln) for i, ln in lines if not ln.startswith("%%")]
    if not body or not _HEADER.match(body[0][1]):
        problems.append("the first statement must be 'flowchart LR|RL|TB|TD|BT'")
    for lineno, line in body[1:]:
        _parse_line(chart, line, stack, problems, lineno)
    if stack:
        problems.append(f"subgraph(s) {stack} not closed by 'end'")
    for a, b in chart.edges:
        for end in (a, b):
            if end not in chart.nodes:
                problems.append(f"edge {a} --> {b}: {end!r} is not a declared node")
    for ident in list(chart.nodes) + list(chart.subgraphs):
        count = chart.styles.get(ident, 0)
        if ident in chart.nodes and count != 1 or ident in chart.subgraphs and count > 1:
            problems.append(f"{ident!r} has {count} style lines")
    for ident in chart.styles:
        if ident not in chart.parents:
            problems.append(f"style for undeclared id {ident!r}")
    if problems:
        raise ValueError("invalid Mermaid flowchart:\n  " + "\n  ".join(problems))
    return chart
