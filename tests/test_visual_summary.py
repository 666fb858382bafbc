"""summary(): rows, parameter totals and MACs; the `python -m lucid.visual` command line."""
import subprocess
import sys
from pathlib import Path

import pytest

import lucid.nn as nn
from lucid.models import create_model
from lucid.visual import parse_flowchart, summary
from lucid.visual.__main__ import main


def test_resnet_50_summary_totals(capsys):
    result = summary(create_model("resnet_50"), (1, 3, 224, 224))
    assert result.total_params == result.trainable_params == 25_557_032
    assert result.total_macs == 4_089_184_256  # ~4.09 GMACs (docs/design.md, "Model zoo numbers")
    assert result.output_shape == (1, 1000)
    printed = capsys.readouterr().out
    assert "Total MACs: 4.09G" in printed and "Total params: 25,557,032" in printed
    rows = {r.name: r for r in result.rows}
    assert rows["stem.conv1"].macs == 64 * 112 * 112 * 3 * 7 * 7 and rows["stem.conv1"].params == 9408
    assert rows["fc"].macs == 2048 * 1000 and rows["layer4"].out_shape == (1, 2048, 7, 7)
    assert sum(rows[f"layer{i}"].macs for i in range(1, 5)) + rows["stem"].macs + rows["fc"].macs == result.total_macs


def test_summary_counts_grouped_convs_and_batches(capsys):
    model = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, groups=4), nn.BatchNorm2d(16), nn.ReLU())
    result = summary(model, (2, 8, 5, 5), depth=1)
    assert result.total_macs == 2 * 16 * 5 * 5 * (8 // 4) * 3 * 3
    assert [r.name for r in result.rows] == ["0", "1", "2"] and result.rows[1].macs == 0
    assert result.total_params == 16 * 2 * 9 + 16 + 32


def test_cli_chart_and_summary(tmp_path, capsys):
    out = tmp_path / "r18.mmd"
    assert main(["chart", "resnet_18", "--input", "1,1,32,32", "-o", str(out), "--set", "in_channels=1",
                 "--set", "stem_type=cifar", "--set", "num_classes=10"]) == 0
    chart = parse_flowchart(out.read_text(encoding="utf-8"))
    assert "Output<br/><span style='font-size:11px;font-weight:400;color:rgb(166,124,0)'>(1,10)</span>" in chart.nodes.values()
    assert main(["summary", "resnet_18", "--input", "1,3,32,32", "--depth", "1"]) == 0
    assert "Total params: 11,689,512" in capsys.readouterr().out
    assert main(["chart", "resnet_18", "--input", "1,1,32,32"]) == 2  # 3-channel model, 1-channel input
    assert "in_channels=3" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["chart", "resnet_18", "--input", "1,3,x"])


def test_python_dash_m_entry_point():
    done = subprocess.run([sys.executable, "-m", "lucid.visual", "summary", "nonexistent_net"],
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[1])
    assert done.returncode == 2 and "unknown model 'nonexistent_net'; valid names:" in done.stderr


def test_model_and_input_from_a_run_config(capsys):
    config = str(Path(__file__).resolve().parents[1] / "configs" / "fashion_mnist_resnet.toml")
    assert main(["summary", "--config", config, "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "Input (1,1,28,28) -> output (1,10)" in out and "Total params: 308,538" in out  # the demo's ResNet-10
    assert main(["summary", "resnet_18", "--config", config]) == 2
    assert "give either a model name or --config FILE, not both" in capsys.readouterr().err
    assert main(["chart", "--config", "missing.toml"]) == 2
    assert "config file not found: missing.toml" in capsys.readouterr().err
