"""Every Mermaid chart in the docs: generated charts match their command, and all of them
render with the real Mermaid CLI (mmdc + a Chromium) when it is installed."""
import glob
import json
import os
import re
import shlex
import shutil
import subprocess

import pytest

from lucid.visual import parse_flowchart
from lucid.visual.__main__ import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = sorted(glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)) + [os.path.join(ROOT, "README.md")]
GENERATED = re.compile(r"<!-- chart: (.*?) -->\n```mermaid\n(.*?)```", re.S)
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


def mermaid_docs() -> list[str]:
    return [p for p in DOCS if re.search(r"^```mermaid$", open(p, encoding="utf-8").read(), re.M)]


def generated_charts() -> list[tuple[str, str, str]]:
    """(doc, command, chart text) of each chart written by python -m lucid.visual."""
    found = []
    for path in DOCS:
        for m in GENERATED.finditer(open(path, encoding="utf-8").read()):
            found.append((os.path.relpath(path, ROOT), m.group(1), m.group(2)))
    return found


@pytest.mark.parametrize("doc, command, text", generated_charts(), ids=lambda v: v if "/" in str(v) else None)
def test_docs_chart_is_what_its_command_writes(doc, command, text, tmp_path):
    args = shlex.split(command)
    assert args[:3] == ["python", "-m", "lucid.visual"], command
    out = tmp_path / "chart.mmd"
    assert main(args[3:] + ["-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == text, f"{doc}: regenerate the chart with `{command}`"
    parse_flowchart(text)


def test_every_doc_with_charts_is_checked():
    assert len(generated_charts()) >= 6 and any(p.endswith("distributed.md") for p in mermaid_docs())


@pytest.fixture(scope="module")
def mmdc(tmp_path_factory):
    exe = shutil.which("mmdc")
    browser = next((b for b in CHROMIUM if os.path.exists(b)), None)
    if exe is None or browser is None:
        pytest.skip("needs the Mermaid CLI (npm i -g @mermaid-js/mermaid-cli) and Chromium")
    config = tmp_path_factory.mktemp("mmdc") / "puppeteer.json"
    config.write_text(json.dumps({"executablePath": browser, "args": ["--no-sandbox"]}))
    return [exe, "-p", str(config)]


@pytest.mark.parametrize("doc", mermaid_docs(), ids=lambda p: os.path.relpath(p, ROOT))
def test_docs_charts_render_with_mermaid_cli(doc, mmdc, tmp_path):
    blocks = len(re.findall(r"^```mermaid$", open(doc, encoding="utf-8").read(), re.M))
    res = subprocess.run(mmdc + ["-i", doc, "-o", str(tmp_path / "out.md")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    svgs = sorted(tmp_path.glob("out-*.svg"))
    assert len(svgs) == blocks
    for svg in svgs:
        text = svg.read_text(encoding="utf-8")
        assert "Syntax error" not in text and "Parse error" not in text, svg


def test_broken_chart_fails_to_render(mmdc, tmp_path):
    """The check above can fail: the sequence diagram text that used to be in docs/distributed.md."""
    doc = tmp_path / "bad.md"
    doc.write_text("```mermaid\nsequenceDiagram\n    participant T as loop\n    T->>T: opt.step(); opt.zero_grad()\n```\n")
    res = subprocess.run(mmdc + ["-i", str(doc), "-o", str(tmp_path / "out.md")], capture_output=True, text=True, timeout=300)
    assert res.returncode != 0
