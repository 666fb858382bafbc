"""Finding the MPI launcher for programs that start ``mpiexec`` themselves (tests, benchmarks)."""
from __future__ import annotations

import os
import shutil
import sys


def find_mpiexec() -> str | None:
    """The launcher to start jobs with; None when there is none.

    ``$LUCID_MPIEXEC`` (a path or a command name, e.g. Open MPI's ``mpirun``) decides when
    set, and must exist; otherwise the ``mpiexec`` next to this Python (the mpich wheel's,
    in a virtual environment that need not be activated), else the one on PATH.
    """
    chosen = os.environ.get("LUCID_MPIEXEC")
    if chosen:
        found = shutil.which(chosen)
        if found is None:
            raise FileNotFoundError(f"$LUCID_MPIEXEC = {chosen!r} is not an executable file or a command on PATH")
        return found
    return shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
