"""Model visualisation: Mermaid flowcharts and layer summaries traced from a forward pass.

    from lucid.visual import build_mermaid_chart, summary
    print(build_mermaid_chart(resnet_50(), (1, 3, 224, 224)))
    summary(resnet_50(), (1, 3, 224, 224))

Command line: ``python -m lucid.visual chart resnet_50 --input 1,3,224,224 -o resnet_50.mmd``
and ``python -m lucid.visual summary resnet_50``.
"""
from lucid.visual.grammar import Flowchart, parse_flowchart
from lucid.visual.items import ChartItem
from lucid.visual.kinds import KIND_COLORS, layer_kind
from lucid.visual.mermaid import build_mermaid_chart
from lucid.visual.summary import ModelSummary, summary
from lucid.visual.trace import ModuleRecord, Trace, trace, trace_graph

__all__ = ["ChartItem", "Flowchart", "KIND_COLORS", "ModelSummary", "ModuleRecord", "Trace", "build_mermaid_chart",
           "layer_kind", "parse_flowchart", "summary", "trace", "trace_graph"]
