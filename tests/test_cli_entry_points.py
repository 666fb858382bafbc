"""Every command-line entry point answers --version; the console scripts point at real mains."""
import importlib
import os
import shutil
import subprocess
import sys
import tomllib

import pytest

import lucid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = ["launch.train", "launch.evaluate", "launch.export", "launch.prepare_data", "launch.plot", "lucid.visual"]
if os.path.exists(os.path.join(ROOT, "launch", "supervise.py")):
    MODULES.append("launch.supervise")


def scripts() -> dict[str, str]:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        return tomllib.load(fh)["project"]["scripts"]


@pytest.mark.parametrize("module", MODULES)
def test_version_flag(module):
    res = subprocess.run([sys.executable, "-m", module, "--version"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"lucid {lucid.__version__} (Python ")


def test_console_scripts_cover_the_entry_points():
    targets = scripts()
    assert {"lucid-train", "lucid-evaluate", "lucid-export", "lucid-plot"} <= set(targets)
    for name, target in targets.items():
        module, _, func = target.partition(":")
        assert callable(getattr(importlib.import_module(module), func)), name
    covered = {target.partition(":")[0].removesuffix(".__main__") for target in targets.values()}
    assert covered == set(MODULES)  # every entry point has a script, launch.supervise once it exists


def test_installed_script_runs():
    exe = shutil.which("lucid-plot", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("lucid is not pip-installed in this Python's environment")
    res = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.startswith(f"lucid {lucid.__version__}")
