"""launch.train's Trainer, with rank 1's copy of one weight nudged after optimizer step 3.

    perturb_replica.py CONFIG [--set ...]
The periodic replica check must notice at the next multiple of run.replica_check_interval.
"""
import sys

import numpy as np

import lucid.distributed as dist
from lucid.train.config import load_config
from lucid.train.trainer import Trainer

args = sys.argv[1:]
sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
cfg = load_config(args[0], sets)
trainer = Trainer(cfg)
real_step = trainer._train_step


def step_then_perturb(*args):
    loss = real_step(*args)
    if trainer.step == 3 and dist.rank() == 1:
        name, p = next(iter(trainer.model.named_parameters()))
        p.data.reshape(-1)[0] += np.float32(1e-3)  # what a bit flip or a rank-local update would do
        print(f"perturbed {name} on rank 1 after step 3", flush=True)
    return loss


trainer._train_step = step_then_perturb
with dist.abort_on_exit():
    trainer.fit()
