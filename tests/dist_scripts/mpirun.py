"""Run a script under a real ``mpiexec -n N`` with a timeout and collect what its ranks report.

Scripts call ``script_io.report(rank, **values)``; each rank's values come back as a
dict and tests assert on them.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from lucid.distributed.launcher import find_mpiexec

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parents[1]


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    results: dict[int, dict]  # rank -> what script_io.report() wrote


def mpiexec() -> str:
    """The mpiexec next to this Python (the mpich wheel's in a venv), else the one on PATH."""
    exe = find_mpiexec()
    if exe is None:
        pytest.skip("mpiexec is not on PATH")
    return exe


def launch(n: int, argv: list, timeout: float = 60, env: dict | None = None, cwd=None) -> Run:
    """``mpiexec -n n python argv...`` with the checkout on PYTHONPATH; kills the whole group on timeout.

    ``env`` adds variables (None removes one). ``results`` collects what ranks wrote with
    ``script_io.report``.
    """
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    for key, value in (env or {}).items():  # None removes a variable
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    folder = tempfile.mkdtemp(prefix="lucid-dist-")
    full_env["LUCID_TEST_RESULTS"] = folder
    cmd = [mpiexec(), "-n", str(n), sys.executable, *map(str, argv)]
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env, cwd=cwd, start_new_session=True
    )
    out, err = communicate(proc, timeout, " ".join(cmd))
    seconds = time.monotonic() - start
    results = {}
    for path in Path(folder).glob("rank*.json"):
        data = json.loads(path.read_text())
        results[data["rank"]] = data
    shutil.rmtree(folder, ignore_errors=True)
    return Run(proc.returncode, out, err, seconds, results)


def communicate(proc: subprocess.Popen, timeout: float, what: str) -> tuple[str, str]:
    """(stdout, stderr) of a process started in its own session; on timeout its whole group
    is SIGKILLed and the test fails with what it printed."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"{what} timed out after {timeout} s\nstdout:\n{out}\nstderr:\n{err}") from None


def mpirun(script: str, n: int, *args: str, timeout: float = 60, env: dict | None = None) -> Run:
    """``mpiexec -n n python tests/dist_scripts/<script> args``."""
    return launch(n, [SCRIPTS / script, *args], timeout=timeout, env=env)


def run_ok(script: str, n: int, *args: str, timeout: float = 60, env: dict | None = None) -> dict[int, dict]:
    """Run, require exit 0 and one RESULT per rank, return the results by rank."""
    run = mpirun(script, n, *args, timeout=timeout, env=env)
    assert run.returncode == 0, f"exit {run.returncode}\nstdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    res = run.results
    assert sorted(res) == list(range(n)), f"missing ranks: {sorted(res)}\n{run.stdout}\n{run.stderr}"
    return res
