"""launch.train with faults switched on by environment variables (each acts on the rank named):

    LUCID_TEST_STEP_SLEEP=S         sleep S seconds in every step (time to send a signal mid-epoch)
    LUCID_TEST_PID_DIR=D            write D/rank<r>.pid (to signal one rank)
    LUCID_TEST_STALL_RANK=R         rank R hangs in its step once it got a stop signal (a stuck rank)
    LUCID_TEST_CLOCK_JUMP=R:N       from step N on, rank R's checkpoint clock runs an hour ahead
    LUCID_TEST_DIE=R:N:MARKER       rank R SIGKILLs itself in step N unless MARKER exists (it creates it)

    mpiexec -n 2 python tests/train_scripts/faults.py <launch.train args>
"""
import os
import signal
import sys
import time

import lucid.distributed as dist
from lucid.train import preemption, trainer

env = os.environ.get
_train_step = trainer.Trainer._train_step


def train_step(self, batches, *args):
    rank, step = dist.rank(), self.step + 1
    if env("LUCID_TEST_STEP_SLEEP"):
        time.sleep(float(env("LUCID_TEST_STEP_SLEEP")))
    if env("LUCID_TEST_STALL_RANK") == str(rank) and self.stop is not None and self.stop.requested:
        time.sleep(3600)
    if env("LUCID_TEST_DIE"):
        r, n, marker = env("LUCID_TEST_DIE").split(":", 2)
        if int(r) == rank and int(n) == step and not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
    return _train_step(self, batches, *args)


class JumpingClock:
    """time.monotonic, an hour ahead once the trainer passed a step."""

    def __init__(self, owner, from_step: int):
        self.owner, self.from_step = owner, from_step

    def __call__(self) -> float:
        ahead = getattr(self.owner, "step", 0) >= self.from_step
        return time.monotonic() + (3600.0 if ahead else 0.0)


_init = trainer.Trainer.__init__


def init(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    if env("LUCID_TEST_PID_DIR"):
        with open(os.path.join(env("LUCID_TEST_PID_DIR"), f"rank{dist.rank()}.pid"), "w") as fh:
            fh.write(str(os.getpid()))
    if env("LUCID_TEST_CLOCK_JUMP"):
        r, n = map(int, env("LUCID_TEST_CLOCK_JUMP").split(":"))
        if r == dist.rank():
            self.votes = preemption.StepVotes(self.stop, self.cfg.run.ckpt_minutes, clock=JumpingClock(self, n))


trainer.Trainer._train_step = train_step
trainer.Trainer.__init__ = init

from launch.train import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
