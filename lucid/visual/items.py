"""The module tree of a chart: ChartItems down to a depth, runs of identical siblings merged.

An item is one node (``children is None``) or one subgraph and stands for one module or
a run of identical consecutive siblings (same class, structure, parameter shapes and
input/output shapes), drawn once as ``layer3[1-22]: Bottleneck × 22``. Siblings that
differ in anything (the four ResNet stages, a stage's strided first block) stay apart.
A module that the traced forward never called is not drawn: it is no part of the data
flow (e.g. the ReLU child of a BatchNormAct2d, fused into the normalisation's kernel).
"""
from __future__ import annotations

from dataclasses import dataclass

from lucid.visual.kinds import layer_kind
from lucid.visual.labels import member_name, run_name
from lucid.visual.trace import ModuleRecord


@dataclass
class ChartItem:
    """One node or subgraph of the chart, standing for 1+ identical modules (``records``)."""

    name: str  # attribute name (conv1, layer3[0]) of the first module
    kind: str
    records: list[ModuleRecord]
    parent_name: str = ""
    children: list["ChartItem"] | None = None

    @property
    def count(self) -> int:
        return len(self.records)

    @property
    def class_name(self) -> str:
        return type(self.records[0].module).__name__

    @property
    def label(self) -> str:
        """``conv1``, ``layer3[0]`` or, for a run, ``layer3[1-22]``."""
        if self.count == 1:
            return self.name
        first, last = (r.name.rsplit(".", 1)[-1] for r in (self.records[0], self.records[-1]))
        return run_name(self.parent_name, first, last)

    @property
    def title(self) -> str:
        """``conv1: Conv2d``; a run says how many it stands for: ``layer3[1-22]: Bottleneck × 22``."""
        text = f"{self.label}: {self.class_name}"
        return text if self.count == 1 else f"{text} × {self.count}"

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
    return structure, params, record.in_shape, record.out_shape, record.calls


def _collapse(items: list[ChartItem]) -> list[ChartItem]:
    merged: list[ChartItem] = []
    for item in items:
        last = merged[-1] if merged else None
        if last is not None and _signature(last.records[0]) == _signature(item.records[0]):
            last.records.append(item.records[0])
        else:
            merged.append(item)
    return merged


def chart_items(module, records: dict[int, ModuleRecord], depth: int, collapse: bool, level: int = 1,
                parent_name: str = "") -> list[ChartItem]:
    """ChartItems for the children of ``module`` (``records`` keyed by id(module))."""
    items = []
    for name, child in module.named_children():
        record = records.get(id(child)) or ModuleRecord(name, child)
        if not record.calls:
            continue
        label = member_name(parent_name, name)
        if any(_called(c, records) for c in child.children()) and level < depth:
            children = chart_items(child, records, depth, collapse, level + 1, label)
            items.append(ChartItem(label, "block", [record], parent_name, children))
        else:
            items.append(ChartItem(label, layer_kind(child), [record], parent_name))
    return _collapse(items) if collapse else items


def _called(module, records: dict[int, ModuleRecord]) -> bool:
    record = records.get(id(module))
    return record is not None and record.calls > 0


def members_text(module) -> str:
    """`` (23 × Bottleneck)`` for a Sequential of one class, `` (6 modules)`` of several, else ""."""
    children = list(module.named_children())
    if len(children) < 2 or not all(n.isdigit() for n, _ in children):
        return ""
    classes = {type(c).__name__ for _, c in children}
    return f" ({len(children)} × {classes.pop()})" if len(classes) == 1 else f" ({len(children)} modules)"
