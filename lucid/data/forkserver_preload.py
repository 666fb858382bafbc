"""Imported by the DataLoader's forkserver process only (never by the main process).

Worker processes re-import the user's main module (spawn/forkserver semantics), and
an MPI training script imports ``mpi4py.MPI`` at its top. Told here not to
initialise MPI, mpi4py leaves the workers out of the MPI job: they never call
MPI_Init with the launcher's environment (which hangs or aborts the job).
"""
try:
    import mpi4py

    mpi4py.rc.initialize = False
    mpi4py.rc.finalize = False
except ImportError:  # pragma: no cover - mpi4py is a lucid dependency
    pass

import lucid.data.workers  # noqa: F401  - forked workers start with the loader imported
