"""launch.train, except that rank 1 is SIGKILLed halfway through writing checkpoint step KILL_STEP.

    mpiexec -n 2 python tests/train_scripts/kill_in_checkpoint.py KILL_STEP <launch.train args>
"""
import os
import signal
import sys

from lucid.distributed import checkpoint

KILL_STEP = int(sys.argv[1])
_write_share = checkpoint._write_share


def dying_write_share(tmp, rank, world, arrays, owner, rank_state):
    step = int(os.path.basename(tmp).split("-")[1].split("_")[1])
    if rank == 1 and step == KILL_STEP:
        with open(os.path.join(tmp, checkpoint.shard_name(rank, world)), "wb") as fh:
            fh.write(b"\0" * 4096)  # half a shard on disk, then the process dies
            fh.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return _write_share(tmp, rank, world, arrays, owner, rank_state)


checkpoint._write_share = dying_write_share

from launch.train import main  # noqa: E402

sys.exit(main(sys.argv[2:]))
