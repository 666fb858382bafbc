"""Mermaid flowcharts of a model: containers as subgraphs, repeats collapsed, the dataflow drawn.

``build_mermaid_chart(model, (1, 3, 224, 224))`` runs one traced forward with the
autograd graph recorded (``trace_graph``), turns the module tree into ChartItems down
to ``depth`` levels (``items``), and draws the edges of the real dataflow
(``dataflow``): each drawn call gets an edge from what produced its inputs, and
residual joins appear as ``add_relu`` nodes with the skip connection going into them.
A module called twice (a shared ReLU) is drawn once per call. Charts run top to bottom
by default, so deep networks grow downwards instead of into a strip too wide to read.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Sequence

from lucid.visual.dataflow import Dataflow, Drawn, dataflow
from lucid.visual.items import ChartItem, chart_items, members_text
from lucid.visual.kinds import KIND_COLORS
from lucid.visual.labels import caption, count_text, params_of, settings
from lucid.visual.trace import format_shape, shape_of, trace_graph

DIRECTIONS = ("TB", "TD", "BT", "LR", "RL")
_MARK = "%%ops "
_PLAIN_CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")
_SUBGRAPH_STYLE = "fill:#000000,fill-opacity:0.04,stroke:#000000,stroke-opacity:0.6,stroke-width:1px"


def _init(direction: str) -> str:
    curve = "monotoneY" if direction in ("TB", "TD", "BT") else "monotoneX"
    return ('%%{init: {"flowchart":{"curve":"' + curve + '","nodeSpacing":30,"rankSpacing":30,"wrappingWidth":400,'
            '"subGraphTitleMargin":{"top":6,"bottom":14}}} }%%')


@dataclass
class _Renderer:
    show_shapes: bool
    show_params: bool
    call_shapes: dict[tuple[int, int], tuple]  # (id(module), call) -> (input shape, output shape)
    drawn: Drawn = field(default_factory=Drawn)
    next_id: int = 0
    styles: list[str] = field(default_factory=list)

    def new_id(self) -> str:
        self.next_id += 1
        return f"m{self.next_id - 1}"

    def _shapes(self, item: ChartItem, call: int) -> tuple:
        """(input shape, output shape) of the item's ``call``-th call (of its first and last module)."""
        first = self.call_shapes.get((id(item.records[0].module), call), (item.in_shape, None))[0]
        last = self.call_shapes.get((id(item.records[-1].module), call), (None, item.out_shape))[1]
        return first, last

    def _text(self, item: ChartItem, suffix: str, call: int = 0) -> str:
        detail = settings(item.records[0].module)
        text = (item.title + suffix + (f" · {detail}" if detail else "")).replace('"', "#quot;")
        stroke = None if item.kind == "block" else KIND_COLORS[item.kind][1]
        in_shape, out_shape = self._shapes(item, call)
        if self.show_shapes and in_shape and out_shape and in_shape != out_shape:
            text += caption(f"{format_shape(in_shape)} → {format_shape(out_shape)}", stroke)
        if self.show_params:
            n = params_of(item.records[0].module)
            text += caption(f"{count_text(n)} params" + (f" each, {count_text(n * item.count)} in all" if item.count > 1 else ""), None)
        return text

    def assign(self, items: list[ChartItem], out: list[str], indent: str, suffix: str = "") -> None:
        """Give ids to ``items`` and write their declarations to ``out``.

        A container whose first member is itself a subgraph is not boxed: Mermaid would
        draw its title over the inner box's title. Its members are drawn in its place,
        their titles saying how many members it has (``layer3[0]: Bottleneck (of 23)``).
        """
        for item in items:
            rep = item.records[0].module
            for copy in item.records[1:]:
                self.drawn.aliases[id(copy.module)] = id(rep)
                self.drawn.hidden.update(id(m) for m in copy.module.modules() if m is not copy.module)
            if item.children is None:
                fill, stroke = KIND_COLORS[item.kind]
                opening, closing = ('(["', '"])') if item.kind == "block" else ('["', '"]')
                for call in range(max(item.records[0].calls, 1)):
                    node_id = self.new_id()
                    self.drawn.leaves[(id(rep), call)] = node_id
                    out.append(f"{indent}{node_id}{opening}{self._text(item, suffix, call)}{closing};")
                    self.styles.append(f"style {node_id} fill:{fill},stroke:{stroke},stroke-width:1px;")
            elif item.children and item.children[0].children is not None:
                self.drawn.groups.add(id(rep))
                n = len(list(rep.children()))
                self.assign(item.children, out, indent, f" (of {n})" if members_text(rep) else "")
            else:
                sg_id = "sg_" + self.new_id()
                self.drawn.containers[id(rep)] = sg_id
                title = item.title if item.class_name not in _PLAIN_CONTAINERS else item.label
                title += (f" × {item.count}" if item.count > 1 and item.class_name in _PLAIN_CONTAINERS else "")
                title += suffix + members_text(rep)
                if self.show_params:
                    title += f" · {count_text(params_of(rep) * item.count)} params"
                out.append(f'{indent}subgraph {sg_id}["{title}"]')
                out.append(f"{indent}style {sg_id} {_SUBGRAPH_STYLE}")
                self.assign(item.children, out, indent + "    ")
                out.append(f"{indent}{_MARK}{sg_id}")  # where the merge-op nodes of this subgraph go
                out.append(f"{indent}end")

    def place_ops(self, lines: list[str], flow: Dataflow) -> list[str]:
        """``lines`` with each subgraph's marker replaced by its merge-op nodes; top-level ones last."""
        fill, stroke = KIND_COLORS["merge"]
        by_parent: dict[str | None, list[str]] = {}
        for op in flow.ops:
            by_parent.setdefault(op.parent, []).append(f'{op.node_id}(("{op.label}"));')
            self.styles.append(f"style {op.node_id} fill:{fill},stroke:{stroke},stroke-width:1px;")
        result = []
        for line in lines:
            stripped = line.strip()
            if stripped.startswith(_MARK):
                indent = line[: len(line) - len(stripped)] + "    "
                result += [indent + op for op in by_parent.get(stripped[len(_MARK):], [])]
            else:
                result.append(line)
        return result + by_parent.get(None, [])


def build_mermaid_chart(model, input_shape: Sequence[int], depth: int = 2, collapse_repeats: bool = True,
                        show_shapes: bool = True, direction: str = "TB", title: str | None = None,
                        show_params: bool = False) -> str:
    """Mermaid flowchart text of ``model`` traced on an input of ``input_shape``.

    Args:
        depth: module levels below the model to open; containers at this level are
            drawn as single (rounded) nodes, shallower ones as subgraphs.
        collapse_repeats: draw runs of identical consecutive siblings once, as "name × N".
        show_shapes: caption nodes whose shape changes with "(in) → (out)".
        direction: "TB" (default), "TD", "BT", "LR" or "RL".
        title: the chart's title (default: the model's class name).
        show_params: caption nodes and subgraphs with their parameter counts.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"build_mermaid_chart: unknown direction {direction!r}; valid: {', '.join(DIRECTIONS)}")
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"build_mermaid_chart: depth must be an integer >= 1, got {depth!r}")
    tr = trace_graph(model, input_shape)
    by_module = {id(r.module): r for r in tr.records.values()}
    items = chart_items(model, by_module, depth, collapse_repeats)
    call_shapes = {(id(c.module), c.index): (shape_of(c.inputs[0]) if c.inputs else None, shape_of(c.output))
                   for kind, c in tr.events if kind == "post"}
    r = _Renderer(show_shapes, show_params, call_shapes)
    top: list[str] = []
    r.assign(items, top, "")
    flow = dataflow(tr, r.drawn, r.new_id)
    body = r.place_ops(top, flow)
    fill, stroke = KIND_COLORS["io"]
    ends = []
    for node_id, name, shape in (("input", "Input", tr.records[""].in_shape), ("output", "Output", tr.records[""].out_shape)):
        ends.append(f'{node_id}["{name}{caption(format_shape(shape), stroke) if show_shapes and shape else ""}"];')
        r.styles.append(f"style {node_id} fill:{fill},stroke:{stroke},stroke-width:1px;")
    head = ["---", f"title: {json.dumps(title or type(model).__name__)}", "---", _init(direction),
            f"flowchart {direction}", "linkStyle default stroke-width:1.5px"]
    edges = [f"{a} --> {b};" for a, b in flow.edges]
    return "\n".join(head + ends[:1] + body + ends[1:] + r.styles + edges) + "\n"
