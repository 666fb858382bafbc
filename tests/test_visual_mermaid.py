"""Mermaid charts: grammar, collapsing of identical siblings only, shapes and colours."""
import re

import numpy as np
import pytest

import lucid.nn as nn
from lucid.models import create_model
from lucid.visual import KIND_COLORS, build_mermaid_chart, parse_flowchart


def _title(label: str) -> str:
    return label.split("<br/>")[0]


def _node(chart, title_start: str, nth: int = 0) -> str:
    """Id of the nth node whose title starts with ``title_start``."""
    return [i for i, label in chart.nodes.items() if _title(label).startswith(title_start)][nth]


def _stage_members(chart, stage: str) -> list[str]:
    sg = next(i for i, label in chart.subgraphs.items() if label.startswith(stage + " "))
    return [_title(chart.nodes[m]) for m in chart.members(sg)]


def test_resnet_101_stages_say_their_block_count():
    model = create_model("resnet_101")
    stats_before = model.layer1[0].bn1.running_mean.numpy().copy()
    chart = parse_flowchart(build_mermaid_chart(model, (1, 3, 64, 64), title="resnet_101"))
    assert chart.title == "resnet_101"
    labels = sorted(chart.subgraphs.values())
    assert [lab for lab in labels if lab.startswith("layer")] == [
        "layer1 (3 × Bottleneck)", "layer2 (4 × Bottleneck)", "layer3 (23 × Bottleneck)", "layer4 (3 × Bottleneck)"]
    assert _stage_members(chart, "layer3") == ["layer3[0]: Bottleneck", "layer3[1-22]: Bottleneck × 22"]
    assert model.training  # tracing ran in eval mode and restored the flags ...
    np.testing.assert_array_equal(model.layer1[0].bn1.running_mean.numpy(), stats_before)  # ... and stats
    assert all(p.grad is None for p in model.parameters())  # the recorded graph was never run backwards


def test_colours_are_rgb_and_styles_follow_the_kind():
    text = build_mermaid_chart(create_model("resnet_18", layers=[1, 1, 1, 1]), (1, 3, 224, 224))
    lines = text.splitlines()
    assert lines[:3] == ["---", 'title: "ResNet"', "---"] and lines[3].startswith("%%{init:") and lines[4] == "flowchart TB"
    conv = ("conv1: Conv2d · 7×7 /2<br/><span style='font-size:11px;font-weight:400;color:rgb(197,48,48)'>"
            "(1,3,224,224) → (1,64,112,112)</span>")
    assert f'["{conv}"];' in text
    assert not re.search(r"<span[^>]*#", text)  # "#c53030;" inside a label would be read as an entity
    chart = parse_flowchart(text)
    styles = {ln.split()[1]: ln for ln in lines if ln.startswith("style ")}
    expect = {"Conv2d": "conv", "BatchNorm2d": "norm", "BatchNormAct2d": "norm", "ReLU": "activation", "MaxPool2d": "pool",
              "AdaptiveAvgPool2d": "pool", "Linear": "linear", "Input": "io", "Output": "io"}
    for node_id, label in chart.nodes.items():
        kind = expect.get(_title(label).split(": ")[-1].split(" ")[0])
        if kind:
            fill, stroke = KIND_COLORS[kind]
            assert f"fill:{fill},stroke:{stroke}" in styles[node_id], (label, styles[node_id])
    assert 'bn1: BatchNormAct2d"]' in text  # a node whose shape does not change carries no caption
    assert "act: ReLU" not in text  # the ReLU fused into BatchNormAct2d never runs as a module: not drawn


def test_depth_3_draws_the_dataflow_with_residual_joins():
    chart = parse_flowchart(build_mermaid_chart(create_model("resnet_18"), (1, 3, 64, 64), depth=3))
    edges = set(chart.edges)
    joins = [i for i, label in chart.nodes.items() if label == "add_relu"]
    assert len(joins) == 7  # layer1 drawn once for its 2 identical blocks, then 2 blocks in each other stage
    # layer2[0]: the downsample branch starts at the block input (the previous join), not after bn2
    block = next(i for i, label in chart.subgraphs.items() if label.startswith("layer2[0]:"))
    members = chart.members(block)
    down = next(m for m in members if chart.nodes.get(m, "").startswith("downsample: Sequential"))
    bn2 = next(m for m in members if chart.nodes.get(m, "").startswith("bn2:"))
    join = next(m for m in members if chart.nodes.get(m) == "add_relu")
    conv1 = next(m for m in members if chart.nodes.get(m, "").startswith("conv1:"))
    sources = {a for a, b in edges if b == conv1}
    assert sources == {a for a, b in edges if b == down} and len(sources) == 1  # the same block input
    assert (bn2, join) in edges and (down, join) in edges and (bn2, down) not in edges
    # an identity block: its join takes the block input directly (the skip connection)
    block = next(i for i, label in chart.subgraphs.items() if label.startswith("layer2[1]:"))
    join2 = next(m for m in chart.members(block) if chart.nodes.get(m) == "add_relu")
    assert (join, join2) in edges
    assert ("input", _node(chart, "conv1: Conv2d")) in edges and (_node(chart, "fc:"), "output") in edges
    assert all(a != b for a, b in edges)


class _SharedReLU(nn.Module):
    """One ReLU module called twice."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2, self.relu = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 1), nn.ReLU()

    def forward(self, x):
        return self.conv2(self.relu(self.conv1(self.relu(x))))


def test_shared_module_is_drawn_per_call():
    chart = parse_flowchart(build_mermaid_chart(_SharedReLU(), (1, 3, 8, 8)))
    titles = [_title(label) for label in chart.nodes.values()]
    assert titles.count("relu: ReLU") == 2
    r1, r2 = [m for m in chart.nodes if _title(chart.nodes[m]) == "relu: ReLU"]
    assert (r1, _node(chart, "conv1: Conv2d")) in chart.edges and (r2, _node(chart, "conv2: Conv2d")) in chart.edges


def test_grouped_convs_and_parameter_counts():
    resnext = build_mermaid_chart(create_model("resnext_50_32x4d"), (1, 3, 64, 64), show_params=True)
    resnet = build_mermaid_chart(create_model("resnet_50"), (1, 3, 64, 64), show_params=True)
    assert "layer1[0]: Bottleneck · grouped conv: groups 32" in resnext and "groups" not in resnet
    chart = parse_flowchart(resnet)
    assert any(label.startswith("layer3 (6 × Bottleneck) · 7.10M params") for label in chart.subgraphs.values())
    fc = chart.nodes[_node(chart, "fc: Linear")]
    assert "2.05M params" in fc  # 2048 * 1000 + 1000
    deep = build_mermaid_chart(create_model("resnext_50_32x4d"), (1, 3, 64, 64), depth=3)
    assert "conv2: Conv2d · 3×3 · groups 32" in deep and "conv2: Conv2d · 3×3 /2 · groups 32" in deep


def test_only_identical_consecutive_siblings_collapse():
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1), nn.Conv2d(3, 4, 1), nn.ReLU(), nn.ReLU(),
                          nn.Conv2d(4, 4, 1))
    chart = parse_flowchart(build_mermaid_chart(model, (1, 3, 4, 4)))
    titles = [_title(label) for label in chart.nodes.values()]
    assert titles == ["Input", "[0-1]: Conv2d × 2 · 1×1", "[2]: Conv2d · 1×1", "[3-4]: ReLU × 2", "[5]: Conv2d · 1×1",
                      "Output"]
    assert len(chart.edges) == 5  # a chain through the drawn nodes, the hidden copies inside their run
    flat = parse_flowchart(build_mermaid_chart(model, (1, 3, 4, 4), collapse_repeats=False))
    assert len(flat.nodes) == 8 and len(flat.edges) == 7


def test_depth_opens_blocks_and_options_apply():
    model = create_model("resnest_14", num_classes=4)
    shallow = parse_flowchart(build_mermaid_chart(model, (1, 3, 32, 32), depth=1, show_shapes=False))
    assert not shallow.subgraphs and "layer1: Sequential · grouped conv: groups 2" in shallow.nodes.values()
    assert all("<br/>" not in label for label in shallow.nodes.values())
    deep_text = build_mermaid_chart(model, (1, 3, 32, 32), depth=4, direction="LR")
    deep = parse_flowchart(deep_text)
    assert deep_text.splitlines()[4] == "flowchart LR"
    assert {"conv2: SplitAttentionConv2d", "downsample (3 modules)"}  # avg-down: AvgPool2d, Conv2d, BN <= set(deep.subgraphs.values())
    assert any(_title(label).startswith("avd_layer: AvgPool2d") for label in deep.nodes.values())
    split = deep.subgraph_id("conv2: SplitAttentionConv2d")
    members = [deep.nodes[m] for m in deep.members(split)]
    assert sorted(m for m in members if "<" not in m and ":" not in m) == ["add", "add", "mul", "mul"]  # its joins
    norms = sorted(_title(m) for m in members if "BatchNormAct2d" in m)  # BN + ReLU: one module, one node each
    assert norms == ["bn0: BatchNormAct2d", "bn1: BatchNormAct2d"] and not any("ReLU" in m for m in members)


def test_lazy_model_is_materialised_by_the_trace():
    model = create_model("d2l_resnet_18")
    chart = parse_flowchart(build_mermaid_chart(model, (1, 1, 96, 96), depth=3))
    assert chart.nodes[_node(chart, "net[0][0]")] == (
        "net[0][0]: Conv2d · 7×7 /2<br/><span style='font-size:11px;font-weight:400;color:rgb(197,48,48)'>"
        "(1,1,96,96) → (1,64,48,48)</span>")  # LazyConv2d became a Conv2d
    assert "net[1] (of 6) (2 × Residual)" in chart.subgraphs.values()  # attributes, never a bare "Sequential"
    assert sum(p.numel() for p in model.parameters()) == 11_178_378


@pytest.mark.parametrize("kwargs, message", [
    (dict(direction="up"), "unknown direction 'up'; valid: TB, TD, BT, LR, RL"),
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
