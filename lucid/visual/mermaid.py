"""Mermaid flowcharts of a model: containers as subgraphs, repeats collapsed, shapes traced.

``build_mermaid_chart(model, (1, 3, 224, 224))`` runs one traced forward (see
``trace``), turns the module tree into ChartItems down to ``depth`` levels, merges
runs of consecutive *identical* siblings (same class, structure, parameter shapes and
input/output shapes) into one "Name x N" item, and renders Mermaid text. Siblings that
differ in anything (the four ResNet stages, a stage's strided first block) stay apart.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from lucid.visual.kinds import KIND_COLORS, layer_kind
from lucid.visual.trace import ModuleRecord, format_shape, trace

DIRECTIONS = ("LR", "RL", "TB", "TD", "BT")
_INIT = '%%{init: {"flowchart":{"curve":"monotoneX","nodeSpacing":50,"rankSpacing":50}} }%%'
_SUBGRAPH_STYLE = "fill:#000000,fill-opacity:0.05,stroke:#000000,stroke-opacity:0.75,stroke-width:1px"


@dataclass
class ChartItem:
    """One node (``children is None``) or subgraph of the chart, standing for 1+ identical modules."""

    label: str
    kind: str
    records: list[ModuleRecord]
    children: list["ChartItem"] | None = None

    @property
    def count(self) -> int:
        return len(self.records)

    @property
    def title(self) -> str:
        return self.label if self.count == 1 else f"{self.label} x {self.count}"

    @property
    def in_shape(self):
        return self.records[0].in_shape

    @property
    def out_shape(self):
        return self.records[-1].out_shape


def _signature(record: ModuleRecord) -> tuple:
    """What must agree for two sibling modules to be drawn as one repeated item."""
    m = record.module
    structure = tuple((n, type(s).__name__) for n, s in m.named_modules())
    params = tuple((n, tuple(p.shape)) for n, p in m.named_parameters())
    return structure, params, record.in_shape, record.out_shape, record.calls > 0


def _collapse(items: list[ChartItem]) -> list[ChartItem]:
    merged: list[ChartItem] = []
    for item in items:
        last = merged[-1] if merged else None
        if last is not None and _signature(last.records[0]) == _signature(item.records[0]):
            last.records.append(item.records[0])
        else:
            merged.append(item)
    return merged


def chart_items(module, records: dict[int, ModuleRecord], depth: int, collapse: bool, level: int = 1) -> list[ChartItem]:
    """ChartItems for the children of ``module`` (``records`` keyed by id(module))."""
    items = []
    for name, child in module.named_children():
        record = records.get(id(child)) or ModuleRecord(name, child)
        expandable = any(True for _ in child.children()) and level < depth
        if expandable:
            label = type(child).__name__ if name.isdigit() else name
            children = chart_items(child, records, depth, collapse, level + 1)
            items.append(ChartItem(label, "block", [record], children))
        else:
            items.append(ChartItem(type(child).__name__, layer_kind(child), [record]))
    return _collapse(items) if collapse else items



def _caption(text: str, color: str | None) -> str:
    style = "font-size:11px;" + (f"color:{color};" if color else "") + "font-weight:400"
    return f"<br/><span style='{style}'>{text}</span>"


@dataclass
class _Renderer:
    show_shapes: bool
    lines: list[str] = field(default_factory=list)
    styles: list[str] = field(default_factory=list)
    called: list[tuple[int, str]] = field(default_factory=list)  # (call order, node id)
    next_id: int = 0

    def new_id(self) -> str:
        self.next_id += 1
        return f"m{self.next_id - 1}"

    def node(self, item: ChartItem, indent: str) -> None:
        node_id = self.new_id()
        fill, stroke = KIND_COLORS[item.kind]
        text = item.title.replace('"', "#quot;")
        if self.show_shapes and item.in_shape and item.out_shape and item.in_shape != item.out_shape:
            text += _caption(f"{format_shape(item.in_shape)} → {format_shape(item.out_shape)}",
                             None if item.kind == "block" else stroke)
        opening, closing = ('(["', '"])') if item.kind == "block" else ('["', '"]')
        self.lines.append(f"{indent}{node_id}{opening}{text}{closing};")
        self.styles.append(f"style {node_id} fill:{fill},stroke:{stroke},stroke-width:1px;")
        if item.records[0].order is not None:
            self.called.append((item.records[0].order, node_id))

    def subgraph(self, label: str, children: list[ChartItem], indent: str) -> None:
        sg_id = "sg_" + self.new_id()
        self.lines.append(f'{indent}subgraph {sg_id}["{label}"]')
        self.lines.append(f"{indent}style {sg_id} {_SUBGRAPH_STYLE}")
        for child in children:
            if child.children is None:
                self.node(child, indent + "    ")
            else:
                self.subgraph(child.title, child.children, indent + "    ")
        self.lines.append(f"{indent}end")


def render(title: str, items: list[ChartItem], input_shape, output_shape, direction: str, show_shapes: bool) -> str:
    """Mermaid text: a subgraph for the model holding ``items``, input/output nodes, call-order edges."""
    r = _Renderer(show_shapes)
    r.subgraph(f"<span style='font-size:20px;font-weight:700'>{title}</span>", items, "")
    fill, stroke = KIND_COLORS["io"]
    ends, end_styles = [], []
    for node_id, name, shape in (("input", "Input", input_shape), ("output", "Output", output_shape)):
        caption = _caption(format_shape(shape), stroke) if show_shapes and shape else ""
        ends.append(f'{node_id}["{name}{caption}"];')
        end_styles.append(f"style {node_id} fill:{fill},stroke:{stroke},stroke-width:1px;")
    chain = ["input"] + [node_id for _, node_id in sorted(r.called)] + ["output"]
    edges = [f"{a} --> {b};" for a, b in zip(chain, chain[1:])]
    head = [_INIT, f"flowchart {direction}", "linkStyle default stroke-width:2.0px"]
    return "\n".join(head + r.lines + ends + end_styles + r.styles + edges) + "\n"


def build_mermaid_chart(model, input_shape: Sequence[int], depth: int = 2, collapse_repeats: bool = True,
                        show_shapes: bool = True, direction: str = "LR", title: str | None = None) -> str:
    """Mermaid flowchart text of ``model`` traced on an input of ``input_shape``.

    Args:
        depth: module levels below the model to open; containers at this level are
            drawn as single (rounded) nodes, shallower ones as subgraphs.
        collapse_repeats: draw runs of identical consecutive siblings as "Name x N".
        show_shapes: caption nodes whose shape changes with "(in) → (out)".
        direction: "LR", "RL", "TB", "TD" or "BT".
        title: caption of the outer subgraph (default: the model's class name).
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"build_mermaid_chart: unknown direction {direction!r}; valid: {', '.join(DIRECTIONS)}")
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"build_mermaid_chart: depth must be an integer >= 1, got {depth!r}")
    records = trace(model, input_shape)
    by_module = {id(r.module): r for r in records.values()}
    items = chart_items(model, by_module, depth, collapse_repeats)
    return render(title or type(model).__name__, items, records[""].in_shape, records[""].out_shape,
                  direction, show_shapes)
