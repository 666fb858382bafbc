"""The MPI launcher: finding ``mpiexec`` for programs that start it themselves (tests,
benchmarks), and checking that the launcher and mpi4py's MPI agree on the world."""
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


# Process counts a launcher announces to each process it starts: Open MPI, MPICH/Hydra and
# other PMI launchers (also srun --mpi=pmi2), PMIx, Slurm's srun and batch steps.
LAUNCHER_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS")


class LauncherMismatchError(RuntimeError):
    """The launcher started N > 1 processes but MPI reports a world of one."""


def check_world(size: int, environ: dict | None = None) -> None:
    """Raise LauncherMismatchError when the environment announces more processes than MPI sees.

    The silent trap it catches: mpi4py built against one MPI (say the mpich wheel) and
    the processes started by another's launcher (Open MPI's mpirun, srun with the wrong
    --mpi plugin) each see a world of one, and every process trains alone as rank 0.
    """
    if size != 1:
        return
    env = os.environ if environ is None else environ
    for var in LAUNCHER_SIZE_VARS:
        value = env.get(var, "")
        if value.isdigit() and int(value) > 1:
            from mpi4py import MPI

            library = MPI.Get_library_version().strip().splitlines()[0]
            raise LauncherMismatchError(
                f"the launcher started {value} processes ({var}={value}) but MPI reports a world of 1: "
                f"mpi4py was built against another MPI than the launcher ({library}). Launch with the "
                f"mpiexec of that MPI (python -c 'import mpi4py; print(mpi4py.get_config())' names it), "
                f"or rebuild mpi4py against the launcher's MPI (MPICC=mpicc pip install --no-binary mpi4py "
                f"mpi4py); under Slurm, use srun --mpi=pmix (or pmi2) with an mpi4py built for Slurm's MPI. "
                f"A single process inside an allocation of {value} tasks: unset {var}."
            )
