"""summary(model, input_shape): a table of layers, output shapes, parameters and MACs.

MACs are the multiply-accumulates of the convolution and linear layers (the GEMMs)
for one forward of ``input_shape``: output elements x (in_channels/groups x kh x kw)
for a conv, output elements x in_features for a linear layer. Normalisation,
activations, pooling and additions are not counted (they are not MACs and are a
fraction of a percent of a ResNet's work). ResNet-50 at 1x3x224x224: ~4.09 GMACs.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import IO, Sequence

from lucid.visual.kinds import layer_kind
from lucid.visual.labels import count_text
from lucid.visual.trace import ModuleRecord, format_shape, trace


def module_macs(record: ModuleRecord) -> int:
    """MACs of one leaf conv/linear module during the trace (0 for any other module)."""
    weight = getattr(record.module, "weight", None)
    if layer_kind(record.module) not in ("conv", "linear") or weight is None or weight.ndim < 2:
        return 0
    per_output = 1
    for s in weight.shape[1:]:
        per_output *= int(s)
    return record.out_elements * per_output


@dataclass
class SummaryRow:
    name: str
    type_name: str
    level: int
    out_shape: tuple[int, ...] | None
    params: int
    macs: int


@dataclass
class ModelSummary:
    """The rows of the table and the totals (over the whole model, whatever the depth)."""

    rows: list[SummaryRow]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...] | None
    total_params: int
    trainable_params: int
    total_macs: int

    def __str__(self) -> str:
        header = f"{'Layer (type)':<48}{'Output shape':>22}{'Params':>14}{'MACs':>12}"
        lines = [header, "-" * len(header)]
        for r in self.rows:
            label = "  " * (r.level - 1) + f"{r.name.rsplit('.', 1)[-1]} ({r.type_name})"
            lines.append(f"{label:<48}{format_shape(r.out_shape):>22}{r.params:>14,}{count_text(r.macs):>12}")
        lines += ["-" * len(header),
                  f"Input {format_shape(self.input_shape)} -> output {format_shape(self.output_shape)}",
                  f"Total params: {self.total_params:,} (trainable: {self.trainable_params:,})",
                  f"Total MACs: {count_text(self.total_macs)} ({self.total_macs:,}; conv and linear layers)"]
        return "\n".join(lines)


def summary(model, input_shape: Sequence[int], depth: int = 2, file: IO[str] | None = None) -> ModelSummary:
    """Print (to ``file``, default stdout) and return the summary of ``model`` on ``input_shape``.

    ``depth`` limits the rows to modules at most that many levels below the model;
    parameters and MACs of a row include everything inside it.
    """
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"summary: depth must be an integer >= 1, got {depth!r}")
    records = trace(model, input_shape)
    leaf_macs = {name: module_macs(r) for name, r in records.items()
                 if name and not any(True for _ in r.module.children())}
    rows = []
    for name, r in records.items():
        level = name.count(".") + 1
        if not name or level > depth:
            continue
        macs = sum(v for k, v in leaf_macs.items() if k == name or k.startswith(name + "."))
        params = sum(p.numel() for p in r.module.parameters())
        rows.append(SummaryRow(name, type(r.module).__name__, level, r.out_shape, params, macs))
    params = list(model.parameters())
    result = ModelSummary(rows, records[""].in_shape, records[""].out_shape, sum(p.numel() for p in params),
                          sum(p.numel() for p in params if p.requires_grad), sum(leaf_macs.values()))
    print(result, file=file or sys.stdout)
    return result
