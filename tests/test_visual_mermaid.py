"""Mermaid charts: grammar, collapsing of identical siblings only, shapes and colours."""
import numpy as np
import pytest

import lucid.nn as nn
from lucid.models import create_model
from lucid.visual import KIND_COLORS, build_mermaid_chart, parse_flowchart


def _block_counts(chart, stage_label):
    """Blocks drawn in a stage: 'Bottleneck' counts 1, 'Bottleneck x 22' counts 22."""
    counts = []
    for member in chart.members(chart.subgraph_id(stage_label)):
        title = chart.nodes[member].split("<br/>")[0]
        counts.append(int(title.split(" x ")[1]) if " x " in title else 1)
    return counts


def test_resnet_101_chart_shows_every_stage_with_its_depth():
    model = create_model("resnet_101")
    weights_before = model.layer1[0].bn1.running_mean.numpy().copy()
    text = build_mermaid_chart(model, (1, 3, 64, 64), title="resnet_101")
    chart = parse_flowchart(text)
    assert [sum(_block_counts(chart, f"layer{i}")) for i in range(1, 5)] == [3, 4, 23, 3]
    assert _block_counts(chart, "layer3") == [1, 22]  # the strided first block stays apart
    assert "<span style='font-size:20px;font-weight:700'>resnet_101</span>" in chart.subgraphs.values()
    assert model.training  # tracing ran in eval mode and restored the flags ...
    np.testing.assert_array_equal(model.layer1[0].bn1.running_mean.numpy(), weights_before)  # ... and stats


def test_chart_text_follows_the_model_doc_style():
    text = build_mermaid_chart(create_model("resnet_18", layers=[1, 1, 1, 1]), (1, 3, 224, 224))
    lines = text.splitlines()
    assert lines[0].startswith("%%{init:") and lines[1] == "flowchart LR"
    conv = "Conv2d<br/><span style='font-size:11px;color:#c53030;font-weight:400'>(1,3,224,224) → (1,64,112,112)</span>"
    assert f'["{conv}"];' in text
    chart = parse_flowchart(text)
    label_of = chart.nodes
    styles = {ln.split()[1]: ln for ln in lines if ln.startswith("style ")}
    expect = {"Conv2d": "conv", "BatchNorm2d": "norm", "ReLU": "activation", "MaxPool2d": "pool",
              "AdaptiveAvgPool2d": "pool", "Linear": "linear", "Input": "io", "Output": "io"}
    for node_id, label in label_of.items():
        kind = expect.get(label.split("<br/>")[0])
        if kind:
            fill, stroke = KIND_COLORS[kind]
            assert f"fill:{fill},stroke:{stroke}" in styles[node_id], (label, styles[node_id])
    assert 'BatchNorm2d"]' in text  # a node whose shape does not change carries no caption
    # edges run in call order from input through every called node to output
    order = [a for a, _ in chart.edges] + [chart.edges[-1][1]]
    assert order[0] == "input" and order[-1] == "output" and len(set(order)) == len(order) == len(chart.nodes)


def test_only_identical_consecutive_siblings_collapse():
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1), nn.Conv2d(3, 4, 1), nn.ReLU(), nn.ReLU(),
                          nn.Conv2d(4, 4, 1))
    chart = parse_flowchart(build_mermaid_chart(model, (1, 3, 4, 4)))
    titles = [label.split("<br/>")[0] for label in chart.nodes.values()]
    assert titles == ["Conv2d x 2", "Conv2d", "ReLU x 2", "Conv2d", "Input", "Output"]
    flat = parse_flowchart(build_mermaid_chart(model, (1, 3, 4, 4), collapse_repeats=False))
    assert len(flat.nodes) == 8


def test_depth_opens_blocks_and_options_apply():
    model = create_model("resnest_14", num_classes=4)
    shallow = parse_flowchart(build_mermaid_chart(model, (1, 3, 32, 32), depth=1, show_shapes=False))
    assert "layer1" not in shallow.subgraphs.values() and "Sequential" in shallow.nodes.values()
    assert all("<br/>" not in label for label in shallow.nodes.values())
    deep_text = build_mermaid_chart(model, (1, 3, 32, 32), depth=4, direction="TB")
    deep = parse_flowchart(deep_text)
    assert deep_text.splitlines()[1] == "flowchart TB"
    assert {"conv2", "downsample", "_ResNeStBottleneck"} <= set(deep.subgraphs.values())
    assert any(label.startswith("AvgPool2d") for label in deep.nodes.values())  # the avd pool


def test_lazy_model_is_materialised_by_the_trace():
    model = create_model("d2l_resnet_18")
    chart = parse_flowchart(build_mermaid_chart(model, (1, 1, 96, 96), depth=3))
    labels = list(chart.nodes.values())
    assert labels[0] == ("Conv2d<br/><span style='font-size:11px;color:#c53030;font-weight:400'>"
                         "(1,1,96,96) → (1,64,48,48)</span>")  # LazyConv2d became a Conv2d
    assert [chart.subgraphs[sg] for sg in chart.members(chart.subgraph_id("net"))][:2] == ["Sequential"] * 2
    assert sum(p.numel() for p in model.parameters()) == 11_178_378


@pytest.mark.parametrize("kwargs, message", [
    (dict(direction="up"), "unknown direction 'up'; valid: LR, RL, TB, TD, BT"),
    (dict(depth=0), "depth must be an integer >= 1"),
    (dict(input_shape=(1, 3, 0, 8)), "input_shape[2] must be a positive integer"),
])
def test_bad_chart_arguments(kwargs, message):
    args = dict(input_shape=(1, 3, 8, 8)) | kwargs
    with pytest.raises(ValueError) as info:
        build_mermaid_chart(nn.Sequential(nn.ReLU()), **args)
    assert message in str(info.value)


GOOD = """flowchart LR
subgraph sg_a["outer"]
style sg_a fill:#000
    n1["A"];
    n2(["B x 2"]);
end
style n1 fill:#fff;
style n2 fill:#fff;
n1 --> n2;
"""


@pytest.mark.parametrize("bad, problem", [
    (GOOD.replace("end\n", ""), "not closed by 'end'"),
    (GOOD + "end\n", "'end' without an open subgraph"),
    (GOOD + "n2 --> n3;\n", "'n3' is not a declared node"),
    (GOOD.replace("style n2 fill:#fff;\n", ""), "'n2' has 0 style lines"),
    (GOOD + "style n1 fill:#000;\n", "'n1' has 2 style lines"),
    (GOOD + "style n9 fill:#000;\n", "style for undeclared id 'n9'"),
    (GOOD + '    n1["again"];\n', "id 'n1' declared twice"),
    (GOOD + "n1 -> n2\n", "not a flowchart statement"),
    ("graph LR\n", "first statement must be 'flowchart"),
])
def test_grammar_checker_catches(bad, problem):
    parse_flowchart(GOOD)
    with pytest.raises(ValueError, match="invalid Mermaid flowchart") as info:
        parse_flowchart(bad)
    assert problem in str(info.value)
