"""Finding the MPI launcher for programs that start ``mpiexec`` themselves (tests, benchmarks)."""
from __future__ import annotations

import os
import shutil
import sys


def find_mpiexec() -> str | None:
    """The ``mpiexec`` next to this Python (the mpich wheel's, in a virtual environment that
    need not be activated), else the one on PATH; None when there is none."""
    return shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
